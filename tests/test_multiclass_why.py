"""Why, for a multiclass model (issue 34 on issue 35's attribution): TreeSHAP per class
(tasks/monitoring/attribution.py), the challenger's explanation (tasks/gate/explain.py) and
the batch per segment (tasks/monitoring/why.py, segments.py), on real LightGBM models of
the seeded ticket stream: at the covariate change (region east arrives) the challenger
leans on region and the decay is east's alone; at the concept change (a minimum fee flips
who writes about billing) it uses order_value differently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.data.replay_multiclass import MULTICLASS_CHANGE_POINTS, multiclass_batch
from tasks.data.spec import load_spec
from tasks.gate.explain import explain, write_disagreements
from tasks.monitoring import attribution
from tasks.monitoring.estimation import fit_estimator
from tasks.monitoring.monitor import Limits, monitor_batch
from tasks.training.evaluate import evaluate
from tasks.training.model import GreenlightModel
from tasks.training.train import fit, split_gate_window

SPEC = load_spec("synthetic_multiclass")
EAST, FEE = MULTICLASS_CHANGE_POINTS["covariate"], MULTICLASS_CHANGE_POINTS["concept"]


def _weeks(first: int, last: int) -> dict[int, pd.DataFrame]:
    return {i: multiclass_batch(i, rows=1500).frame for i in range(first, last + 1)}


def _pair(first: int, change: int):
    """A champion on the weeks before `change`, a challenger on the weeks up to and with it,
    gated on its newest 900 rows, as a cycle retrains."""
    weeks = _weeks(first, change)
    champion = fit(pd.concat([weeks[i] for i in range(first, change)]), SPEC, 7.0)
    split = split_gate_window(pd.concat(weeks.values()), SPEC, 900, None)
    return champion, fit(split.train, SPEC, 7.0), split.gate, weeks


@pytest.fixture(scope="module")
def east():
    return _pair(0, EAST)


def test_contributions_add_up_to_each_class_probability(east):
    """One block per class: in raw space they add up to each class's margin, in score space
    to each class's probability, single model or ensemble; a feature moves probability
    between classes and creates none (its contributions over the classes sum to 0)."""
    champion, challenger, gate, _ = east
    rows = gate.head(300)
    raw = attribution.contributions(champion, rows)
    assert raw.values.shape == (300, len(SPEC.features), len(SPEC.classes))
    np.testing.assert_allclose(raw.total(), attribution.raw_score(champion, rows), atol=1e-9)
    score = attribution.contributions(champion, rows, "score")
    np.testing.assert_allclose(score.total(), champion.score(rows), atol=1e-9)
    np.testing.assert_allclose(score.values.sum(axis=2), 0.0, atol=1e-9)
    both = GreenlightModel.ensemble([champion, challenger], [1.0, 3.0])
    mixed = attribution.contributions(both, rows)
    assert mixed.space == "score"
    np.testing.assert_allclose(mixed.total(), both.score(rows), atol=1e-9)
    # what the model relies on: each feature's |contribution| summed over the classes,
    # in probability units (each row's vector moves at most 2 in all)
    leaning = score.mean_abs()
    assert list(leaning.index) == SPEC.features and 0 < leaning.max() < 2


def test_at_the_covariate_change_the_challenger_leans_on_region(east, tmp_path):
    """East tickets are mostly shipping: the challenger that saw them relies on region, the
    champion barely does; the rows they disagree on most are east tickets, each model's
    class side by side, and every row goes to the CSV."""
    champion, challenger, gate, _ = east
    found = explain(champion, challenger, gate, SPEC)
    top = found.features[0]
    assert top["feature"] == "region" and top["challenger"] > 4 * top["champion"], top
    assert "region (" in found.feature_line() and "relied on more" in found.feature_line()
    assert found.segment_feature == "region" and {s["value"] for s in found.segments} == {
        "east", "north", "south"} and all(s["judged"] for s in found.segments)
    rows = found.top_rows()
    assert [r["region"] for r in rows] == ["east"] * len(rows) == ["east"] * 5
    assert all(r["champion"] in SPEC.classes and r["challenger"] in SPEC.classes
               and r["champion"] != r["challenger"] and 0.5 < r["difference"] <= 1
               for r in rows), rows
    path = write_disagreements(found, tmp_path / "why" / "disagreements.csv")
    assert len(pd.read_csv(path)) == len(gate) and "text" in found.to_dict()


def test_at_the_concept_change_order_value_is_used_differently():
    """From the fee, small orders write about billing: nothing in the features moved, the
    challenger uses order_value most differently."""
    champion, challenger, gate, weeks = _pair(10, FEE)
    found = explain(champion, challenger, gate, SPEC)
    assert found.features[0]["feature"] == "order_value", found.feature_line()


def test_monitoring_names_the_decaying_segment_and_the_attribution_drift(tmp_path):
    """Week 5 monitored against a champion of weeks 0-3 (its estimator and registered
    metric from week 4, as a cycle keeps): the decay is region east's alone and the line
    says so; attribution drift is computed for every feature, small on a week like the
    reference and largest on device age, which east's older devices moved."""
    weeks = _weeks(0, EAST)
    champion = fit(pd.concat([weeks[i] for i in range(EAST - 1)]), SPEC, 7.0)
    champion.performance = fit_estimator(champion, weeks[EAST - 1], SPEC).to_json()
    registered = evaluate(champion, weeks[EAST - 1], SPEC)[SPEC.primary_metric]
    found = monitor_batch("w05", weeks[EAST], weeks[EAST - 2], champion, registered, SPEC,
                          tmp_path, limits=Limits(max_decay=0.05, max_estimated_decay=0.05))
    by = {s["value"]: s for s in found.segments}
    assert found.segment_feature == "region" and by["east"]["new"]
    assert found.segment_note.startswith(
        f"decay {by['east']['decay']:.2f} in region=east; "
        f"{by['east']['decay_elsewhere']:.2f} elsewhere (new segment)"), found.segment_note
    assert by["east"]["decay"] > 0.1 > by["east"]["decay_elsewhere"]
    assert set(found.attribution_shift) == set(SPEC.features)
    assert attribution.largest_shift(found.attribution_shift)[0] == "device_age_days"
    metrics = found.run_metrics(SPEC.primary_metric)
    assert "segment.region:east.decay" in metrics and "attribution.device_age_days" in metrics
    like = attribution.batch_shift(champion, weeks[EAST - 2],
                                   multiclass_batch(EAST - 2, seed=11, rows=1500).frame)
    assert max(abs(v) for v in like.values()) < 0.05 < found.attribution_shift[
        "device_age_days"], like


