"""Publishing monitoring: each monitored batch, late-labelled batch and served window as a
run of the model's monitoring experiment, a monitored batch also in the Evidently
workspace and its history plot. The run names and tags are what users filter on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.monitoring.monitor import MonitorResult
from tasks.publish import dashboards, reports

if TYPE_CHECKING:
    from tasks.monitoring.served import ServedWindow


@dataclass(frozen=True)
class Target:
    """Where monitoring is published: the MLflow store and experiment, the Evidently root."""

    tracking_uri: str
    experiment_id: str
    evidently: Path


def publish_monitored(target: Target, batch: dict[str, Any], frame: pd.DataFrame,
                      result: MonitorResult, spec: DatasetSpec, champion_version: int,
                      thresholds: Mapping[str, Any], reports_root: Path) -> str:
    """The batch's monitoring run (metrics, tags, drift reports), then its dashboards
    (best effort, tasks/publish/dashboards.py); returns the run id, for links."""
    run_id = reports.log_run(
        target.tracking_uri, target.experiment_id, f"monitor-{batch['file']}",
        metrics=result.run_metrics(spec.primary_metric),
        tags={"greenlight.file": batch["file"], **result.run_tags(champion_version)},
        artifacts={"drift": reports_root / batch["id"]})
    dashboards.publish_batch(target.evidently, target.tracking_uri, target.experiment_id,
                             run_id, spec, batch["id"], frame, result.to_dict(), thresholds,
                             tags={"file": batch["file"],
                                   "champion_version": str(champion_version)})
    return run_id


def log_late(target: Target, batch: dict[str, Any], result: MonitorResult, spec: DatasetSpec,
             champion_version: int) -> str:
    """A late-labelled batch's decay as a `labels-<file>` run."""
    return reports.log_run(target.tracking_uri, target.experiment_id, f"labels-{batch['file']}",
                           metrics=result.run_metrics(spec.primary_metric),
                           tags={"greenlight.file": batch["file"],
                                 "greenlight.late_labels": "true",
                                 **result.run_tags(champion_version)})


def log_served(target: Target, window: ServedWindow, champion_version: int | None) -> str:
    """The served window's output metrics as one `served-<until>` run."""
    stats = window.stats
    return reports.log_run(
        target.tracking_uri, target.experiment_id, f"served-{window.until:%Y%m%dT%H%M%S}",
        metrics={"served.count": window.count,
                 **{k: v for s in stats for k, v in s.run_metrics().items()}},
        tags={"greenlight.served": "true",
              "greenlight.predictions_since": window.since.isoformat() if window.since else "",
              "greenlight.predictions_until": window.until.isoformat(),
              "greenlight.champion_version": str(champion_version)
              if champion_version is not None else "none",
              "greenlight.served_versions": ",".join(sorted({s.name for s in stats}))})
