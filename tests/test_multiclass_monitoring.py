"""Multiclass monitoring: each class's probability drift-judged against the champion's
reference, the alarm naming the class whose probability moved most, and Evidently's
multiclass classification quality in the batch's report and on the dashboard. Real LightGBM
champions on the seeded ticket stream (tasks/data/replay_multiclass.py) and on Bike
Sharing's `weathersit` (../shared/data), real Evidently."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from tasks.data.lake import BATCH_COLUMN
from tasks.data.replay import load_dataset
from tasks.data.replay_multiclass import MULTICLASS_CHANGE_POINTS, multiclass_batch
from tasks.data.spec import load_spec
from tasks.monitoring import alarms
from tasks.monitoring.drift import CLASSIFICATION_PREDICTION_THRESHOLD
from tasks.monitoring.monitor import MonitorResult, monitor_batch
from tasks.publish import dashboards, workspace
from tasks.training.train import train_challenger
from tests.conftest import shared_file

TICKETS = load_spec("synthetic_multiclass")
BIKE = load_spec("bike_weathersit")
COVARIATE = MULTICLASS_CHANGE_POINTS["covariate"]
EV = "evidently:metric_v2:"


def _champion(history: pd.DataFrame, spec):
    return train_challenger(history, spec, gate_rows=300, reference_rows=1000,
                            batch_column=BATCH_COLUMN, lgbm={"n_estimators": 40},
                            half_life_days=None, window_days=None)


@pytest.fixture(scope="module")
def tickets():
    """A champion of the four weeks before the covariate shift."""
    parts = [multiclass_batch(i, rows=600) for i in range(COVARIATE - 1)]
    return _champion(pd.concat([b.frame.assign(**{BATCH_COLUMN: b.label}) for b in parts],
                               ignore_index=True), TICKETS)


@pytest.fixture(scope="module")
def bike():
    """Bike Sharing's first half of 2011 (one batch a month) as history, and its July."""
    frame = load_dataset("bike_weathersit", shared_file("bike_sharing", "hour.csv"))
    month = frame[BIKE.time_column].dt.to_period("M").astype(str)
    history = frame[month <= "2011-06"].assign(**{BATCH_COLUMN: month})
    return _champion(history, BIKE), frame[month == "2011-07"].reset_index(drop=True)


def _monitor(champion, batch, spec, out_dir):
    return monitor_batch("b", batch, champion.reference, champion.model, 0.6, spec, out_dir)


def test_a_class_probability_that_moves_is_drift_and_the_alarm_names_its_class(
        tickets, tmp_path):
    """A stable week: no class probability past the cut. The same week with devices 1.5
    times as old (device age drives only the technical team's odds in the stream): the
    prediction drifts, its figure is the largest class score, and the alarm's reason names
    technical, the class whose probability moved most; every class is charted."""
    week = multiclass_batch(COVARIATE - 1, rows=1500).frame
    stable = _monitor(tickets, week, TICKETS, tmp_path / "stable")
    older = week.assign(device_age_days=week["device_age_days"] * 1.5)
    moved = _monitor(tickets, older, TICKETS, tmp_path / "moved")

    assert set(stable.probability_scores) == set(TICKETS.classes)
    assert max(stable.probability_scores.values()) < CLASSIFICATION_PREDICTION_THRESHOLD
    assert not stable.prediction_drifted
    assert not [a for a in alarms.check(stable, drift_share=0.3, max_decay=0.05)
                if a.kind == "prediction"]

    assert moved.prediction_drifted and moved.probability_class == "technical"
    assert moved.probability_scores["technical"] >= CLASSIFICATION_PREDICTION_THRESHOLD
    assert moved.prediction_score == max(moved.probability_scores.values())
    [alarm] = [a for a in alarms.check(moved, drift_share=0.3, max_decay=0.05)
               if a.kind == "prediction"]
    assert "probability of class technical" in alarm.reason, alarm.reason
    metrics = moved.run_metrics(TICKETS.primary_metric)
    assert metrics["prediction_drift.technical"] == pytest.approx(
        moved.probability_scores["technical"])

    # the drift report judged each probability as Evidently's ValueDrift, with the
    # prediction's method and cut, and the summary and monitor.json say so
    report = json.loads((tmp_path / "moved" / "drift.json").read_text())
    judged = {m["config"]["column"]: m["config"] for m in report["metrics"]
              if m["config"]["type"].endswith(":ValueDrift")}
    for name in TICKETS.classes:
        assert judged[f"proba_{name}"]["method"] == "psi"
        assert judged[f"proba_{name}"]["threshold"] == CLASSIFICATION_PREDICTION_THRESHOLD
    summary = json.loads((tmp_path / "moved" / "summary.json").read_text())
    assert "proba_technical" in summary["probability_drifted"]
    saved = json.loads((tmp_path / "moved" / "monitor.json").read_text())
    assert saved["probability_class"] == "technical"
    # every team has labelled rows: Evidently's quality has the probability metrics too
    quality = _quality(json.loads((tmp_path / "moved" / "snapshot.json").read_text()))
    assert {"Accuracy", "F1Score", "RocAuc", "LogLoss"} <= set(quality)


