"""Attribution drift and per-segment monitoring (tasks/monitoring/why.py) on a real champion
of the synthetic stream: at W07 (a new market) the decay is market=west's alone, and the
cycle's line says so; attribution drift is logged and alarms only when asked to."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cli.views import cycle_line
from flows.cycle import _seen
from tasks.data.replay import synthetic_batch
from tasks.data.spec import load_spec
from tasks.monitoring import alarms, segments
from tasks.monitoring.estimation import fit_estimator
from tasks.monitoring.monitor import Limits, monitor_batch
from tasks.monitoring.why import explained
from tasks.training.evaluate import evaluate
from tasks.training.train import fit

SPEC = load_spec("synthetic")
W07 = 5  # stream index of 2026-W07: market west arrives


@pytest.fixture(scope="module")
def champion():
    """Trained on W02..W05, its estimator and registered metric from W06, as a cycle keeps."""
    weeks = [synthetic_batch(i).frame for i in range(W07)]
    model = fit(pd.concat(weeks[:-1]), SPEC, 7.0)
    model.performance = fit_estimator(model, weeks[-1], SPEC).to_json()
    return model, weeks[-2], evaluate(model, weeks[-1], SPEC)[SPEC.primary_metric]


LIMITS = Limits(max_decay=0.05, max_estimated_decay=0.05)


@pytest.fixture(scope="module")
def w07(champion, tmp_path_factory):
    """W07 monitored against the champion, as the cycle's monitor step does."""
    model, reference, registered = champion
    return monitor_batch("w07", synthetic_batch(W07).frame, reference, model, registered,
                         SPEC, tmp_path_factory.mktemp("w07"), limits=LIMITS)


def test_w07_decay_is_market_west_alone_and_the_cycle_line_says_so(w07):
    result = w07
    by = {s["value"]: s for s in result.segments}
    assert result.segment_feature == "market" and set(by) == {"west", "north", "south"}
    assert by["west"]["new"] and by["west"]["drift_share"] is None  # nothing to compare with
    assert by["west"]["decay"] > 0.15 and by["west"]["decay_elsewhere"] < 0.05, by["west"]
    assert result.segment_note.startswith(f"decay {by['west']['decay']:.2f} in market=west; "
                                          f"{by['west']['decay_elsewhere']:.2f} elsewhere")
    metrics = result.run_metrics(SPEC.primary_metric)
    assert "segment.market:west.decay" in metrics and "attribution.price" in metrics
    seen = _seen(result, [{"id": "w07", "file": "2026-W07.csv"}], late=False)
    line = cycle_line({"batches": ["w07"], "files": ["2026-W07.csv"], "decision": "retrain",
                       "policy": "monitor", "monitored": [seen]}, "synthetic")
    assert line.startswith("2026-W07: drift ") and "decay 0.1" in line
    assert f"in market=west; {by['west']['decay_elsewhere']:.2f} elsewhere" in line, line


def test_a_segment_too_small_is_said_to_be_too_small(champion):
    model, reference, registered = champion
    batch = synthetic_batch(W07).frame
    batch = batch[(batch["market"] != "south") | (np.arange(len(batch)) % 20 == 0)]
    found = explained(model, batch, model.score(batch), reference, SPEC, registered, LIMITS)
    south = next(s for s in found["segments"] if s["value"] == "south")
    assert south["too_small"] and not south["judged"] and "decay" not in south
    assert f"market=south too small to judge (< {segments.MIN_SEGMENT_ROWS} rows)" in \
        found["segment_note"]


def test_attribution_drift_alarms_only_when_its_threshold_is_set(w07):
    result = w07
    assert set(result.attribution_shift) == set(SPEC.features)
    top = max(result.attribution_shift, key=lambda f: abs(result.attribution_shift[f]))
    off = alarms.check(result, drift_share=1.0, max_decay=1.0)
    assert not [a for a in off if a.kind == "attribution"]  # off by default
    on = alarms.check(result, drift_share=1.0, max_decay=1.0,
                      max_attribution_shift=abs(result.attribution_shift[top]) - 1e-9)
    raised = [a for a in on if a.kind == "attribution"]
    assert [a.features for a in raised] == [(top,)] and "relies differently on" in \
        raised[0].reason
    assert "attribution" not in alarms.RETRAIN_KINDS  # a hint, not a retrain


def test_the_dashboard_has_a_why_tab_over_the_batches_numbers(w07, tmp_path):
    """The W07 batch's attribution drift and segment numbers in its Evidently snapshot, and
    the dashboard's why tab plotting them (rewritten only when a new segment appears)."""
    from flows.params import Thresholds
    from tasks.publish import dashboards, workspace

    result, thresholds = w07.to_dict(), Thresholds().model_dump()
    snapshot = workspace.record_monitoring(tmp_path, SPEC, "w07", synthetic_batch(W07).frame,
                                           result, thresholds,
                                           extra=dashboards.why_values(result, thresholds))
    text = next(tmp_path.glob(f"*/snapshots/{snapshot}.json")).read_text()
    assert '"segment.west.decay"' in text and '"attribution.price"' in text
    assert dashboards.why_tab(tmp_path, SPEC, "market", ["west", "north", "south"])
    assert not dashboards.why_tab(tmp_path, SPEC, "market", ["north"])  # nothing new
    model = workspace.open_project(tmp_path, SPEC)[1].dashboard.model()
    tab = next(t for t in model.tabs if t.title == dashboards.WHY_TAB)
    titles = [p.title for p in model.panels if p.id in set(tab.panels)]
    assert "Attribution drift per feature (champion vs its reference)" in titles
    assert "Decay per segment of market" in titles and len(model.tabs) == 2
