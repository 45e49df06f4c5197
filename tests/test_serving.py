"""The scoring service on a real uvicorn, over a real MLflow store built by the real loop."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from registry import versions
from registry.promote import promote, rollback, set_alias
from registry.store import Registry, fluent
from serving import canary, plog
from serving.app import create_app
from tests.approval_helpers import registry
from tests.serving_helpers import (
    FailingOnRealRows,
    records,
    register_failing,
    running,
)


@pytest.fixture
def built(two_versions_home) -> tuple[Path, Registry]:
    """This test's own copy of the two versions the real loop built once for the run
    (tests/conftest.py: v2 @champion, v1 @previous)."""
    reg = registry(two_versions_home)
    assert versions.aliases(reg) == {"champion": 2, "previous": 1}
    return two_versions_home, reg


@pytest.fixture
def home_reg(built, tmp_path):
    """The test's registry, with this test's own prediction log and canary state, the
    champion at v2 and no challenger."""
    _, reg = built
    return tmp_path / "serve", reg


def _wait(url: str, check, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/model").json()
        if check(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"service never reached the state: {body}")


@pytest.mark.e2e
def test_hot_swap_under_load_fails_no_request(home_reg):
    state, reg = home_reg
    rows = records(n=50)
    results: list[tuple[float, int, int | None]] = []
    stop = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(timeout=30) as http:
            i = worker
            while not stop.is_set():
                try:
                    r = http.post(f"{url}/predict", json=rows[i % len(rows)])
                    results.append((time.monotonic(), r.status_code,
                                    r.json().get("version") if r.status_code == 200 else None))
                except httpx.HTTPError as exc:  # a dropped connection is a failure too
                    results.append((time.monotonic(), -1, repr(exc)))
                i += 4

    with running(create_app(reg, state, poll_seconds=0.2)) as url:
        _wait(url, lambda m: m["serving"]["champion"]["version"] == 2)
        threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        time.sleep(1)
        rollback(reg, reason="test: rollback under load")
        _wait(url, lambda m: m["serving"]["champion"]["version"] == 1)
        time.sleep(0.5)
        promote(reg, 2, reason="test: promote under load", expected_from=1)
        _wait(url, lambda m: m["serving"]["champion"]["version"] == 2)
        time.sleep(0.5)
        rollback(reg, reason="test: rollback again")
        switched = _wait(url, lambda m: m["serving"]["champion"]["version"] == 1)
        after = time.monotonic()
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join()
        metrics = httpx.get(f"{url}/metrics").text
    assert switched["aliases"]["champion"] == 1
    failures = [r for r in results if r[1] != 200]
    assert len(results) > 100 and not failures, failures[:5]
    assert {v for _, _, v in results} == {1, 2}  # both versions really served
    assert {v for t, _, v in results if t > after + 0.05} == {1}  # the new one after the switch
    assert 'greenlight_model_version{alias="champion"} 1.0' in metrics
    assert "process_resident_memory_bytes" in metrics
    assert 'greenlight_request_latency_seconds_bucket' in metrics


BAD = [
    ("wrong type", {"market": "north", "channel": "web", "income": "lots", "age": 30,
                    "price": 10.0, "discount": 0.1, "tenure_months": 3}, 422,
     "field 'income': Input should be a valid number"),
    ("missing field", {"market": "north", "channel": "web", "income": 1.0, "age": 30,
                       "price": 10.0, "discount": 0.1}, 422, "field 'tenure_months': missing"),
    ("extra field", {"market": "north", "channel": "web", "income": 1.0, "age": 30,
                     "price": 10.0, "discount": 0.1, "tenure_months": 3,
                     "model_uri": "runs:/x/model"}, 422, "field 'model_uri': unexpected field"),
    ("bool as number", {"market": "north", "channel": "web", "income": True, "age": 30,
                        "price": 10.0, "discount": 0.1, "tenure_months": 3}, 422,
     "field 'income'"),
    ("empty list", [], 422, "no records"),
    ("not a record", 42, 422, "one record (a JSON object) or a list"),
]


def test_bad_requests_get_a_clear_4xx(home_reg):
    state, reg = home_reg
    app = create_app(reg, state, poll_seconds=60, max_body_bytes=20_000, max_records=50)
    with running(app) as url, httpx.Client(base_url=url) as http:
        for name, body, status, message in BAD:
            r = http.post("/predict", json=body)
            assert (r.status_code, name) == (status, name) and message in r.json()["error"], \
                (name, r.text)
        raw = {"empty body": (b"", 400, "empty body"),
               "non-JSON": (b"market=north", 400, "not valid JSON"),
               "not UTF-8": (b'{"market": "\xff"}', 400, "not valid JSON"),
               "nested too deep": (b"[" * 9000 + b"]" * 9000, 400, "nested too deeply"),
               "over the size limit": (b"[" + b"1," * 20_000 + b"1]", 413, "limit is 20000")}
        for name, (content, status, message) in raw.items():
            r = http.post("/predict", content=content,
                          headers={"content-type": "application/json"})
            assert r.status_code == status and message in r.json()["error"], (name, r.text)
        r = http.post("/predict", json=records(n=51))
        assert r.status_code == 413 and "at most 50" in r.json()["error"]
        ok = http.post("/predict", json=records(n=50))
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 50
    assert not list(plog.read(state))[50:]  # refused requests are never scored nor logged


def test_only_the_configured_registered_model_is_ever_loaded(home_reg):
    state, reg = home_reg
    # Another registered model in the same store, with its own @champion: never served.
    intruder = Registry(reg.tracking_uri, "intruder", reg.state_dir)
    mv = versions.by_version(reg, 1)
    if "champion" not in versions.aliases(intruder):
        intruder.client.create_registered_model("intruder")
        v1 = reg.client.get_model_version(reg.model_name, "1")
        with fluent(reg.tracking_uri):  # the store resolves models:/ sources through it
            created = intruder.client.create_model_version(
                "intruder", source=v1.source, run_id=mv.run_id, model_id=v1.model_id)
        intruder.client.set_registered_model_alias("intruder", "champion", created.version)
    with running(create_app(reg, state, poll_seconds=0.2)) as url:
        r = httpx.post(f"{url}/predict?model_uri=models:/intruder/1&version=1",
                       json=records(n=1)[0], headers={"x-model-uri": "models:/intruder/1"})
        assert r.status_code == 200 and r.json()["model"] == reg.model_name
        assert r.json()["version"] == 2
        assert httpx.get(f"{url}/model").json()["model"] == reg.model_name
    # A service configured for a model that does not exist serves nothing, loads nothing.
    absent = Registry(reg.tracking_uri, "greenlight-nothing", reg.state_dir)
    with running(create_app(absent, state, poll_seconds=0.2)) as url:
        assert httpx.get(f"{url}/health").status_code == 503
        r = httpx.post(f"{url}/predict", json=records(n=1)[0])
        assert r.status_code == 503 and "no @champion" in r.json()["error"]


def test_prediction_log_and_review_flag(home_reg):
    state, reg = home_reg
    with running(create_app(reg, state, poll_seconds=60, review_below=0.9)) as url:
        body = httpx.post(f"{url}/predict", json=records(n=40)).json()
    preds = body["predictions"]
    assert {p["needs_review"] for p in preds} == {True, False}  # some are unsure, some not
    assert all(p["needs_review"] == (p["confidence"] < 0.9) for p in preds)
    logged = list(plog.read(state))
    assert len(logged) == 40 and {r["request_id"] for r in logged} == {body["request_id"]}
    first = logged[0]
    assert (first["version"], first["variant"], first["model"]) == (2, "champion", reg.model_name)
    assert first["input"] == records(n=1)[0]
    assert {**first["output"], "prediction_id": first["prediction_id"]} == preds[0]
    assert preds[3]["prediction_id"] == f"{body['request_id']}-3" == logged[3]["prediction_id"]
    assert first["latency_ms"] > 0 and first["at"].endswith("+00:00")


@pytest.mark.e2e
def test_greenlight_serve_follows_a_cli_rollback(home_reg, monkeypatch):
    """The command a user runs: a real process on a free port, and `greenlight rollback`."""
    import os
    import signal
    import subprocess
    import sys

    from typer.testing import CliRunner

    from cli import stack
    from cli.main import app as cli

    _, reg = home_reg
    home, port = reg.state_dir, stack.free_port()
    monkeypatch.setenv("GREENLIGHT_HOME", str(home))  # the CLI sets it; put it back after
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--poll-seconds",
         "0.3", "--max-records", "5"], env={**os.environ, "GREENLIGHT_HOME": str(home)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.3)
        assert httpx.post(f"{url}/predict", json=records(n=1)[0]).json()["version"] == 2
        assert httpx.post(f"{url}/predict", json=records(n=6)).status_code == 413
        result = CliRunner().invoke(cli, ["rollback", "--home", str(home), "--reason", "test"])
        assert result.exit_code == 0, result.output
        _wait(url, lambda m: m["serving"]["champion"]["version"] == 1)
        assert httpx.post(f"{url}/predict", json=records(n=1)[0]).json()["version"] == 1
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_canary_command_refuses_a_bad_ramp(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cli.main import app as cli

    monkeypatch.setenv("GREENLIGHT_HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["canary", "--ramp", "5,150", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "each step must be between 0 and 100" in result.output
    result = CliRunner().invoke(cli, ["canary", "--ramp", "0", "--home", str(tmp_path)])
    assert result.exit_code == 0 and canary.read_state(tmp_path)["fraction"] == 0.0


def test_fast_scoring_path_matches_the_registered_model(home_reg):
    _, reg = home_reg
    import pandas as pd

    from serving.models import load

    served = load(reg, 2)
    rows = records(n=300)
    rows[0]["market"], rows[1]["income"] = "atlantis", None  # unseen category, missing value
    fast = [o["score"] for o in served.score(rows)]
    slow = served.model.predict(None, pd.DataFrame(rows))["score"].tolist()
    assert fast == pytest.approx(slow, abs=1e-12)


def test_shadow_scores_with_the_challenger_but_returns_the_champion(home_reg):
    state, reg = home_reg
    set_alias(reg, "challenger", 1)
    with running(create_app(reg, state, poll_seconds=60, shadow=True)) as url:
        ids = []
        for row in records(n=20):
            r = httpx.post(f"{url}/predict", json=row).json()
            assert (r["version"], r["variant"]) == (2, "champion")
            ids.append(r["request_id"])
        time.sleep(0.5)  # shadow scoring runs after each response
        metrics = httpx.get(f"{url}/metrics").text
    logged = list(plog.read(state))
    by_variant = Counter((r["variant"], r["version"]) for r in logged)
    assert by_variant == {("champion", 2): 20, ("shadow", 1): 20}
    assert 'greenlight_model_version{alias="challenger"} 1.0' in metrics
    assert {r["request_id"] for r in logged if r["variant"] == "shadow"} == set(ids)


def test_canary_share_is_within_tolerance_and_sticky(home_reg):
    state, reg = home_reg
    set_alias(reg, "challenger", 1)
    canary.set_fraction(state, 0.3, "test")
    row = records(n=1)[0]
    with running(create_app(reg, state, poll_seconds=60)) as url, httpx.Client() as http:
        assert http.get(f"{url}/model").json()["canary_fraction"] == 0.3
        seen = {}
        for i in range(400):
            r = http.post(f"{url}/predict", json=row, headers={"x-request-key": f"user-{i}"})
            seen[i] = (r.json()["variant"], r.json()["version"])
        again = {i: http.post(f"{url}/predict", json=row,
                              headers={"x-request-key": f"user-{i}"}).json()["variant"]
                 for i in range(0, 400, 7)}
    share = sum(v == ("canary", 1) for v in seen.values()) / len(seen)
    assert 0.23 < share < 0.37, share
    assert set(seen.values()) == {("canary", 1), ("champion", 2)}
    assert all(again[i] == seen[i][0] for i in again)  # same key, same variant


def _traffic(url: str):
    rows = records(n=300)

    def traffic(_seconds: float) -> None:  # instead of waiting: send a step's worth of load
        time.sleep(0.3)  # the service picks the new share up at its next poll
        with httpx.Client() as http:
            for i, row in enumerate(rows):
                http.post(f"{url}/predict", json=row, headers={"x-request-key": f"k{i}"})

    return traffic


def _ramp_with_traffic(url: str, state: Path, steps: list[float], guards: canary.Guards):
    return canary.ramp(state, steps, 0, guards, sleep=_traffic(url), say=lambda _: None)


@pytest.mark.e2e
def test_canary_ramp_completes_when_guards_hold_and_rolls_back_when_one_trips(home_reg):
    state, reg = home_reg
    set_alias(reg, "challenger", 2)  # the champion itself as canary: outputs agree
    with running(create_app(reg, state, poll_seconds=0.1)) as url:
        done = _ramp_with_traffic(url, state, [0.25, 0.5], canary.Guards(max_ks=0.15))
        assert done["fraction"] == 0.5 and "guards held" in done["reason"]
        set_alias(reg, "challenger", 1)  # the pre-drift model: its outputs differ
        time.sleep(0.5)
        tripped = _ramp_with_traffic(url, state, [0.25, 0.5], canary.Guards(max_ks=0.15))
        assert tripped["fraction"] == 0.0
        assert tripped["reason"].startswith("rolled back at 25%: canary output distribution")
        time.sleep(0.5)
        assert httpx.get(f"{url}/model").json()["canary_fraction"] == 0.0
        after = {httpx.post(f"{url}/predict", json=r, headers={"x-request-key": f"k{i}"}
                            ).json()["variant"] for i, r in enumerate(records(n=50))}
    assert after == {"champion"}
    assert [h["fraction"] for h in canary.history(state)] == [0.25, 0.5, 0.5, 0.25, 0.0]


@pytest.mark.e2e
def test_a_canary_ramp_that_holds_at_100_percent_promotes_the_challenger(home_reg):
    from registry.promote import records as promotions
    from tasks.training.model import GreenlightModel

    state, reg = home_reg
    twin = register_failing(reg, like=2, kind=GreenlightModel)  # a copy of v2 that works
    set_alias(reg, "challenger", twin)
    with running(create_app(reg, state, poll_seconds=0.1)) as url:
        done = canary.ramp(state, [0.5, 1.0], 0, canary.Guards(max_ks=0.15), reg=reg,
                           by="tester", sleep=_traffic(url), say=lambda _: None)
        assert done["promoted"] == twin and done["fraction"] == 0.0
        assert versions.aliases(reg) == {"champion": twin, "previous": 2}
        _wait(url, lambda m: m["serving"]["champion"]["version"] == twin
              and m["canary_fraction"] == 0.0 and "challenger" not in m["serving"])
        r = httpx.post(f"{url}/predict", json=records(n=1)[0]).json()
        assert (r["variant"], r["version"]) == ("champion", twin)
    record = promotions(reg)[-1]
    assert (record["action"], record["from"], record["to"], record["by"]) == (
        "canary", 2, twin, "tester")
    assert record["metrics"]["canary.100pct.canary_predictions"] == 300
    assert record["metrics"]["canary.100pct.canary_error_rate"] == 0.0
    assert record["metrics"]["canary.50pct.ks"] <= 0.15
    assert [h["fraction"] for h in canary.history(state)] == [0.5, 1.0, 0.0]


@pytest.mark.e2e
def test_a_failing_canary_never_fails_a_caller_and_the_error_guard_rolls_it_back(home_reg):
    state, reg = home_reg
    set_alias(reg, "challenger", register_failing(reg, like=2, kind=FailingOnRealRows))
    with running(create_app(reg, state, poll_seconds=0.1)) as url:
        tripped = _ramp_with_traffic(url, state, [0.25, 0.5], canary.Guards())
        metrics = httpx.get(f"{url}/metrics").text
    assert tripped["fraction"] == 0.0
    assert tripped["reason"].startswith("rolled back at 25%: canary error rate 100.0%")
    logged = list(plog.read(state))
    errors = [r for r in logged if r["variant"] == "canary"]
    assert errors and all("this version is broken" in r["error"] for r in errors)
    # every caller got the champion's answer: one champion line per request
    assert len({r["request_id"] for r in logged if r["variant"] == "champion"}) == 300
    assert 'greenlight_errors_total{kind="canary"}' in metrics


def test_a_version_that_fails_its_warm_up_never_serves(home_reg):
    state, reg = home_reg
    broken = register_failing(reg, like=2)
    with running(create_app(reg, state, poll_seconds=0.1)) as url:
        promote(reg, broken, reason="test: a broken champion", expected_from=2)
        try:
            deadline = time.monotonic() + 30
            while not (health := httpx.get(f"{url}/health").json())["registry_error"]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert health["champion"] == 2 and f"v{broken} (@champion) not served" in \
                health["registry_error"]
            r = httpx.post(f"{url}/predict", json=records(n=1)[0])
            assert r.status_code == 200 and r.json()["version"] == 2  # the old one serves on
        finally:
            rollback(reg, reason="test: back from the broken champion")
        _wait(url, lambda m: m["aliases"]["champion"] == 2)
        assert httpx.get(f"{url}/health").json()["registry_error"] is None


def test_canary_error_guard_trips():
    ok = {"latency_ms": 1.0, "output": {"score": 0.5}}
    recs = [{**ok, "variant": "champion"}] * 50 + [{**ok, "variant": "canary"}] * 45 + \
        [{**ok, "variant": "canary", "error": "ValueError: boom"}] * 5
    verdict, why = canary.check(recs, canary.Guards())
    assert verdict == "trip" and "error rate 10.0%" in why
    assert canary.check(recs[:60], canary.Guards())[0] == "wait"
    assert canary.check([r for r in recs if not r.get("error")], canary.Guards())[0] == "ok"
    assert json.dumps(canary.read_state(Path("/nonexistent"))) == '{"fraction": 0.0}'


def _refusals(url: str) -> dict[str, float]:
    """greenlight_requests_total of refused requests (variant none), by status."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics").text
    return {s.labels["status"]: s.value for f in text_string_to_metric_families(text)
            if f.name == "greenlight_requests" for s in f.samples
            if s.name == "greenlight_requests_total" and s.labels["variant"] == "none"}


