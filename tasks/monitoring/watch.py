"""Watching batches against the live champion: the champion as monitoring needs it, the
flow's thresholds mapped to the verdicts' limits, one stored batch monitored, and the
alarms every threshold raises (computed once; `decide` reads the retraining ones).

Plain functions: the cycle wraps `monitor_stored` as its "monitor" task and reads the
champion from the registry; tests call them directly."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from tasks.data.spec import DatasetSpec, suite_path
from tasks.monitoring import alarms
from tasks.monitoring.drift import StatTests
from tasks.monitoring.monitor import Limits, MonitorResult, monitor_batch
from tasks.monitoring.quality import InputMetrics, Ranges, load_ranges

if TYPE_CHECKING:
    from tasks.data.predictions import ServedStats


class MonitorThresholds(Protocol):
    """What monitoring reads of flows.params.Thresholds (which satisfies it as it is)."""

    drift_share: float
    label_drift: float | None
    min_rows: int
    max_decay: float
    max_estimated_decay: float | None
    prediction_drift: float | None
    adversarial_auc: float
    max_missing_share: float | None
    max_out_of_range: float | None
    max_failed_predictions: float | None
    num_method: str | None
    cat_method: str | None
    per_column_method: dict[str, str]
    column_threshold: float | None
    max_attribution_shift: float | None


@dataclass(frozen=True)
class Judge:
    """The champion batches are judged against, loaded once a cycle: its model, the score
    decay is measured from, and its training reference (drift; None for late labels)."""

    version: int
    model: Any
    registered: float
    reference: pd.DataFrame | None = None


@dataclass(frozen=True)
class Watch:
    """Everything a batch's verdicts need besides the batch: the judge and the limits."""

    judge: Judge
    limits: Limits
    ranges: Ranges


def limits_for(t: MonitorThresholds) -> Limits:
    """The flow's thresholds as the limits the monitoring verdicts are made with."""
    return Limits(label_drift=t.label_drift, prediction_drift=t.prediction_drift,
                  adversarial_auc=t.adversarial_auc,
                  tests=StatTests(t.num_method, t.cat_method, t.per_column_method,
                                  t.column_threshold),
                  drift_share=t.drift_share, min_rows=t.min_rows)


def watch_for(judge: Judge, thresholds: MonitorThresholds, spec: DatasetSpec) -> Watch:
    """The watch of a cycle: the ranges and value sets come from the dataset's GX suite."""
    # the decay thresholds too, so a segment that alone crosses one is named (segments.py)
    limits = replace(limits_for(thresholds), max_decay=thresholds.max_decay,
                     max_estimated_decay=thresholds.max_estimated_decay)
    return Watch(judge, limits, load_ranges(suite_path(spec.name)))


def monitor_stored(batch: dict[str, Any], rows: pd.DataFrame, watch: Watch, spec: DatasetSpec,
                   reports: Path, inputs: InputMetrics | None = None) -> MonitorResult:
    """One manifest batch monitored against the champion, its reports under `reports`/id.

    `rows` is the batch, or on Dask a sample of it with `inputs` from every partition."""
    judge = watch.judge
    return monitor_batch(batch["id"], rows, judge.reference, judge.model, judge.registered,
                         spec, reports / batch["id"], limits=watch.limits, ranges=watch.ranges,
                         inputs=inputs, source=batch.get("file"))


def raised_alarms(results: list[MonitorResult], served: list[ServedStats],
                  t: MonitorThresholds) -> list[alarms.Alarm]:
    """Every threshold the batches and the served predictions crossed, once for the cycle:
    the decision, the events and the records all read this list."""
    found = [a for r in results for a in alarms.check(
        r, drift_share=t.drift_share, max_decay=t.max_decay,
        max_estimated_decay=t.max_estimated_decay, max_missing_share=t.max_missing_share,
        max_out_of_range=t.max_out_of_range, max_failed_predictions=t.max_failed_predictions,
        max_attribution_shift=getattr(t, "max_attribution_shift", None))]
    return found + alarms.check_served(served, max_failed_predictions=t.max_failed_predictions)
