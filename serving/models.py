"""Loaded versions and the router's single reference to them (blue-green hot swap).

A request reads `Router.live` once and keeps that object to the end, so a swap never
changes the model under a request in flight; the swap itself is one attribute assignment.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import TypeAdapter

from core.names import CHALLENGER, CHAMPION
from registry import audit, promote
from registry.store import Registry
from registry.versions import aliases, load_pyfunc
from serving import canary
from serving.schema import record_adapter

log = logging.getLogger("greenlight.serving")
REASON_CHARS = 300  # /health and the log carry one line, of whole sentences


def reason(exc: BaseException, tracking_uri: str, limit: int = REASON_CHARS) -> str:
    """Why a load or a poll failed, in one line that ends where a sentence ends.

    MLflow's own messages run over several lines and sentences; cutting them at a fixed
    width left /health mid-sentence. A version registered through an MLflow server (its
    artifacts at `mlflow-artifacts:`) loads only through that server: say what to do."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    if "mlflow-artifacts" in text and not tracking_uri.startswith(("http://", "https://")):
        return (f"{type(exc).__name__}: its artifacts are served by an MLflow server "
                f"(mlflow-artifacts: URI) but the registry here is {tracking_uri}; start "
                "`greenlight up` on this state dir (serve finds it) or set MLFLOW_TRACKING_URI "
                "to that server's URL")
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = cut.rfind(". ")
    if end > limit // 3:
        return cut[:end + 1]
    return cut[:cut.rfind(" ")].rstrip(",;:") + " (...)" if " " in cut else cut


@dataclass(frozen=True)
class Served:
    """One registered version, loaded, warmed up, with the validator of its signature."""

    version: int
    model: Any
    fields: list[str]
    records: TypeAdapter
    loaded_at: str

    def score(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Label, score and confidence (max class probability) per row."""
        if hasattr(self.model, "score_rows"):  # the fast path: no pandas for a few rows
            scores = self.model.score_rows(rows)
            if not self.model.is_classifier:
                return [{"prediction": p, "confidence": None} for p in scores.tolist()]
            if scores.ndim == 2:  # multiclass: one probability per class
                return per_class(self.model.label(scores).tolist(), scores,
                                 [str(c) for c in self.model.labels])
            preds, scores = self.model.label(scores).tolist(), scores.tolist()
        else:
            out = self.model.predict(None, pd.DataFrame(rows, columns=self.fields))
            if "score" not in out:
                return [{"prediction": p, "confidence": None} for p in out["prediction"]]
            preds, scores = out["prediction"].tolist(), out["score"].tolist()
        return [{"prediction": p, "score": s, "confidence": max(s, 1.0 - s)}
                for p, s in zip(preds, scores, strict=True)]


def per_class(preds: list[Any], scores: Any, classes: list[str]) -> list[dict[str, Any]]:
    """Multiclass answers: the class, each class's probability, and the confidence (the
    largest), which is also `score`: the canary's score guard and the prediction log
    compare it as they compare a binary model's positive-class probability."""
    out = []
    for p, row in zip(preds, scores.tolist(), strict=True):
        top = max(row)
        out.append({"prediction": p, "score": top, "confidence": top,
                    "probabilities": dict(zip(classes, row, strict=True))})
    return out


def load(reg: Registry, version: int) -> Served:
    """Load a version of the configured model and score one row before it may serve."""
    pyfunc = load_pyfunc(reg, version)
    fields, adapter = record_adapter(pyfunc.metadata.get_input_schema())
    served = Served(version, pyfunc.unwrap_python_model(), fields, adapter,
                    datetime.now(UTC).isoformat(timespec="seconds"))
    cats = getattr(served.model, "categories", {}) or {}
    warm = {f: (cats[f][0] if cats.get(f) else "") if f in cats else 0.0 for f in fields}
    served.score([warm])  # warm-up: the first real request pays no lazy-initialisation cost
    return served


@dataclass(frozen=True)
class Live:
    """Everything a request needs, swapped as one reference."""

    champion: Served | None = None
    challenger: Served | None = None
    aliases: dict[str, int] = field(default_factory=dict)
    canary_fraction: float = 0.0


