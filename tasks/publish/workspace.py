"""The Evidently workspace: every monitored batch as one snapshot, and a dashboard over time.

The HTML reports answer "what happened in this batch"; the Evidently UI answers "how has it
gone over the last months". One project per dataset under `GREENLIGHT_HOME/evidently`. Each
batch's snapshot is its drift report (the one the flow already ran, read back from
`snapshot.json`) merged with a small summary report on the full batch: rows, missing share per
column, and greenlight's own numbers (drift share, champion metric, decay, thresholds) as
single-value metrics, so one dashboard plots them all. The dashboard panels are written when
the project is created, so a fresh workspace already shows them; edits made in the UI stay.

The merge is by hand (`_snapshot_json`): Evidently 0.7.23 has no public way to combine two
snapshots (`Snapshot` only loads, dumps and renders one), checked 2026-12-06.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from core.files import replacing
from tasks.data.spec import DatasetSpec

if TYPE_CHECKING:
    from evidently.core.report import Snapshot
    from evidently.ui.workspace import Project, Workspace

INDEX = "greenlight-batches.json"  # batch id -> snapshot id, so a re-run replaces, not adds
EV = "evidently:metric_v2:"
# Evidently's local layout: <root>/<project id>/metadata.json and .../snapshots/<id>.json
PROJECT_FILE, SNAPSHOTS = "metadata.json", "snapshots"


def project_name(spec: DatasetSpec) -> str:
    return f"greenlight-{spec.name}"


def _value(name: str, legend: str) -> Any:
    from evidently.sdk.models import PanelMetric

    from tasks.monitoring.evidently_metrics import VALUE

    return PanelMetric(legend=legend, metric=VALUE, metric_labels={"name": name})


def dashboard(spec: DatasetSpec) -> list[Any]:
    """The panels: what a person checks first (the last batch), then each signal over time."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, counter_panel, line_plot_panel, text_panel

    metric = spec.primary_metric
    return [
        text_panel(f"greenlight: {spec.name}", "One point per monitored batch, measured "
                   "against the live champion's own training reference."),
        # Not the drift share: the UI shows a counter of 0 as "no value".
        counter_panel(f"Champion {metric} (last batch)", [_value("champion_metric", metric)],
                      size="half", aggregation="last"),
        counter_panel(f"Decay of {metric} (last batch)", [_value("decay", "decay")],
                      size="half", aggregation="last"),
        line_plot_panel("Share of drifted features", [
            _value("drift_share", "drift share"),
            _value("drift_share_threshold", "retrain threshold")], size="half"),
        line_plot_panel(f"Decay: champion {metric} vs its registered {metric}", [
            _value("decay", "decay (relative)"),
            _value("max_decay", "retrain threshold")], size="half"),
        line_plot_panel(f"Champion {metric} on each batch", [
            _value("champion_metric", "on the batch"),
            _value("estimated_metric", "estimated before the labels"),
            _value("estimated_low", "estimate's band, low"),
            _value("estimated_high", "estimate's band, high"),
            _value("registered_metric", "registered")], size="half"),
        line_plot_panel("Label and prediction drift", [
            _value("label_score", "label"), _value("prediction_score", "prediction")],
            size="half"),
        line_plot_panel("Missing share per column", [PanelMetric(
            legend="{{column}}", metric=f"{EV}MissingValueCount",
            metric_labels={"value_type": "share"})], size="half"),
        bar_plot_panel("Rows per batch", [PanelMetric(legend="rows", metric=f"{EV}RowCount")],
                       size="half"),
        line_plot_panel("Drift score per feature", [PanelMetric(
            legend=c, metric=f"{EV}ValueDrift", metric_labels={"column": c})
            for c in spec.features]),
    ]


def open_project(root: Path, spec: DatasetSpec) -> tuple[Workspace, Project]:
    """The dataset's project, created with its dashboard on first use."""
    from evidently.ui.workspace import Workspace

    ws = Workspace.create(str(root))
    name = project_name(spec)
    found = ws.search_project(name)
    if found:
        return ws, found[0]
    project = ws.create_project(name, description=f"greenlight monitoring of `{spec.name}`: "
                                                  "one snapshot per batch")
    for panel in dashboard(spec):
        project.dashboard.add_panel(panel)
    project.save()
    return ws, project


