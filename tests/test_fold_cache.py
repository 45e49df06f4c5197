"""The backtest keeps what earlier cycles measured (issue 31, goal 4): with folds tiled in
batches (Training.fold_layout "batches") a later cycle reuses the older batches' fold
scores, from memory or from the state dir's file, and chooses exactly as a fresh backtest."""

import numpy as np
import pandas as pd
import pytest

from tasks.training.backtest import FoldScores, batch_fold_bounds
from tasks.training.recipe import choose_before_gate
from tests.test_recipe import FAST, SPEC

WEEK = 7 * 24  # rows in a weekly batch of hourly rows


def weekly(weeks: int, seed: int = 3) -> pd.DataFrame:
    """Hourly rows labelled by week; y follows x1 and an interaction, then (from the sixth
    week) its opposite: a concept change for the backtest to follow."""
    rng = np.random.default_rng(seed)
    n = weeks * WEEK
    x = rng.normal(size=(n, 3))
    y = ((x[:, 0] + 0.7 * x[:, 1] * x[:, 2] + rng.normal(0, 0.3, n)) > 0).astype(int)
    y[5 * WEEK:] ^= 1
    ts = pd.date_range("2025-01-06", periods=n, freq="h")  # a Monday: weeks are batches
    return pd.DataFrame({"ts": ts, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y,
                         "batch": ts.strftime("%G-W%V")})


def test_folds_are_tiled_back_from_the_end_of_each_batch():
    """The newest batch's run ends where its gate window begins; an older batch's folds
    start at its own end (its gate window), and a run shorter than a fold gives none."""
    batches = pd.Series(["a"] * 10 + ["b"] * 2 + ["c"] * 7 + ["d"] * 5)
    assert batch_fold_bounds(batches, 4, 3) == [(7, 10), (13, 16), (16, 19), (21, 24)]
    assert batch_fold_bounds(batches, 5, 3) == [(4, 7), (7, 10), (13, 16), (16, 19), (21, 24)]
    # a fold keeps at least its own size of older rows to train on, so row 0 is never one
    assert batch_fold_bounds(batches, 6, 3) is None
    assert batch_fold_bounds(pd.Series(["a"] * 4), 1, 5) is None


def choose(history: pd.DataFrame, scores: FoldScores | None, layout: str = "batches"):
    return choose_before_gate(history, SPEC, gate_rows=WEEK // 3, folds=6,
                              batch_column="batch", ensemble_tau=0.1, leaf_refit=True,
                              fold_layout=layout, scores=scores)


@pytest.fixture(autouse=True)
def fast_backtest(monkeypatch):
    """The backtest's own settings, smaller (the scores, not their size, are checked)."""
    import tasks.training.recipe as recipe

    monkeypatch.setattr(recipe, "BACKTEST_PARAMS", {**recipe.BACKTEST_PARAMS, **FAST})


def test_the_next_cycle_reuses_the_older_batches_scores_and_chooses_as_a_fresh_backtest():
    data = weekly(weeks=9)
    weeks = data["batch"].unique()
    scores = FoldScores()
    for week in weeks[-3:]:  # three cycles, each with one more batch
        history = data[data["batch"] <= week]
        before = (scores.hits, len(scores.scores))
        cached = choose(history, scores)
        fresh = choose(history, None)
        pd.testing.assert_frame_equal(cached.table, fresh.table)
        assert cached.weights == fresh.weights and cached.folds == fresh.folds
        if week != weeks[-3]:
            hits, new = scores.hits - before[0], len(scores.scores) - before[1]
            assert hits > 0 and new > 0, (hits, new)
    # six folds of a third of a week: two in the newest batch, then each older batch's
    ends = [pd.Timestamp(f["end"]) for f in fresh.folds]
    assert len({data.loc[data["ts"] == e, "batch"].item() for e in ends}) == 3


def test_the_scores_survive_the_process_in_the_state_dir(tmp_path):
    """The flow keeps them under the state dir: the next cycle's process finds the older
    folds there; a torn last line (a crash mid-write) costs only that line."""
    data = weekly(weeks=8)
    weeks = data["batch"].unique()
    path = tmp_path / "cache" / "backtest-scores.jsonl"
    choose(data[data["batch"] <= weeks[-2]], FoldScores(path))
    with path.open("ab") as f:
        f.write(b'["torn')
    later = FoldScores(path)
    assert later.scores and all(np.isfinite(v) or np.isnan(v) for v in later.scores.values())
    again = choose(data, later)
    assert later.hits > 0
    pd.testing.assert_frame_equal(again.table, choose(data, None).table)


def test_without_batches_the_folds_lie_back_to_back_as_before():
    """The default layout ("gate") is the backtest as it was: no batch column is read and
    the newest fold ends where the gate window begins."""
    data = weekly(weeks=8)
    gate = choose(data, None, layout="gate")
    older = data.iloc[: len(data) - WEEK // 3]
    assert pd.Timestamp(gate.folds[-1]["end"]) == older["ts"].iloc[-1]
    starts = [pd.Timestamp(f["start"]) for f in gate.folds]
    ends = [pd.Timestamp(f["end"]) for f in gate.folds]
    assert all(s > e for s, e in zip(starts[1:], ends[:-1], strict=False))
