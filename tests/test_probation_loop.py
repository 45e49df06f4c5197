"""A bad promotion in the real loop is rolled back by itself, and the service follows.

A person approves a challenger that learned the target backwards (it passed no gate: the
approval is the mistake). The next cycle lands a labelled batch, judges the champion on
probation against @previous with the gate's paired bootstrap, and swaps back; a service
that was serving the bad version serves the old one again within its poll.
"""

from __future__ import annotations

import time

import httpx
import pandas as pd
import pytest

from cli.views import cycle_line
from core.names import CHAMPION, PREVIOUS
from flows.cycle import cycle
from flows.params import Training
from registry import probation, promote, versions
from registry.register import register
from serving.app import create_app
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.lake import BATCH_COLUMN
from tasks.data.spec import load_spec
from tasks.training.evaluate import evaluate
from tasks.training.train import train_challenger
from tests.approval_helpers import land, registry
from tests.serving_helpers import bootstrap_champion, running

pytestmark = pytest.mark.e2e


def _approve_a_backwards_model(home) -> int:
    """Register a model trained on batch 1 with its labels flipped, and promote it as an
    approval would (by a person, over the gate's head)."""
    spec, reg = load_spec("synthetic"), registry(home)
    batch = sources.synthetic_stream(seed=7)[1]
    flipped = batch.frame.assign(**{spec.target: 1 - batch.frame[spec.target],
                                    BATCH_COLUMN: batch.label})
    ch = train_challenger(flipped, spec, gate_rows=900, half_life_days=None, window_days=None,
                          reference_rows=Training().reference_rows, batch_column=BATCH_COLUMN)
    sample = ch.model.example(ch.split.gate.head(5))
    version = register(reg, python_model=ch.model, input_example=sample,
                       output_example=ch.model.predict(None, sample), reference=ch.reference,
                       batch_set="backwards", params=ch.params, tags={},
                       metrics={f"gate_challenger_{k}": v for k, v in
                                evaluate(ch.model, ch.split.gate, spec).items()},
                       experiment=f"{reg.model_name}-training").version
    promote.promote(reg, version, reason="approved in a hurry", by="a person",
                    expected_from=versions.aliases(reg)[CHAMPION])
    return version


def _serving(url: str) -> int | None:
    return httpx.get(f"{url}/model").json()["serving"]["champion"]["version"]


def test_a_bad_promotion_is_rolled_back_by_itself_and_the_service_swaps_back(tmp_path):
    home = tmp_path / "gl"
    bootstrap_champion(home)
    reg = registry(home)
    bad = _approve_a_backwards_model(home)
    assert probation.current(reg).version == bad
    with running(create_app(reg, Home(home).root, poll_seconds=0.2)) as url:
        deadline = time.monotonic() + 60
        while _serving(url) != bad and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _serving(url) == bad
        land(home, 2)
        summary = cycle(dataset="synthetic", policy="auto", home=str(home))
        rolled = time.monotonic()
        while _serving(url) != 1 and time.monotonic() < rolled + 30:
            time.sleep(0.1)
        assert _serving(url) == 1  # the service followed the rollback
    said = summary["probation"]
    assert said["action"] == "rollback" and said["version"] == bad, said
    assert "@previous is better" in said["reason"] and said["batches"]
    line = cycle_line(summary, "synthetic")
    assert f"v{bad} ROLLED BACK to v1 on probation: @previous is better" in line
    assert "not retrained against the champion just rolled back" in line
    assert versions.aliases(reg)[CHAMPION] == 1 and versions.aliases(reg)[PREVIOUS] == bad
    last = promote.records(reg)[-1]
    assert last["action"] == "auto-rollback" and last["from"] == bad and last["to"] == 1
    assert last["by"] == "greenlight" and last["metrics"]["previous"] > last["metrics"][
        "champion"]
    assert probation.current(reg) is None
    frame = pd.DataFrame(promote.records(reg))
    assert list(frame["action"].tail(2)) == ["promote", "auto-rollback"]
