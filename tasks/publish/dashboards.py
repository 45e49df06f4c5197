"""Publish one monitored batch where people look: the Evidently workspace and the history plot.

Best effort by design: these are views of numbers already logged to MLflow and the manifest,
so a failure here is logged and reported, and never stops the cycle or moves the champion.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.monitoring.drift import CLASSIFICATION_LABEL_THRESHOLD, collector_paused
from tasks.publish import plots, workspace

log = logging.getLogger("greenlight.dashboards")


def dashboard_url(evidently_url: str, evidently_root: Path, spec: DatasetSpec) -> str:
    """The Evidently UI page of the dataset's dashboard, not the UI's home page.

    The project is created (with its panels, as the first monitored batch would) when it
    does not exist yet, so the link `greenlight up` hands out works from the first run."""
    project_id = workspace.open_project(Path(evidently_root), spec)[1].id
    return f"{evidently_url.rstrip('/')}/projects/{project_id}"


def publish_batch(evidently_root: Path, tracking_uri: str, experiment_id: str, run_id: str,
                  spec: DatasetSpec, batch_id: str, batch: pd.DataFrame,
                  result: Mapping[str, Any], thresholds: Mapping[str, Any],
                  tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """Snapshot into the Evidently workspace, history plot onto the monitoring run.

    Returns what was written (`snapshot`, `plot`) and, for each part that failed, an
    `error:<part>` entry with a one-line reason."""
    with collector_paused():  # the figures are cyclic garbage: freed in one pass at the end
        return _publish(evidently_root, tracking_uri, experiment_id, run_id, spec, batch_id,
                        batch, result, thresholds, tags)


def _publish(evidently_root: Path, tracking_uri: str, experiment_id: str, run_id: str,
             spec: DatasetSpec, batch_id: str, batch: pd.DataFrame, result: Mapping[str, Any],
             thresholds: Mapping[str, Any], tags: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        out["snapshot"] = workspace.record_monitoring(evidently_root, spec, batch_id, batch,
                                                      result, thresholds, tags)
    except Exception as exc:  # a view must never break the loop
        out["error:snapshot"] = f"{type(exc).__name__}: {exc}"
        log.warning("Evidently workspace: batch %s not recorded: %s", batch_id, exc)
    try:
        reports = (result.get("reports") or {}).get("summary")
        # beside the batch reports, not in them: those are logged as the run's drift artifacts
        base = Path(reports).parent.parent if reports else Path(evidently_root)
        out_dir = base / "plots" / batch_id
        limits = dict(thresholds)
        if limits.get("label_drift") is None and spec.task == "classification":
            limits["label_drift"] = CLASSIFICATION_LABEL_THRESHOLD  # the flow's default
        out["plot"] = str(plots.log_history_plot(
            tracking_uri, experiment_id, run_id, spec.primary_metric, limits, out_dir,
            title=f"greenlight-{spec.name}: monitoring up to "
                  f"{(tags or {}).get('file') or batch_id}"))
    except Exception as exc:
        out["error:plot"] = f"{type(exc).__name__}: {exc}"
        log.warning("history plot for batch %s not written: %s", batch_id, exc)
    return out