def bucket(key: str) -> float:
    """A stable number in [0, 1) per request key: the same key always gets the same variant."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0 ** 64


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def why_swapped(reg: Registry, alias: str, new: int | None) -> str:
    """Why an alias now points at `new`, in one line: the promotion record that moved the
    champion there (its action, who, why), else what the registry says."""
    if new is None:
        return f"@{alias} removed from the registry"
    if alias == CHAMPION:
        try:
            moves = [r for r in promote.records(reg) if r.get("to") == new]
        except Exception as exc:  # the log unreadable: the swap still happens and is said
            return f"@champion points at v{new} (promotion log unreadable: {type(exc).__name__})"
        if moves:
            last = moves[-1]
            text = " ".join(f"{last.get('action')} by {last.get('by')}: "
                            f"{last.get('reason')}".split())
            return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 5] + " (...)"
        return f"@champion points at v{new} (no promotion record names it)"
    return f"@{alias} points at v{new}"


class Router:
    """Polls the registry and swaps in the versions `@champion` and `@challenger` point to."""

    def __init__(self, reg: Registry, home: Path, *, poll_seconds: float = 5.0,
                 shadow: bool = False, on_swap: Any = None) -> None:
        self.reg, self.home, self.poll_seconds, self.shadow = reg, home, poll_seconds, shadow
        self.live = Live()
        self.on_swap = on_swap or (lambda alias, old, new, why: None)
        self.last_error: str | None = None
        self.broken: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _resolve(self, alias: str, version: int | None, have: Served | None,
                 problems: list[str]) -> Served | None:
        """The model to serve for an alias. A version that fails to load or to warm up is
        never served (and not retried every poll): the champion keeps the old one."""
        if version is None:
            return None if alias == CHALLENGER else have
        if have is not None and have.version == version:
            return have
        if version in self.broken:
            problems.append(self.broken[version])
            return have if alias == CHAMPION else None
        try:
            return load(self.reg, version)
        except Exception as exc:
            self.broken[version] = f"v{version} (@{alias}) not served: " \
                                   f"{reason(exc, self.reg.tracking_uri)}"
            log.error("%s", self.broken[version])
            problems.append(self.broken[version])
            return have if alias == CHAMPION else None

    def refresh(self) -> Live:
        """Re-resolve the aliases; load and warm up any version that changed, then swap once.

        A failure (registry down, a broken version) keeps the current models serving."""
        current = self.live
        now = aliases(self.reg)
        if now != current.aliases:  # a move: one greenlight made, or one from outside
            audit.check(self.reg)  # recorded and told if outside; a lost registry raises
        problems: list[str] = []
        chosen = {alias: self._resolve(alias, now.get(alias), getattr(current, alias), problems)
                  for alias in (CHAMPION, CHALLENGER)}
        fraction = canary.read_state(self.home)["fraction"] if chosen[CHALLENGER] else 0.0
        self.live = Live(chosen[CHAMPION], chosen[CHALLENGER], now, fraction)
        self.last_error = "; ".join(problems) or None
        for alias in (CHAMPION, CHALLENGER):
            new, old = (getattr(s, "version", None) for s in (chosen[alias],
                                                              getattr(current, alias)))
            if new != old:
                why = why_swapped(self.reg, alias, new)
                log.info("@%s: %s -> %s (%s)", alias, _v(old), _v(new), why)
                self.on_swap(alias, old, new, why)
        return self.live

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as exc:  # keep serving what is loaded; say why on /health
                self.last_error = reason(exc, self.reg.tracking_uri)
                log.warning("registry poll failed, still serving: %s", self.last_error)

    def start(self) -> None:
        try:
            self.refresh()
        except Exception as exc:
            self.last_error = reason(exc, self.reg.tracking_uri)
        self._thread = threading.Thread(target=self._poll, name="greenlight-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def pick(self, live: Live, key: str) -> tuple[str, Served]:
        """Canary: a sticky `canary_fraction` of keys goes to the challenger."""
        if live.challenger is not None and bucket(key) < live.canary_fraction:
            return "canary", live.challenger
        return CHAMPION, live.champion


def monotonic_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
