"""The history plot reads what the monitoring runs logged: one point per batch in landing
order, with the latest numbers when a batch was monitored twice."""

from __future__ import annotations

from mlflow import MlflowClient

from tasks.publish import plots, reports


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


def test_the_saved_plot_has_the_pixels_savefig_draws(tmp_path):
    """plot_history skips savefig's extra layout draw and compresses faster: same pixels."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    n = 12
    history = pd.DataFrame({
        "batch_id": [f"w{i}" for i in range(n)], "label": [f"w{i:02d}.csv" for i in range(n)],
        "champion_version": ["1"] * 7 + ["2"] * 5, "start_time": range(n),
        "drift_share": np.linspace(0, 0.6, n), "label_drift": np.linspace(0, 0.1, n),
        "champion_metric": np.linspace(0.8, 0.7, n), "decay": [None, *np.linspace(0, 0.1, n - 1)]})
    limits = {"drift_share": 0.3, "label_drift": 0.05, "max_decay": 0.05}
    ours = plots.plot_history(history, "accuracy", limits, tmp_path / "ours.png", title="t")
    plots.history_figure(history, "accuracy", limits, title="t").savefig(
        tmp_path / "savefig.png", dpi=100)
    pixels = [np.asarray(Image.open(p)) for p in (ours, tmp_path / "savefig.png")]
    assert pixels[0].shape == pixels[1].shape
    assert (pixels[0] == pixels[1]).all()
