"""End to end on the multiclass ticket stream: real Prefect runs of the cycle, a real MLflow
store, on batches whose drifts are known (tasks/data/replay_multiclass.py)."""

from __future__ import annotations

import json

import pytest

from flows.cycle import cycle, registry_for
from registry import versions
from tasks.data.home import Home
from tasks.data.replay import write_batch
from tasks.data.replay_multiclass import multiclass_batch
from tasks.data.spec import load_spec

pytestmark = pytest.mark.e2e


def test_the_cycle_takes_a_multiclass_dataset_through_drift_quarantine_and_a_prior_shift(
        tmp_path):
    """Week 0 bootstraps a champion; the new region (week 5) is drift and a promoted
    retrain; week 8's unknown team quarantines its file in one line; the billing surge
    (week 10) is label drift; the champion serves K probabilities throughout."""
    home = Home(tmp_path / "gl").ensure()
    spec = load_spec("synthetic_multiclass")
    summaries = {}
    for index in (0, 5, 8, 10):
        write_batch(multiclass_batch(index, rows=1500), home.landing)
        summaries[index] = cycle(dataset="synthetic_multiclass", policy="auto",
                                 home=str(home.root))
    promotions = [json.loads(line) for line in home.root.joinpath("promotions.jsonl")
                  .read_text().splitlines()]
    moves = [p for p in promotions if p.get("action") == "promote"]
    assert moves[0]["reason"].startswith("bootstrap") and len(moves) >= 2
    reports = list(home.quarantine.glob("*/report.md"))
    assert len(reports) == 1 and "refund" in reports[0].read_text()
    decided = [json.loads(line) for line in home.root.joinpath("manifest.jsonl").read_text()
               .splitlines()]
    decided = [d for d in decided if "file" not in d and "decision" in d]
    assert [d["decision"] for d in decided] == ["bootstrap", "retrain", "retrain"], decided
    assert decided[1]["drift_share"] > 0.3 and decided[2]["label_drifted"], decided
    reg = registry_for(home, spec)
    champion = versions.load_model(reg, reg.client.get_model_version_by_alias(
        reg.model_name, "champion").version)
    scores = champion.score(multiclass_batch(11, rows=50).frame)
    assert scores.shape == (50, 4) and champion.labels == spec.classes
    assert summaries[10] is not None