def _post_raw(url: str, cases: dict[str, tuple[bytes, dict[str, str], int, str]]) -> None:
    """Each case answers its 4xx with one short line, and is counted in the metrics."""
    before = _refusals(url)
    with httpx.Client(base_url=url) as http:
        for name, (content, headers, status, message) in cases.items():
            r = http.post("/predict", content=content, headers=headers)
            assert r.status_code == status, (name, r.status_code, r.text[:300])
            error = r.json()["error"]
            assert message in error and "\n" not in error and len(error) < 300, (name, error)
    after = _refusals(url)
    for status in {str(c[2]) for c in cases.values()}:
        expected = sum(1 for c in cases.values() if str(c[2]) == status)
        assert after.get(status, 0) - before.get(status, 0) == expected, (status, after)


JSON = {"content-type": "application/json"}


def _with_income(token: str) -> bytes:
    """A valid record whose income is the raw JSON token (what a client may really send)."""
    return json.dumps({**records(n=1)[0], "income": 0}).replace(
        '"income": 0', f'"income": {token}').encode()


def test_huge_integers_get_a_counted_4xx_not_a_500(home_reg):
    state, reg = home_reg
    with running(create_app(reg, state, poll_seconds=60)) as url:
        _post_raw(url, {
            "400-digit integer": (_with_income("9" * 400), JSON, 422, "does not fit a double"),
            "5,000-digit integer": (_with_income("9" * 5000), JSON, 400, "digits"),
            "400-digit negative in a list": (b"[" + _with_income("-" + "9" * 400) + b"]", JSON,
                                             422, "does not fit a double")})
        ok = httpx.post(f"{url}/predict", content=_with_income("1" + "0" * 300), headers=JSON)
        assert ok.status_code == 200  # 1e300 fits a double: served, as before
    assert len(list(plog.read(state))) == 1


