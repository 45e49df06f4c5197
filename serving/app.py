"""The FastAPI app: /predict, /health, /model, /metrics over a hot-swapping Router."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from core.names import CHALLENGER, CHAMPION
from registry.store import Registry
from serving.guards import BODY_TIMEOUT_S, authorized, lone_surrogate
from serving.metrics import Metrics
from serving.models import Router, Served
from serving.plog import PredictionLog
from serving.schema import BadRequest, parse_records

log = logging.getLogger("greenlight.serving")
MAX_BODY_BYTES = 1_000_000
MAX_RECORDS = 1000


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse_json(raw: bytes) -> Any:
    """The request body as JSON, or a BadRequest (400) that says in one line why not."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(400, "body is nested too deeply to be a record") from None
    except ValueError:  # Python refuses to read an integer of more than 4,300 digits
        raise BadRequest(400, "body is not valid JSON for this service: a number of more "
                              f"than {sys.get_int_max_str_digits()} digits") from None


def is_json(content_type: str | None) -> bool:
    """application/json or application/<something>+json, with or without a charset: a
    text/plain body (or one with no type) may be anything, and is not read as records."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/")
                                         and kind.endswith("+json"))


class Refused(Exception):
    """A request answered before it was read to the end: the response to send."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _peer(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "a client"


