"""The history plot reads what the monitoring runs logged: one point per batch in landing
order, with the latest numbers when a batch was monitored twice."""

from __future__ import annotations

from mlflow import MlflowClient

from tasks import plots, reports


def _log(uri: str, experiment: str, batch: str, drift: float, version: str) -> None:
    reports.log_run(uri, experiment, f"monitor-{batch}.csv",
                    metrics={"drift_share": drift, "label_drift": 0.01,
                             "champion_accuracy": 0.8, "decay": 0.0},
                    tags={"greenlight.batch_id": batch, "greenlight.file": f"{batch}.csv",
                          "greenlight.champion_version": version})


def test_history_has_one_point_per_batch_and_a_rerun_replaces_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = MlflowClient(uri).create_experiment("m")
    _log(uri, experiment, "w1", 0.0, "1")
    _log(uri, experiment, "w2", 0.1, "1")
    _log(uri, experiment, "w3", 0.5, "1")
    _log(uri, experiment, "w2", 0.2, "2")  # w2 monitored again, after a promotion
    history = plots.monitoring_history(uri, experiment, "accuracy")
    assert history["label"].tolist() == ["w1.csv", "w2.csv", "w3.csv"]
    assert history["champion_version"].tolist() == ["1", "2", "1"]
    assert history.set_index("batch_id")["drift_share"].to_dict() == {
        "w1": 0.0, "w2": 0.2, "w3": 0.5}

    path = plots.plot_history(history, "accuracy", {"drift_share": 0.3, "max_decay": 0.05},
                              tmp_path / "h.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