def test_nan_and_infinity_are_refused_and_the_log_stays_standard_json(home_reg):
    state, reg = home_reg
    with running(create_app(reg, state, poll_seconds=60)) as url:
        _post_raw(url, {token: (_with_income(token), JSON, 422, "not a finite number")
                        for token in ("NaN", "Infinity", "-Infinity")}
                  | {"1e999 (overflows to infinity)": (_with_income("1e999"), JSON, 422,
                                                       "not a finite number")})
        ok = httpx.post(f"{url}/predict", json=records(n=20))
        assert ok.status_code == 200

    def strict(token: str) -> None:
        raise AssertionError(f"non-standard JSON in the prediction log: {token}")

    lines = [line for path in (state / "predictions").glob("*.jsonl")
             for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 20  # refused requests are never scored nor logged
    assert all(json.loads(line, parse_constant=strict) for line in lines)


def test_a_body_that_is_not_declared_json_gets_a_counted_415(home_reg):
    state, reg = home_reg
    body = json.dumps(records(n=1)[0]).encode()
    with running(create_app(reg, state, poll_seconds=60)) as url:
        _post_raw(url, {"text/plain": (body, {"content-type": "text/plain"}, 415,
                                       "application/json"),
                        "no content type": (body, {}, 415, "application/json"),
                        "form": (b"market=north", {"content-type":
                                                   "application/x-www-form-urlencoded"},
                                 415, "application/json")})
        for kind in ("application/json; charset=utf-8", "application/vnd.api+json"):
            assert httpx.post(f"{url}/predict", content=body,
                              headers={"content-type": kind}).status_code == 200, kind
    assert len(list(plog.read(state))) == 2


def test_a_wrong_type_is_said_once_per_field(home_reg):
    """16.10d: a number field may be a float or an int, and the 422 named the field twice,
    once per member of the union."""
    state, reg = home_reg
    app = create_app(reg, state, poll_seconds=60)
    body = {**records(n=1)[0], "income": "lots", "age": "old"}
    with running(app) as url:
        r = httpx.post(f"{url}/predict", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error.count("field 'income'") == 1 and error.count("field 'age'") == 1, error
    assert "valid number (got 'lots')" in error


def test_serve_beside_up_loads_what_up_registered_with_nothing_exported(champion_home,
                                                                         tmp_path):
    """16.1: versions registered through `up`'s MLflow server carry `mlflow-artifacts:` URIs,
    which load only through an http tracking URI; `greenlight serve` on the same state dir
    answered 503 until MLFLOW_TRACKING_URI was exported. And /health said why in half a
    sentence."""
    import os
    import signal
    import subprocess
    import sys

    from cli import stack
    from registry.register import register
    from registry.versions import load_model
    from tasks.data import replay as sources
    from tasks.data.home import Home
    from tests.servers import STARTUP_TIMEOUT

    port = stack.free_port()
    mlflow_url = f"http://127.0.0.1:{port}"
    server = stack.start_mlflow_server(champion_home, port)  # as `greenlight up` starts it
    serve = None
    try:
        stack.wait_healthy(f"{mlflow_url}/health", STARTUP_TIMEOUT, server)
        through_up = Registry(mlflow_url, "greenlight-synthetic", champion_home)
        # a version as up's cycles register one: logged through the server, into an
        # experiment the server created (so its artifacts are at mlflow-artifacts:)
        good = load_model(registry(champion_home), 1)
        example = good.example(sources.synthetic_stream(seed=7)[15].frame.head(20))
        version = register(through_up, python_model=good, input_example=example,
                           output_example=good.predict(None, example), reference=example,
                           batch_set="registered-through-up", params={}, metrics={}, tags={},
                           experiment="greenlight-synthetic-through-up").version
        promote(through_up, version, reason="registered through up", expected_from=1)
        with fluent(mlflow_url):
            import mlflow

            uri = mlflow.MlflowClient().get_model_version("greenlight-synthetic",
                                                          str(version)).source
            source = mlflow.MlflowClient().get_logged_model(uri.split("/")[-1]) \
                .artifact_location if uri.startswith("models:/") else uri
        assert source.startswith("mlflow-artifacts:"), source
        Home(champion_home).record_servers({"MLFLOW_TRACKING_URI": mlflow_url},
                                           {"MLFLOW_TRACKING_URI": f"{mlflow_url}/health"})

        serve_port = stack.free_port()
        env = {k: v for k, v in os.environ.items()
               if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
        serve = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(serve_port),
             "--home", str(champion_home)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        url = f"http://127.0.0.1:{serve_port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                health = httpx.get(f"{url}/health")
            except httpx.HTTPError:
                health = None
            if health is not None and (health.status_code == 200
                                       or health.json()["registry_error"]):
                break
            assert serve.poll() is None and time.monotonic() < deadline, serve.stdout.read()
            time.sleep(0.3)
        assert health.status_code == 200, health.text
        assert health.json()["champion"] == version
        assert httpx.post(f"{url}/predict", json=records(n=1)[0]).json()["version"] == version
    finally:
        if serve is not None:
            os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(timeout=30)
        stack.stop([server])

    # without the server (up stopped), the reason is whole, and says what to do
    app = create_app(registry(champion_home), tmp_path / "serve", poll_seconds=60)
    with running(app) as url:
        health = httpx.get(f"{url}/health")
    assert health.status_code == 503
    error = health.json()["registry_error"]
    assert "greenlight up" in error and "MLFLOW_TRACKING_URI" in error, error
    assert error.endswith(("URL", ".")), error
