"""Plots over batches: drift share, the champion's metric and decay, with their thresholds.

MLflow charts one metric at a time and Evidently's HTML covers one batch; a person asking
"when did it start to drift, and did the retrain help?" wants one picture of the whole
stream. Each monitoring run gets that picture of the history up to its batch, read back
from the monitoring experiment itself, so it shows exactly what was logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient

BATCH_TAG, FILE_TAG, VERSION_TAG = ("greenlight.batch_id", "greenlight.file",
                                    "greenlight.champion_version")


def monitoring_history(tracking_uri: str, experiment_id: str, metric: str) -> pd.DataFrame:
    """One row per monitored batch, in the order batches were first monitored (landing
    order); a re-monitored batch keeps its place and shows its latest run's numbers."""
    client = MlflowClient(tracking_uri=tracking_uri)
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time ASC"],
                              max_results=10_000)
    rows = [{"batch_id": r.data.tags.get(BATCH_TAG, r.info.run_id),
             "label": r.data.tags.get(FILE_TAG) or r.info.run_name,
             "champion_version": r.data.tags.get(VERSION_TAG, ""),
             "start_time": r.info.start_time,
             "drift_share": r.data.metrics.get("drift_share"),
             "label_drift": r.data.metrics.get("label_drift"),
             "champion_metric": r.data.metrics.get(f"champion_{metric}"),
             "decay": r.data.metrics.get("decay")} for r in runs]
    columns = ["batch_id", "label", "champion_version", "start_time", "drift_share",
               "label_drift", "champion_metric", "decay"]
    history = pd.DataFrame(rows, columns=columns)
    first_seen = history.groupby("batch_id")["start_time"].transform("min")
    history = history.assign(first_seen=first_seen).drop_duplicates("batch_id", keep="last")
    return (history.sort_values("first_seen", kind="stable").drop(columns="first_seen")
            .reset_index(drop=True))


def plot_history(history: pd.DataFrame, metric: str, thresholds: Mapping[str, float | None],
                 path: Path, title: str = "") -> Path:
    """Four stacked panels over batches; dotted lines mark where the champion changed.

    `thresholds` may hold `drift_share`, `label_drift` and `max_decay`; each one given is
    drawn as the retrain line on its panel."""
    fig = history_figure(history, metric, thresholds, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_png(fig, path)
    return path


def history_figure(history: pd.DataFrame, metric: str, thresholds: Mapping[str, float | None],
                   title: str = "") -> Any:
    """The figure `plot_history` saves."""
    # A bare Figure on the Agg canvas: no pyplot, so no GUI backend, no global figure list.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = range(len(history))
    fig = Figure(figsize=(max(8, 0.45 * len(history) + 3), 10), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True)
    panels = [("drift_share", "drift share", thresholds.get("drift_share")),
              ("label_drift", "label drift", thresholds.get("label_drift")),
              ("champion_metric", f"champion {metric}", None),
              ("decay", f"decay of {metric}", thresholds.get("max_decay"))]
    for ax, (column, label, limit) in zip(axes, panels, strict=True):
        ax.plot(x, history[column].astype(float), marker="o", label=label)
        if limit is not None:
            ax.axhline(limit, color="tab:red", linestyle="--", label="retrain threshold")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
    versions = history["champion_version"].tolist()
    for i in range(1, len(versions)):
        if versions[i] != versions[i - 1]:
            for ax in axes:
                ax.axvline(i - 0.5, color="grey", linestyle=":")
            axes[0].annotate(f"champion v{versions[i]}", (i - 0.5, 1), rotation=90, va="top",
                             xycoords=("data", "axes fraction"), xytext=(3, -3),
                             textcoords="offset points", fontsize="small", color="grey")
    axes[-1].set_xticks(list(x), history["label"].tolist(), rotation=60, ha="right",
                        fontsize="small")
    axes[0].set_title(title or f"monitoring over {len(history)} batches")
    return fig


def _save_png(fig: Any, path: Path) -> None:
    """The same pixels as `fig.savefig(path, dpi=100)`, for less work.

    With a layout engine, savefig lays out, draws every artist once without rendering, then
    draws them again for real. Here the constrained layout runs once, then the one real draw;
    and zlib's fastest level encodes the PNG (a few percent bigger file).
    tests/test_plots.py compares the pixels with savefig's."""
    fig.get_layout_engine().execute(fig)
    fig.set_layout_engine("none")
    fig.canvas.print_png(str(path), pil_kwargs={"compress_level": 1})


def log_history_plot(tracking_uri: str, experiment_id: str, run_id: str, metric: str,
                     thresholds: Mapping[str, float | None], out_dir: Path,
                     title: str = "") -> Path:
    """Plot the history so far and attach it to `run_id` as `plots/monitoring-history.png`."""
    history = monitoring_history(tracking_uri, experiment_id, metric)
    path = plot_history(history, metric, thresholds, Path(out_dir) / "monitoring-history.png",
                        title)
    MlflowClient(tracking_uri=tracking_uri).log_artifact(run_id, str(path), artifact_path="plots")
    return path