def test_binary_and_regression_results_carry_no_probability_fields():
    """A result without class probabilities writes monitor.json and its alarm as before."""
    result = MonitorResult("b1", 100, 0.0, [], 0.0, False, 0.25, 0.7, 0.8, 0.0,
                           prediction_drifted=True, prediction_threshold=0.1)
    assert not {"probability_scores", "probability_class"} & set(result.to_dict())
    assert not any(k.startswith("prediction_drift.") for k in result.run_metrics("auc"))
    [alarm] = [a for a in alarms.check(result, drift_share=0.3, max_decay=0.05)
               if a.kind == "prediction"]
    assert alarm.reason == "b1: prediction drift (score 0.250)"


def _quality(snapshot: dict) -> dict[str, object]:
    """The classification metrics of a snapshot (`snapshot.json`), by metric type."""
    out = {}
    for result in snapshot["metric_results"].values():
        kind = result["metric_value_location"]["metric"]["params"]["type"][len(EV):]
        if kind in ("Accuracy", "F1Score", "PrecisionByLabel", "RecallByLabel", "RocAuc",
                    "LogLoss"):
            out[kind] = result.get("value", result.get("values"))
    return out


def test_evidently_multiclass_quality_is_in_the_report_once_labels_exist(bike, tmp_path):
    """Bike Sharing's July, labels landed for two rows in three: Evidently's accuracy, macro
    F1 and per-class precision and recall of the labelled rows, as scikit-learn computes
    them, with the weather classes as text, in quality.html (with the confusion matrix) and
    in the workspace snapshot; before any label, no quality report."""
    champion, july = bike
    labelled = july.assign(weathersit=july["weathersit"].where(july.index % 3 != 0))
    result = _monitor(champion, labelled, BIKE, tmp_path / "labelled")
    unlabelled = _monitor(champion, july.assign(weathersit=np.nan), BIKE, tmp_path / "none")

    page = (tmp_path / "labelled" / "quality.html").read_text()
    assert "Confusion Matrix" in page and "greenlight quality: batch b" in page
    got = _quality(json.loads((tmp_path / "labelled" / "snapshot.json").read_text()))
    rows = labelled[labelled["weathersit"].notna()]
    truth = rows["weathersit"].astype(int).astype(str)
    names = [str(c) for c in champion.model.labels]
    predicted = np.asarray(names)[champion.model.score(rows).argmax(axis=1)]
    assert got["Accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert got["F1Score"] == pytest.approx(skm.f1_score(truth, predicted, average="macro"))
    assert "RocAuc" not in got  # heavy rain (4) has no labelled hour in July: labels only
    recall = {k: v["value"] for k, v in got["RecallByLabel"].items()}
    assert set(recall) == set(truth) and all(isinstance(k, str) for k in recall)
    assert recall == pytest.approx(dict(zip(sorted(set(truth)), skm.recall_score(
        truth, predicted, average=None, labels=sorted(set(truth))), strict=True)))
    assert result.labelled_rows == len(rows)

    assert "quality" not in unlabelled.reports
    assert not _quality(json.loads((tmp_path / "none" / "snapshot.json").read_text()))


def test_the_dashboard_plots_multiclass_quality_per_class_over_batches(bike, tmp_path):
    """Two labelled months into the Evidently workspace: the classification quality tab is
    written once, and its per-class recall panel has a line per weather class with a point
    per batch, as the UI's data storage reads it."""
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage

    champion, july = bike
    root = tmp_path / "evidently"
    halves = {"first": july.iloc[: len(july) // 2], "second": july.iloc[len(july) // 2:]}
    for name, batch in halves.items():
        result = _monitor(champion, batch, BIKE, tmp_path / name).to_dict()
        workspace.record_monitoring(root, BIKE, name, batch, result, {"drift_share": 0.3})
        assert dashboards.quality_tab(root, BIKE) is (name == "first")

    _, project = workspace.open_project(root, BIKE)
    model = project.dashboard.model()
    [tab] = [t for t in model.tabs if t.title == dashboards.QUALITY_TAB]
    titles = {p.title for p in model.panels if p.id in set(tab.panels)}
    assert {"Recall per class", "Precision per class", "Accuracy (last batch)"} <= titles

    recall = next(p for p in model.panels if p.title == "Recall per class")
    [wanted] = recall.values
    found = asyncio.run(InMemoryDataStorage(str(root)).get_data_series(
        project.id, [SeriesFilter(tags=[], metadata={}, metric=wanted.metric,
                                  metric_labels=wanted.metric_labels)], None, None))
    lines = {s.params["label"]: s.values for s in found.series}
    assert set(lines) >= {"1", "2", "3"}
    assert all(len(v) == 2 for v in lines.values())