def create_app(reg: Registry, home: Path, *, poll_seconds: float = 5.0, shadow: bool = False,
               review_below: float = 0.6, max_body_bytes: int = MAX_BODY_BYTES,
               max_records: int = MAX_RECORDS, body_timeout_s: float = BODY_TIMEOUT_S,
               token: str | None = None, on_swap: Any = None) -> FastAPI:
    """A service for one registered model; `home` holds the prediction log and canary state.

    `review_below`: a prediction whose confidence (max class probability) is under it is
    flagged `needs_review` for a person to check. `body_timeout_s` bounds the time to read
    a body (408 after); with `token`, /predict, /model and /metrics want it as a bearer token
    (serving/guards.py). `on_swap(alias, old, new, why)` hears each version swap."""
    metrics = Metrics()

    def swapped(alias: str, old: int | None, new: int | None, why: str) -> None:
        metrics.swapped(alias, new)
        if on_swap is not None:
            on_swap(alias, old, new, why)

    router = Router(reg, home, poll_seconds=poll_seconds, shadow=shadow, on_swap=swapped)
    predictions = PredictionLog(home)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(router.start)
        yield
        await run_in_threadpool(router.stop)

    app = FastAPI(title="greenlight serving", lifespan=lifespan)
    app.state.router, app.state.metrics = router, metrics

    def lines(request_id: str, variant: str, served: Served, rows: list[dict[str, Any]],
              outputs: list[dict[str, Any]] | None, latency_ms: float, error: str | None = None
              ) -> list[dict[str, Any]]:
        at = _now()
        return [{"request_id": request_id, "index": i, "prediction_id": f"{request_id}-{i}",
                 "at": at, "model": reg.model_name,
                 "version": served.version, "variant": variant, "input": row,
                 "output": None if outputs is None else outputs[i],
                 "needs_review": bool(outputs and outputs[i]["needs_review"]),
                 "latency_ms": latency_ms, "error": error} for i, row in enumerate(rows)]

    def flagged(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for out in outputs:
            out["needs_review"] = out["confidence"] is not None and \
                out["confidence"] < review_below
        return outputs

    def score_and_log(request_id: str, variant: str, served: Served,
                      rows: list[dict[str, Any]], start: float) -> list[dict[str, Any]]:
        """Score and append to the prediction log (in a worker thread, off the event loop);
        a failure is logged with its reason, then raised."""
        try:
            outputs = flagged(served.score(rows))
        except Exception as exc:
            ms = round((time.perf_counter() - start) * 1000, 3)
            predictions.append(lines(request_id, variant, served, rows, None, ms,
                                     f"{type(exc).__name__}: {exc}"[:300]))
            raise
        ms = round((time.perf_counter() - start) * 1000, 3)
        predictions.append(lines(request_id, variant, served, rows, outputs, ms))
        return outputs

    def shadow_score(request_id: str, served: Served, rows: list[dict[str, Any]]) -> None:
        """Off the critical path (after the response is sent): log what the challenger says."""
        start = time.perf_counter()
        try:
            outputs, error = flagged(served.score(rows)), None
        except Exception as exc:
            outputs, error = None, f"{type(exc).__name__}: {exc}"[:300]
            metrics.errors.labels("shadow").inc()
        ms = round((time.perf_counter() - start) * 1000, 3)
        metrics.shadowed(ms / 1000, outputs)
        predictions.append(lines(request_id, "shadow", served, rows, outputs, ms, error))

    def fail(status: int, message: str, kind: str, *, close: bool = False,
             headers: dict[str, str] | None = None) -> JSONResponse:
        """A refusal, counted. `close`: the body was not read to its end, so the connection
        cannot carry another request and is closed."""
        metrics.errors.labels(kind).inc()
        metrics.requests.labels("none", str(status)).inc()
        return JSONResponse({"error": message}, status_code=status,
                            headers={**(headers or {}), **({"connection": "close"}
                                                           if close else {})})

    def unauthorized(request: Request) -> JSONResponse | None:
        """401 (counted, one log line) unless the request carries the token, when one is set."""
        if token is None or authorized(request.headers.get("authorization"), token):
            return None
        log.warning("refused %s %s from %s: no valid bearer token", request.method,
                    request.url.path, _peer(request))
        return fail(401, "this service wants Authorization: Bearer <token> "
                         "(GREENLIGHT_SERVE_TOKEN)", "unauthorized", close=True,
                    headers={"www-authenticate": "Bearer"})

    async def stream_body(request: Request, body: bytearray) -> None:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body_bytes:
                raise BadRequest(413, f"body over {max_body_bytes} bytes")

    async def read_body(request: Request) -> bytes:
        """The body, within the size limit and `body_timeout_s`. A stalled upload is answered
        408 and its connection closed; a client gone mid-body is one counted line, not a
        traceback (Refused carries the response; nobody reads the one to a gone client)."""
        if not is_json(request.headers.get("content-type")):
            raise BadRequest(415, f"content type {request.headers.get('content-type')!r}: "
                                  "send the records as application/json")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            raise BadRequest(413, f"body of {declared} bytes: the limit is {max_body_bytes}")
        body = bytearray()
        try:
            async with asyncio.timeout(body_timeout_s):  # no extra task, unlike wait_for
                await stream_body(request, body)
        except TimeoutError:
            log.warning("%s: body not received within %s s (%d of %s bytes); answered 408",
                        _peer(request), body_timeout_s, len(body), declared or "?")
            raise Refused(fail(408, f"body not received within {body_timeout_s} s",
                               "timeout", close=True)) from None
        except ClientDisconnect:
            log.warning("%s: disconnected after %d of %s bytes of its body; nothing scored",
                        _peer(request), len(body), declared or "?")
            raise Refused(fail(499, "client disconnected", "disconnect", close=True)) from None
        if not body.strip():
            raise BadRequest(400, "empty body: send one record (a JSON object) or a list")
        return bytes(body)

    @app.post("/predict")
    async def predict(request: Request, background: BackgroundTasks) -> Any:
        """Score one record or a list. Header X-Request-Key keeps a caller on one variant."""
        start = time.perf_counter()
        if refused := unauthorized(request):
            return refused
        live = router.live  # read once: a swap now does not touch this request
        if live.champion is None:
            return fail(503, "no @champion model loaded yet", "unavailable")
        request_id = uuid.uuid4().hex
        try:
            raw = await read_body(request)
            payload = parse_json(raw)
            if where := lone_surrogate(raw, payload):
                raise BadRequest(422, f"{where}: a lone UTF-16 surrogate (\\ud800-\\udfff) "
                                      "is not text; send valid Unicode")
            variant, served = router.pick(live, request.headers.get("x-request-key")
                                          or request_id)
            rows = parse_records(payload, served.records, max_records)
        except BadRequest as exc:
            return fail(exc.status, str(exc), "bad_request")
        except Refused as exc:
            return exc.response
        try:
            outputs = await run_in_threadpool(score_and_log, request_id, variant, served, rows,
                                              start)
        except Exception:
            if variant != "canary":
                return fail(500, "scoring failed (see the prediction log)", "scoring")
            metrics.errors.labels("canary").inc()  # the caller still gets the champion's answer
            variant, served = "champion", live.champion
            outputs = await run_in_threadpool(score_and_log, request_id, variant, served, rows,
                                              start)
        ms = round((time.perf_counter() - start) * 1000, 3)
        if router.shadow and variant == "champion" and live.challenger is not None:
            background.add_task(shadow_score, request_id, live.challenger, rows)
        metrics.latency.labels(variant).observe(ms / 1000)
        metrics.requests.labels(variant, "200").inc()
        review = sum(1 for out in outputs if out["needs_review"])
        for flag, count in (("true", review), ("false", len(outputs) - review)):
            if count:  # one increment per request and flag, not one per record
                metrics.predictions.labels(variant, flag).inc(count)
        return Response(  # what JSONResponse writes (compact, UTF-8), ~5x faster
            to_json({"request_id": request_id, "model": reg.model_name,
                     "version": served.version, "variant": variant,
                     "predictions": [{"prediction_id": f"{request_id}-{i}", **out}
                                     for i, out in enumerate(outputs)]},
                    inf_nan_mode="null"),
            media_type="application/json", headers={"x-request-id": request_id})

    @app.get("/health")
    def health() -> Any:
        live = router.live
        body = {"status": "ok" if live.champion else "unavailable",
                "champion": live.champion.version if live.champion else None,
                "registry_error": router.last_error}
        return JSONResponse(body, status_code=200 if live.champion else 503)

    @app.get("/model")
    def model(request: Request) -> Any:
        if refused := unauthorized(request):
            return refused
        live = router.live
        return {"model": reg.model_name, "aliases": live.aliases, "shadow": router.shadow,
                "canary_fraction": live.canary_fraction, "poll_seconds": router.poll_seconds,
                "serving": {alias: {"version": s.version, "loaded_at": s.loaded_at,
                                    "fields": s.fields}
                            for alias, s in ((CHAMPION, live.champion),
                                             (CHALLENGER, live.challenger)) if s}}

    @app.get("/metrics")
    def prometheus(request: Request) -> Response:
        if refused := unauthorized(request):
            return refused
        live = router.live
        metrics.canary.set(live.canary_fraction)
        for alias, served in ((CHAMPION, live.champion), (CHALLENGER, live.challenger)):
            if served is not None:
                metrics.version.labels(alias).set(served.version)
            else:  # an alias that is gone must not keep reporting its last version
                metrics.version.remove(alias)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
