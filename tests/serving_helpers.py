"""A registered champion (and previous) from the real loop, and a real uvicorn in a thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import uvicorn

from cli import stack
from flows.cycle import cycle
from flows.params import Training
from registry.promote import promote
from registry.register import register
from registry.store import Registry
from registry.versions import load_model
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.lake import BATCH_COLUMN
from tasks.data.spec import load_spec
from tasks.training.model import GreenlightModel
from tasks.training.train import train_challenger
from tests.approval_helpers import land, registry


def bootstrap_champion(home: Path) -> dict:
    """The real cycle on synthetic batch 0: v1, the bootstrap champion."""
    land(home, 0)
    return cycle(dataset="synthetic", policy="auto", home=str(home))


def retrain_after_concept_change(home: Path) -> dict:
    """A forced retrain on batch 15 (after the concept change) with min_delta -1: v2, which
    becomes champion, so @previous is v1."""
    land(home, 15)
    return cycle(dataset="synthetic", policy="auto", force_retrain=True,
                 training=Training(min_delta=-1.0), home=str(home))


def two_versions(home: Path) -> None:
    """Run the real cycle twice on the seeded synthetic stream: v1 is the bootstrap champion
    (batch 0), v2 a retrain after the concept change (batch 15) that becomes champion, so
    @previous is v1. The tests get copies of it built once per run (tests/conftest.py)."""
    bootstrap_champion(home)
    retrain_after_concept_change(home)


def two_versions_direct(home: Path) -> None:
    """The same registry state as `two_versions` (v1 on batch 0, v2 on batches 0 and 15 is
    champion, @previous v1) from the same training, registration and promotion code, but
    without a cycle: no Prefect, so a benchmark that needs only a champion does not wait on
    Prefect's temporary server (it misses its start limit on a busy machine)."""
    Home(home).ensure()
    spec, training, reg = load_spec("synthetic"), Training(), registry(home)
    stream = sources.synthetic_stream(seed=7)
    champion = None
    for batches in ([0], [0, 15]):
        history = pd.concat([stream[i].frame.assign(**{BATCH_COLUMN: stream[i].label})
                             for i in batches], ignore_index=True)
        ch = train_challenger(history, spec, gate_rows=int(training.gate_fraction * 3000),
                              half_life_days=None, window_days=None,
                              reference_rows=training.reference_rows, batch_column=BATCH_COLUMN)
        sample = ch.model.example(ch.split.gate.head(5))
        version = register(reg, python_model=ch.model, input_example=sample,
                           output_example=ch.model.predict(None, sample), reference=ch.reference,
                           batch_set=ch.batch_set, params=ch.params, metrics={}, tags={},
                           experiment=f"{reg.model_name}-training").version
        promote(reg, version, reason="benchmark state", expected_from=champion)
        champion = version


def records(index: int = 15, n: int = 500) -> list[dict[str, Any]]:
    """Realistic request bodies: feature rows of one synthetic batch, as JSON would carry."""
    frame = sources.synthetic_stream(seed=7)[index].frame
    cols = ["market", "channel", "income", "age", "price", "discount", "tenure_months"]
    return json.loads(frame[cols].head(n).to_json(orient="records"))


@contextmanager
def running(app: Any, **bounds: Any) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, configured as `greenlight serve`
    configures it (`bounds`: limit_concurrency, timeout_keep_alive); yields its base URL,
    stops it after."""
    from serving.guards import server_config

    port = stack.free_port()
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, **bounds))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Failing(GreenlightModel):
    """A registered version that cannot score at all: it must never pass its warm-up.

    Registered cloudpickled (no `as_files`), as every version was before models from code:
    the class itself, with its broken scoring, is what loads."""

    as_files = None

    def score_rows(self, rows: list[dict[str, Any]]) -> Any:
        raise RuntimeError("this version is broken")


class FailingOnRealRows(GreenlightModel):
    """Passes the warm-up row (all zeros) but fails on real traffic: the canary error
    guard must catch it. Cloudpickled, like `Failing`."""

    as_files = None

    def score_rows(self, rows: list[dict[str, Any]]) -> Any:
        if any(row["income"] for row in rows):
            raise RuntimeError("this version is broken")
        return super().score_rows(rows)


def register_failing(reg: Registry, like: int, kind: type = Failing) -> int:
    """Register a copy of version `like` (same signature) whose scoring fails."""
    good = load_model(reg, like)
    bad = kind.__new__(kind)
    bad.__dict__.update(good.__dict__)
    example = good.example(sources.synthetic_stream(seed=7)[15].frame.head(20))
    return register(reg, python_model=bad, input_example=example,
                    output_example=good.predict(None, example), reference=example,
                    batch_set=f"test-{kind.__name__}", params={}, metrics={}, tags={},
                    experiment=f"{reg.model_name}-training").version
