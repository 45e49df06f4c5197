"""End to end on slices of the real datasets in ../shared/data, each with its own spec and suite."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from cli.demo import run_demo
from cli.status import status
from core import names
from flows.cycle import registry_for
from registry import versions
from tasks.data.home import Home
from tasks.data.spec import load_spec
from tests.conftest import shared_file, shipped_training

pytestmark = pytest.mark.e2e


def _replay(tmp_path, dataset: str, data, limit: int, warmup: int, parameters=None):
    root = tmp_path / "gl"
    run_demo(root, dataset=dataset, data=data, freq="M", warmup=warmup, limit=limit, seed=7,
             console=Console(file=io.StringIO(), width=200), parameters=parameters)
    home = Home.from_env(root)
    reg = registry_for(home, load_spec(dataset))
    return home, reg, status(home, reg)


def test_elec2_classification_through_the_loop(tmp_path):
    home, reg, state = _replay(tmp_path, "elec2", shared_file("elec2", "elec2.csv.gz"),
                               limit=14, warmup=6)
    batches = state["batches"]
    assert len(batches) == 14 and all(b["status"] == "accepted" for b in batches)
    assert state["champion"] is not None
    monitored = [b for b in batches[6:]]
    assert all(b["decision"] in ("retrain", "no action") for b in monitored)
    # Accuracy of a 6-feature model on unseen months: PROVENANCE's static baseline is 0.63.
    mean = sum(b["champion_metric"] for b in monitored) / len(monitored)
    assert 0.6 < mean < 0.9
    # The Victorian fields switch on in May 1997 (batch 12): drift must say so.
    may = next(b for b in batches if b["file"] == "1997-05.csv")
    assert may["drift_share"] >= 0.5 and may["decision"] == "retrain"
    champion = versions.load_model(reg, state["champion"])
    labels = champion.predict(None, versions.load_reference(
        reg, versions.by_alias(reg, "champion")).head(20))["prediction"]
    assert set(labels) <= {"UP", "DOWN"}


def test_bike_sharing_regression_through_the_loop(tmp_path):
    """With the shipped defaults (not the suite's pinned recipe): every challenger is the
    leaf-refit ensemble of the complete grid, one version with its members tagged."""
    home, reg, state = _replay(tmp_path, "bike_sharing", shared_file("bike_sharing", "hour.csv"),
                               limit=8, warmup=4, parameters={"training": shipped_training()})
    assert state["champion"] is not None
    info = versions.by_alias(reg, "champion")
    members = json.loads(info.tags[names.ENSEMBLE_TAG])
    assert len(members) > 2 and any("leaves refit" in m for m in members), members
    assert len(versions.load_model(reg, state["champion"]).members) > 2
    metrics = reg.client.get_run(info.run_id).data.metrics
    assert "gate_challenger_mae" in metrics and metrics["gate_challenger_mae"] > 0
    monitored = state["batches"][4:]
    assert all(b["champion_metric"] > 0 for b in monitored)  # MAE on each new month
    # Demand grows through 2011: the stale model decays and at least one retrain is promoted.
    assert any(b["promoted_version"] for b in monitored)
