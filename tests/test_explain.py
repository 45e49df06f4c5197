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
