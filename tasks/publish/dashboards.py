"""Publish one monitored batch where people look: the Evidently workspace and the history plot.

Best effort by design: these are views of numbers already logged to MLflow and the manifest,
so a failure here is logged and reported, and never stops the cycle or moves the champion.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.monitoring.drift import CLASSIFICATION_LABEL_THRESHOLD, collector_paused
from tasks.publish import plots, workspace

log = logging.getLogger("greenlight.dashboards")
# The dashboard's second tab: what the champion relies on (attribution drift per feature) and
# each segment's drift, label drift, metric and decay. Its panels name the segment values
# seen so far, so the tab is rewritten when a new one appears (WHY_MARK remembers which).
WHY_TAB = "Why: attribution and segments"
WHY_MARK = "greenlight-why-tab.json"
# Multiclass only: Evidently's classification quality of each batch's labelled rows over time
# (the batch's own report, with its confusion matrix, is in the snapshot and quality.html).
QUALITY_TAB = "Classification quality"
QUALITY_MARK = "greenlight-quality-tab.json"
SEGMENT_KEYS = {"drift_share": "Drift share", "label_score": "Label drift",
                "champion_metric": "Champion metric", "estimated_metric": "Estimated metric",
                "decay": "Decay"}


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
                                                      result, thresholds, tags,
                                                      extra=why_values(result, thresholds))
    except Exception as exc:  # a view must never break the loop
        out["error:snapshot"] = f"{type(exc).__name__}: {exc}"
        log.warning("Evidently workspace: batch %s not recorded: %s", batch_id, exc)
    try:
        why_tab(Path(evidently_root), spec, result.get("segment_feature"),
                [str(s["value"]) for s in result.get("segments") or [] if s.get("judged")])
    except Exception as exc:
        out["error:why"] = f"{type(exc).__name__}: {exc}"
        log.warning("Evidently dashboard: the why tab not updated: %s", exc)
    if spec.task == "multiclass":
        try:
            quality_tab(Path(evidently_root), spec)
        except Exception as exc:
            out["error:quality"] = f"{type(exc).__name__}: {exc}"
            log.warning("Evidently dashboard: the classification quality tab not written: %s",
                        exc)
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


def why_values(result: Mapping[str, Any], thresholds: Mapping[str, Any]
               ) -> dict[str, float | None]:
    """The batch's attribution drift and segment numbers, by the names the why tab plots."""
    shift = result.get("attribution_shift") or {}
    values: dict[str, float | None] = {f"attribution.{f}": v for f, v in shift.items()}
    values["attribution_shift"] = max((abs(v) for v in shift.values()), default=None)
    values["attribution_threshold"] = thresholds.get("max_attribution_shift")
    for seg in result.get("segments") or []:
        if seg.get("judged"):
            values.update({f"segment.{seg['value']}.{k}": seg.get(k) for k in SEGMENT_KEYS})
    return values


def why_panels(spec: DatasetSpec, feature: str | None, values: list[str]) -> list[Any]:
    """The why tab: attribution drift per feature, then one panel per segment number with a
    line per segment value."""
    from evidently.sdk.panels import line_plot_panel, text_panel

    panels = [
        text_panel("Why", "What the champion relies on, against its own reference (change of "
                   "each feature's mean |contribution|, as a share of the reference's total), "
                   "and the batch per segment"
                   + (f" of `{feature}`" if feature else "") + "."),
        line_plot_panel("Attribution drift per feature (champion vs its reference)", [
            *[workspace._value(f"attribution.{f}", f) for f in spec.features],
            workspace._value("attribution_threshold", "alarm threshold")])]
    for key, title in SEGMENT_KEYS.items():
        if feature and values:
            panels.append(line_plot_panel(f"{title} per segment of {feature}", [
                workspace._value(f"segment.{v}.{key}", f"{feature}={v}") for v in values],
                size="half"))
    return panels


def why_tab(root: Path, spec: DatasetSpec, feature: str | None, values: list[str]) -> bool:
    """Write the why tab when it is missing or a new segment value appeared; True if
    written. Opening the workspace costs seconds over a long stream, so a mark file says
    what the tab already shows, and an unchanged batch costs one small read."""
    mark = root / WHY_MARK
    seen = json.loads(mark.read_text()) if mark.exists() else {}
    key = workspace.project_name(spec)
    known = seen.get(key, {})
    wanted = sorted(set(known.get("values", [])) | set(values)) if feature == known.get(
        "feature") else sorted(set(values))
    if known and known.get("feature") == feature and wanted == known.get("values"):
        return False
    write_tab(root, spec, WHY_TAB, why_panels(spec, feature, wanted))
    seen[key] = {"feature": feature, "values": wanted}
    mark.write_text(json.dumps(seen))
    return True


def write_tab(root: Path, spec: DatasetSpec, title: str, panels: list[Any]) -> None:
    """The dashboard tab `title` with exactly `panels`, every other panel and tab kept, in
    one write: the tab is never half there."""
    from evidently.sdk.models import DashboardTabModel

    ws, project = workspace.open_project(root, spec)
    model = project.dashboard.model()
    ours = {p for t in model.tabs if t.title == title for p in t.panels}
    model.panels = [p for p in model.panels if p.id not in ours] + panels
    model.tabs = [t for t in model.tabs if t.title != title] + [
        DashboardTabModel(title=title, panels=[p.id for p in panels])]
    ws.save_dashboard(project.id, model)


def quality_panels() -> list[Any]:
    """The classification quality tab: the last batch's accuracy and macro F1, the macro
    figures over time, then per class (a line per class label) precision, recall, F1 and
    ROC AUC, as Evidently's ClassificationPreset measured them on the labelled rows."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import counter_panel, line_plot_panel, text_panel

    def metric(name: str, legend: str) -> Any:
        return PanelMetric(legend=legend, metric=f"{workspace.EV}{name}")

    by_class = {"PrecisionByLabel": "Precision", "RecallByLabel": "Recall",
                "F1ByLabel": "F1", "RocAucByLabel": "ROC AUC"}
    return [
        text_panel(QUALITY_TAB, "Evidently's multiclass classification quality of each "
                   "batch's labelled rows (macro averages; a line per class below). A batch "
                   "appears once its labels land; its report (Reports) has the confusion "
                   "matrix."),
        counter_panel("Accuracy (last batch)", [metric("Accuracy", "accuracy")], size="half",
                      aggregation="last"),
        counter_panel("Macro F1 (last batch)", [metric("F1Score", "macro F1")], size="half",
                      aggregation="last"),
        line_plot_panel("Accuracy, macro F1, macro precision and recall", [
            metric("Accuracy", "accuracy"), metric("F1Score", "macro F1"),
            metric("Precision", "macro precision"), metric("Recall", "macro recall")]),
        *[line_plot_panel(f"{title} per class", [metric(name, "{{label}}")], size="half")
          for name, title in by_class.items()],
    ]


def quality_tab(root: Path, spec: DatasetSpec) -> bool:
    """Write the classification quality tab of a multiclass dataset once; True if written.
    A mark file remembers the projects that have it, so later batches cost one small read."""
    mark = root / QUALITY_MARK
    done = json.loads(mark.read_text()) if mark.exists() else []
    key = workspace.project_name(spec)
    if key in done:
        return False
    write_tab(root, spec, QUALITY_TAB, quality_panels())
    mark.write_text(json.dumps(sorted({*done, key})))
    return True
