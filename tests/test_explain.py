"""Champion vs challenger on the gate window (tasks/gate/explain.py), on real models of the
synthetic stream: W07 (a new market) is won in market=west; at W17 (price elasticity
changes by age) the challenger uses price differently although price itself has not moved."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.data.replay import synthetic_batch
from tasks.data.spec import load_spec
from tasks.gate.explain import explain, write_disagreements
from tasks.monitoring import wide
from tasks.training.train import fit, split_gate_window

SPEC = load_spec("synthetic")
WEEK = {"W07": 5, "W17": 15}  # stream index of the file 2026-W07 (covariate), 2026-W17 (concept)


def _pair(first: int, change: int):
    """A champion trained on the weeks before `change`, a challenger on the weeks up to and
    with it, gated on its newest 900 rows, as a cycle retrains."""
    weeks = {i: synthetic_batch(i).frame for i in range(first, change + 1)}
    champion = fit(pd.concat([weeks[i] for i in range(first, change)]), SPEC, 7.0)
    split = split_gate_window(pd.concat(weeks.values()), SPEC, 900, None)
    return champion, fit(split.train, SPEC, 7.0), split.gate, weeks


@pytest.fixture(scope="module")
def w07():
    return _pair(0, WEEK["W07"])


@pytest.fixture(scope="module")
def w17():
    return _pair(10, WEEK["W17"])  # a champion that knows inflation (W12), not the concept


def test_w07_the_challenger_gains_in_market_west_and_leans_on_market(w07, tmp_path):
    champion, challenger, window, _ = w07
    found = explain(champion, challenger, window, SPEC)
    assert found.segment_feature == "market"  # the spec's slice feature
    judged = [s for s in found.segments if s["judged"]]
    best = max(judged, key=lambda s: s["gain"])
    assert best["value"] == "west" and best["ci_low"] > 0, found.segments
    assert found.features[0]["feature"] == "market"
    assert found.features[0]["challenger"] > found.features[0]["champion"]  # relied on more
    assert "market=west gains most" in found.segment_line()
    assert all(r["market"] == "west" for r in found.top_rows())
    # a few lines, a small table; every row in the CSV
    assert len(found.lines()) == 3 and len(found.top_rows()) == 5
    assert len(found.top_rows()[0]) <= 8
    path = write_disagreements(found, tmp_path / "why" / "disagreements.csv")
    assert len(pd.read_csv(path)) == found.rows == len(window)
    assert len(found.text()) <= 1500 and found.to_dict()["lines"] == found.lines()


def test_w17_price_is_used_differently_with_no_drift_in_price(w17):
    champion, challenger, window, weeks = w17
    found = explain(champion, challenger, window, SPEC)
    assert found.features[0]["feature"] == "price", found.features
    # price itself did not move against the champion's reference (its newest week)
    judged = wide.column_drift(weeks[WEEK["W17"] - 1], weeks[WEEK["W17"]], ["price"], [])
    assert not judged["price"].drifted, judged
    assert found.feature_line().startswith("features used most differently")
    assert "price (" in found.feature_line()


def test_the_approval_form_the_cycle_artifact_and_the_card_say_it(w07, champion_home,
                                                                  tmp_path):
    """The W07 explanation where people look: the approval form's section, the cycle
    artifact's, and the model card of a version on a real MLflow store."""
    from registry import cards
    from tasks.gate.explain import for_gate
    from tasks.publish.reports import approval_markdown, cycle_markdown
    from tests.approval_helpers import registry

    champion, challenger, window, _ = w07
    csv = tmp_path / "why" / "disagreements.csv"
    found = for_gate(champion, challenger, window, SPEC, [], csv)
    why = {**found.to_dict(), "path": str(csv)}
    form = approval_markdown("m", 2, "clear", "clear: gain", [], [], {}, why=why)
    section = form.split("### Why: what the challenger does differently")[1].split("###")[0]
    assert "market=west gains most" in section and "features used most differently" in section
    assert section.count("| west |") == 5 and str(csv) in section
    artifact = cycle_markdown("synthetic", "retrain", [], [], {
        "gate": {"reason": "clear: gain"}, "why": why}, {}, "sqlite://")
    assert "### Why: champion vs challenger on the gate window" in artifact
    assert "market=west gains most" in artifact
    reg = registry(champion_home)
    cards.explain(reg, 1, found.text())
    card = reg.client.get_model_version(reg.model_name, "1").description
    assert "**What changed vs the champion (gate window):** features used most " in card
    assert "market=west gains most" in card
    assert for_gate(champion, challenger, window.drop(columns=["price"]), SPEC, [],
                    csv) is None  # a failure explains nothing and blocks nothing
