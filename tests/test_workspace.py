"""The Evidently workspace without a server: one snapshot per batch (a re-run replaces it),
the dashboard written once, and the drift report and our numbers in the same snapshot."""

from __future__ import annotations

from evidently.ui.workspace import Workspace

from tasks.data import replay as sources
from tasks.data.spec import load_spec
from tasks.monitoring.drift import measure_drift, save_report
from tasks.publish import workspace

SPEC = load_spec("synthetic")


def _record(root, tmp_path, index: int, drift_share: float) -> str:
    reference = sources.synthetic_batch(0, rows=1500).frame
    batch = sources.synthetic_batch(index, rows=1500).frame
    paths = save_report(measure_drift(reference, batch, SPEC), tmp_path / f"r{index}")
    return workspace.record_monitoring(
        root, SPEC, f"batch-{index}", batch,
        {"drift_share": drift_share, "decay": 0.01, "reports": {k: str(v) for k, v in
                                                                paths.items()}},
        {"drift_share": 0.3, "max_decay": 0.05})


def test_one_snapshot_per_batch_with_drift_and_summary(tmp_path):
    root = tmp_path / "evidently"
    first = _record(root, tmp_path, 1, 0.0)
    _record(root, tmp_path, 5, 0.43)
    again = _record(root, tmp_path, 1, 0.1)  # batch 1 monitored again
    ws = Workspace(str(root))
    [project] = ws.search_project("greenlight-synthetic")
    runs = {str(r) for r in ws.list_runs(project.id)}
    assert again in runs and first not in runs and len(runs) == 2

    snapshot = ws.get_run(project.id, again)
    assert snapshot.metadata["batch_id"] == "batch-1"
    types = {r.metric_value_location.metric.params["type"]: r.metric_value_location.metric.params
             for r in snapshot.metric_results.values()}
    assert "evidently:metric_v2:ValueDrift" in types  # the drift report
    assert "evidently:metric_v2:MissingValueCount" in types  # the summary of the whole batch
    ours = {r.metric_value_location.metric.params["name"]: r.value
            for r in snapshot.metric_results.values()
            if r.metric_value_location.metric.params["type"].endswith("GreenlightValue")}
    assert ours == {"drift_share": 0.1, "decay": 0.01, "drift_share_threshold": 0.3,
                    "max_decay": 0.05}


def test_the_dashboard_is_written_once_and_edits_are_kept(tmp_path):
    root = tmp_path / "evidently"
    _record(root, tmp_path, 1, 0.0)
    ws = Workspace(str(root))
    [project] = ws.search_project("greenlight-synthetic")
    panels = ws.get_dashboard(project.id).panels
    assert [p.title for p in panels] == [p.title for p in workspace.dashboard(SPEC)]

    project.dashboard.delete_panel(panels[-1].title, "General")  # a person removes one
    _record(root, tmp_path, 2, 0.0)
    assert len(ws.get_dashboard(project.id).panels) == len(panels) - 1


def test_the_snapshot_file_is_what_evidently_add_run_writes(tmp_path):
    """record_batch writes the merged snapshot itself (no Workspace load, C JSON encoder):
    the file must be the one Evidently's own merge + add_run would write, widget ids aside
    (the summary report draws fresh ones on every run)."""
    import re

    from evidently.core.report import Snapshot

    reference = sources.synthetic_batch(0, rows=1500).frame
    batch = sources.synthetic_batch(5, rows=1500).frame
    paths = save_report(measure_drift(reference, batch, SPEC), tmp_path / "r")
    values = {"drift_share": 0.43, "decay": 0.01, "max_decay": 0.05}
    ours = workspace.record_batch(tmp_path / "ours", SPEC, "b5", batch, values,
                                  drift_snapshot=paths["snapshot"], tags={"file": "b5.csv"})
    ws, project = workspace.open_project(tmp_path / "evidently", SPEC)
    model = workspace._summary(batch, SPEC, values).to_snapshot_model()
    drift = Snapshot.load(str(paths["snapshot"])).to_snapshot_model()
    model = model.copy(update={
        "metric_results": {**model.metric_results, **drift.metric_results},
        "top_level_metrics": [*model.top_level_metrics, *drift.top_level_metrics],
        "widgets": [*model.widgets, *drift.widgets], "tests_widgets": drift.tests_widgets,
        "name": "b5.csv", "timestamp": workspace.batch_time(batch, SPEC), "tags": [SPEC.name],
        "metadata": {"batch_id": "b5", "file": "b5.csv"}})
    theirs = ws.add_run(project.id, Snapshot.load_model(model)).id
    [ours_file] = (tmp_path / "ours").glob(f"*/snapshots/{ours}.json")
    [their_file] = (tmp_path / "evidently").glob(f"*/snapshots/{theirs}.json")
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    assert uuid.sub("id", ours_file.read_text()) == uuid.sub("id", their_file.read_text())
    [found] = Workspace(str(tmp_path / "ours")).search_project("greenlight-synthetic")
    assert {str(r) for r in Workspace(str(tmp_path / "ours")).list_runs(found.id)} == {ours}
