"""A big batch is monitored on a seeded sample: the batch's row count stays whole, the
verdicts match the full computation, and a batch under the threshold is untouched."""

from __future__ import annotations

import json

import pytest

from tasks.data import replay as sources
from tasks.data.spec import load_spec
from tasks.monitoring.drift import sample_rows
from tasks.monitoring.monitor import monitor_batch
from tasks.training import train

SPEC = load_spec("synthetic")


@pytest.fixture(scope="module")
def champion():
    return train.fit(sources.synthetic_batch(0, rows=6000).frame, SPEC, None)


def test_small_frames_are_left_alone_and_big_ones_sampled_reproducibly():
    frame = sources.synthetic_batch(1, rows=3000).frame
    assert sample_rows(frame, 3000) is frame
    first, again = sample_rows(frame, 1000), sample_rows(frame, 1000)
    assert len(first) == 1000 and first.index.equals(again.index)


@pytest.mark.parametrize("index", [1, sources.SYNTHETIC_CHANGE_POINTS["covariate"]])
def test_sampled_monitoring_reaches_the_full_verdicts(champion, tmp_path, index):
    batch = sources.synthetic_batch(index, rows=40_000).frame
    reference = sources.synthetic_batch(0, rows=3000).frame
    full = monitor_batch("b", batch, reference, champion, 0.76, SPEC, tmp_path / "full",
                         max_rows=10**9)
    fast = monitor_batch("b", batch, reference, champion, 0.76, SPEC, tmp_path / "fast",
                         max_rows=10_000)
    assert fast.rows == full.rows == 40_000
    assert json.loads((tmp_path / "fast" / "summary.json").read_text())["current_rows"] == 10_000
    assert fast.drifted_features == full.drifted_features
    assert (fast.drift_share >= 0.3) == (full.drift_share >= 0.3)
    assert fast.champion_metric == pytest.approx(full.champion_metric, abs=0.01)