def _summary(batch: pd.DataFrame, spec: DatasetSpec, values: Mapping[str, float | None],
             ) -> Snapshot:
    """Rows and missing share on the whole batch (cheap even at 1M rows), plus our numbers."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MissingValueCount, RowCount

    from tasks.monitoring.evidently_metrics import GreenlightValue

    columns = [c for c in spec.features if c in batch]
    frame = batch[columns]
    definition = DataDefinition(
        numerical_columns=[c for c in columns if c not in spec.categorical_features],
        categorical_columns=[c for c in columns if c in spec.categorical_features])
    # Per column only: DatasetMissingValueCount runs Evidently's legacy dataset summary,
    # 1.3 s of the 2.1 s this report took on a 1M-row batch.
    metrics = [RowCount(), *[MissingValueCount(column=c) for c in columns],
               *[GreenlightValue(k, v) for k, v in values.items()]]
    return Report(metrics).run(current_data=Dataset.from_pandas(frame, data_definition=definition))


def _snapshot_json(drift: dict[str, Any] | None, summary: Snapshot, *, name: str,
                   timestamp: datetime, tags: list[str], metadata: dict[str, str]) -> str:
    """One snapshot per batch, as the JSON Evidently's `add_run` writes: the summary's metrics
    and widgets first, then the drift report's (`drift` is `snapshot.json`, parsed).

    Merged as plain dicts: the drift report is already serialized, and pydantic's `.dict()`
    of a model holding its widgets cost more than the rest of the write. `json.dumps` takes
    the C encoder, where Evidently's `json.dump` to a file takes the pure-Python one; the
    text is the same (tests/test_workspace.py compares it with `add_run`'s)."""
    from evidently.legacy.utils import NumpyEncoder

    model = summary.to_snapshot_model().dict()
    if drift is not None:
        model["metric_results"] = {**model["metric_results"], **drift["metric_results"]}
        model["top_level_metrics"] = [*model["top_level_metrics"], *drift["top_level_metrics"]]
        model["widgets"] = [*model["widgets"], *drift["widgets"]]
        model["tests_widgets"] = list(drift["tests_widgets"])
    model.update(name=name, timestamp=timestamp, tags=tags, metadata=metadata)
    return json.dumps(model, cls=NumpyEncoder)


def _find_project(root: Path, name: str) -> str | None:
    """The id of the project called `name`, from the projects' metadata files alone.

    Evidently's `Workspace` parses every snapshot of every project when it opens, so opening
    one per batch cost O(batches) and grew to seconds over a stream; a write needs only the
    project's id."""
    for meta in sorted(Path(root).glob(f"*/{PROJECT_FILE}")):
        try:
            if json.loads(meta.read_text()).get("name") == name:
                return meta.parent.name
        except (OSError, ValueError):
            continue  # a half-written project file of another writer: not ours
    return None


def _snapshot_path(root: Path, project_id: str, snapshot_id: str) -> Path:
    """Where Evidently's local storage keeps a project's snapshot (LocalState's layout)."""
    return Path(root) / project_id / SNAPSHOTS / f"{snapshot_id}.json"


def batch_time(batch: pd.DataFrame, spec: DatasetSpec) -> datetime:
    """The newest row's time, so the dashboard's x axis is data time (naive UTC), not when
    a replay happened to run; now when the batch has no usable time column."""
    if spec.time_column in batch and len(batch):
        newest = pd.to_datetime(batch[spec.time_column], errors="coerce", utc=True).max()
        if pd.notna(newest):
            return newest.to_pydatetime().replace(tzinfo=None)
    return datetime.now(UTC).replace(tzinfo=None)


def record_batch(root: Path, spec: DatasetSpec, batch_id: str, batch: pd.DataFrame,
                 values: Mapping[str, float | None], *, drift_snapshot: Path | None = None,
                 tags: Mapping[str, str] | None = None) -> str:
    """Add (or replace, on a re-run) the batch's snapshot; returns its snapshot id.

    The file is written in place, as Evidently writes it: the UI's watcher reloads a snapshot
    on its create and modify events, and ignores a rename into place."""
    from evidently.legacy.core import new_id

    root = Path(root)
    project_id = _find_project(root, project_name(spec)) or str(open_project(root, spec)[1].id)
    has_drift = drift_snapshot is not None and Path(drift_snapshot).exists()
    drift = json.loads(Path(drift_snapshot).read_text()) if has_drift else None
    # named as a person knows the batch (its file, or SQL slice); the id stays in metadata
    name = (tags or {}).get("file") or batch_id
    payload = _snapshot_json(drift, _summary(batch, spec, values), name=name,
                             timestamp=batch_time(batch, spec), tags=[spec.name],
                             metadata={"batch_id": batch_id, **(tags or {})})
    index_path = root / INDEX
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    key = f"{project_id}/{batch_id}"
    if key in index:
        _snapshot_path(root, project_id, index[key]).unlink(missing_ok=True)
    index[key] = str(new_id())
    path = _snapshot_path(root, project_id, index[key])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(payload, encoding="utf-8")
    with replacing(index_path) as partial:  # a crash never leaves a torn index
        partial.write_text(json.dumps(index, indent=1))
    return index[key]


VALUES = ("drift_share", "label_score", "prediction_score", "champion_metric",
          "registered_metric", "decay", "estimated_metric", "estimated_low", "estimated_high",
          "estimated_decay")


def record_monitoring(root: Path, spec: DatasetSpec, batch_id: str, batch: pd.DataFrame,
                      result: Mapping[str, Any], thresholds: Mapping[str, Any],
                      tags: Mapping[str, str] | None = None,
                      extra: Mapping[str, float | None] | None = None) -> str:
    """A monitored batch (`MonitorResult.to_dict()`) into the workspace, with the thresholds
    it was judged by, so the dashboard draws them next to the values; `extra`, more values
    by name (attribution drift and segments: tasks/publish/dashboards.py)."""
    values = {k: result.get(k) for k in VALUES if k in result} | dict(extra or {})
    values["drift_share_threshold"] = thresholds.get("drift_share")
    values["max_decay"] = thresholds.get("max_decay")
    drift_snapshot = (result.get("reports") or {}).get("snapshot")
    return record_batch(root, spec, batch_id, batch, values,
                        drift_snapshot=Path(drift_snapshot) if drift_snapshot else None, tags=tags)