@pytest.mark.e2e
def test_the_cycle_says_why_for_a_multiclass_model(tmp_path):
    """Real Prefect runs of the cycle and a real MLflow store: week 0 bootstraps a champion;
    week 5's monitoring names region east's decay and records attribution drift for every
    feature, and its retrain explains the challenger (features, segments by region, rows),
    where both were skipped with a warning before."""
    from flows.cycle import cycle
    from tasks.data.home import Home
    from tasks.data.replay import write_batch

    home = Home(tmp_path / "gl").ensure()
    for index in (0, EAST):
        write_batch(multiclass_batch(index, rows=1500), home.landing)
        summary = cycle(dataset="synthetic_multiclass", policy="auto", home=str(home.root))
    seen = summary["monitored"][0]
    assert "in region=east" in seen["segment_note"], seen
    manifest = [json.loads(line) for line in (home.root / "manifest.jsonl").read_text()
                .splitlines()]
    shift = next(m for m in manifest if m.get("id") == seen["batch_id"]
                 and m.get("attribution_shift"))["attribution_shift"]
    assert set(shift) == set(SPEC.features)
    why = summary["why"]
    assert why["segment_feature"] == "region" and len(why["features"]) == len(SPEC.features)
    assert why["lines"][0].startswith("- features used most differently") and why["text"]
    assert all(r["challenger"] in SPEC.classes for r in why["disagreements"])
    assert Path(why["path"]).is_file()
