"""Monitoring on streams whose changes are known: every change caught within one batch, no
alarm on stable batches, the adversarial report names what moved, and the metrics a team
watches (inputs, outputs, pipeline steps) are right on data built to show them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.detection import replay
from core.steps import Steps
from flows.params import Thresholds
from tasks.data.replay import SYNTHETIC_CHANGE_POINTS, synthetic_batch
from tasks.data.spec import DatasetSpec, load_spec, suite_path
from tasks.monitoring import alarms
from tasks.monitoring.adversarial import domain_classifier
from tasks.monitoring.drift import StatTests, measure_drift
from tasks.monitoring.monitor import MonitorResult
from tasks.monitoring.quality import input_metrics, load_ranges, output_metrics
from tests.conftest import shared_file

SYNTHETIC = load_spec("synthetic")


@pytest.fixture(scope="module")
def stream():
    """The seeded stream for 40 batches: changes at 5, 10, 15, then 24 stable batches."""
    return replay(n_batches=40, seed=7)


@pytest.mark.e2e
def test_every_change_is_detected_within_one_batch(stream):
    delays = stream.delays()
    assert set(delays) == set(SYNTHETIC_CHANGE_POINTS)
    assert all(d is not None and d <= 1 for d in delays.values()), delays


@pytest.mark.e2e
def test_no_alarm_on_stable_batches(stream):
    stable = stream.stable()
    assert len(stable) >= 20
    assert len(stream.false_alarms()) / len(stable) <= 0.05, stream.false_alarms()
    # quality alarms too: clean data must not page anyone
    assert not [a for i in stable for a in stream.alarms[i]]


@pytest.mark.e2e
def test_each_change_is_caught_by_the_measure_made_for_it(stream):
    kinds = {k: set(stream.retrain_kinds(c)) for k, c in SYNTHETIC_CHANGE_POINTS.items()}
    assert {"data", "adversarial"} <= kinds["covariate"]
    assert "label" in kinds["prior"] and "prediction" in kinds["prior"]
    assert kinds["concept"] == {"decay"}  # features unchanged: only the labels tell


@pytest.mark.e2e
def test_adversarial_report_names_the_shifted_feature(stream):
    covariate = stream.results[SYNTHETIC_CHANGE_POINTS["covariate"]]
    assert covariate.adversarial_features[0] == "market"
    prior = stream.results[SYNTHETIC_CHANGE_POINTS["prior"]]
    assert prior.adversarial_features[0] == "price"  # list prices x1.5: only price moved
    stable = stream.results[SYNTHETIC_CHANGE_POINTS["concept"] + 2]
    assert stable.adversarial_auc < 0.55 and stable.adversarial_features == []


def test_adversarial_validation_on_a_single_shifted_column():
    ref, cur = synthetic_batch(1).frame, synthetic_batch(2).frame
    cur = cur.assign(tenure_months=cur["tenure_months"] + 24)  # two years on
    result = domain_classifier(ref, cur, SYNTHETIC)
    assert result.auc > Thresholds().adversarial_auc and result.top_features == ["tenure_months"]
    same = domain_classifier(ref, synthetic_batch(3).frame, SYNTHETIC)
    assert 0.45 < same.auc < 0.56


def test_elec2_victorian_switch_on_is_detected_and_named():
    data = pd.read_csv(shared_file("elec2", "elec2.csv.gz"), parse_dates=["timestamp"])
    spec = load_spec("elec2")
    month = data["timestamp"].dt.to_period("M")
    reference = data[month == pd.Period("1997-04", "M")]
    current = data[month == pd.Period("1997-05", "M")]
    drift = measure_drift(reference, current, spec)
    adv = domain_classifier(reference, current, spec)
    assert drift.drift_share >= 0.3 and {"vicprice", "vicdemand"} <= set(drift.drifted_features)
    assert adv.auc > 0.9
    assert set(adv.top_features) & {"vicprice", "vicdemand", "transfer"}
    assert "day" not in adv.top_features and "period" not in adv.top_features


def test_stat_test_is_chosen_per_type_and_overridable_per_column():
    # batches 1 and 3 (1 and 2 differ in market share with chi-square p = 0.006 by chance:
    # why Evidently prefers distances to p-values on large batches)
    ref, cur = synthetic_batch(1).frame, synthetic_batch(3).frame
    default = measure_drift(ref, cur, SYNTHETIC)
    assert default.feature_methods["income"] == "Wasserstein distance (normed)"
    assert default.feature_methods["market"] == "Jensen-Shannon distance"
    chosen = measure_drift(ref, cur, SYNTHETIC, tests=StatTests(
        num_method="ks", cat_method="chisquare", per_column={"price": "psi"}))
    assert (chosen.feature_methods["income"], chosen.feature_methods["market"],
            chosen.feature_methods["price"]) == ("ks", "chisquare", "psi")
    # the tests really ran: KS gives a p-value (large on unchanged data), not a distance
    assert chosen.feature_scores["income"] > 0.05 > default.feature_scores["income"]
    assert chosen.drifted_features == []


def test_input_metrics_missing_and_out_of_range_from_the_suite():
    frame = synthetic_batch(1).frame.head(1000).copy()
    frame.loc[:99, "income"] = np.nan
    frame.loc[:19, "discount"] = 0.9  # the suite allows 0..0.5
    frame.loc[:9, "market"] = "east"  # not in the suite's value set
    metrics = input_metrics(frame, SYNTHETIC, load_ranges(suite_path("synthetic")))
    assert metrics.rows == 1000
    assert metrics.missing_share["income"] == pytest.approx(0.1)
    assert metrics.missing_share["age"] == 0
    assert metrics.out_of_range_share["discount"] == pytest.approx(0.02)
    assert metrics.out_of_range_share["market"] == pytest.approx(0.01)
    assert metrics.out_of_range_share["age"] == 0


def test_output_metrics_count_failed_predictions():
    scores = np.r_[np.full(90, 0.8), np.full(8, 0.2), np.nan, np.inf]
    out = output_metrics(scores, SYNTHETIC)
    assert out.predictions == 100 and out.failed_share == pytest.approx(0.02)
    assert out.positive_share == pytest.approx(90 / 98)
    assert out.score_quantiles["p50"] == pytest.approx(0.8)
    reg = DatasetSpec(name="r", time_column="t", target="y", task="regression", features=["x"],
                      primary_metric="mae")
    assert output_metrics(np.array([1.0, 3.0]), reg).positive_share is None


def _result(**kw) -> MonitorResult:
    base = dict(batch_id="b", rows=100, drift_share=0.0, drifted_features=[], label_score=0.0,
                label_drifted=False, prediction_score=0.0, champion_metric=0.8,
                registered_metric=0.8, decay=0.0)
    return MonitorResult(**{**base, **kw})


def test_every_threshold_raises_its_event_with_the_numbers():
    t = Thresholds()
    kw = dict(drift_share=t.drift_share, max_decay=t.max_decay,
              max_missing_share=t.max_missing_share, max_out_of_range=t.max_out_of_range,
              max_failed_predictions=t.max_failed_predictions)
    assert alarms.check(_result(), **kw) == []
    raised = alarms.check(_result(
        drift_share=0.5, drifted_features=["x", "y"], prediction_drifted=True,
        prediction_score=0.3, prediction_threshold=0.1, adversarial_drifted=True,
        adversarial_auc=0.9, adversarial_threshold=0.65, adversarial_features=["x"],
        decay=0.1, missing_share={"x": 0.2, "y": 0.0}, out_of_range_share={"y": 0.5},
        failed_predictions=0.01), **kw)
    by_kind = {a.kind: a for a in raised}
    assert set(by_kind) == {"data", "prediction", "adversarial", "decay", "missing",
                            "out_of_range", "failed_predictions"}
    assert by_kind["data"].event == "greenlight.drift.detected"
    assert by_kind["decay"].event == "greenlight.model.decayed"
    assert by_kind["missing"].event == "greenlight.data.quality"
    assert by_kind["missing"].features == ("x",) and by_kind["missing"].value == 0.2
    assert by_kind["adversarial"].features == ("x",) and by_kind["adversarial"].value == 0.9
    # no labels yet: no decay verdict, and no crash
    assert alarms.check(_result(decay=None, champion_metric=None, label_score=None), **kw) == []


def test_steps_record_duration_and_rows_per_step():
    steps = Steps()
    with steps.step("ingest", rows_in=100) as s:
        s.rows_out = 90
    with steps.step("ingest", rows_in=10):
        pass
    with pytest.raises(RuntimeError), steps.step("train", rows_in=5):
        raise RuntimeError("a failing step is still measured")
    assert steps.steps["ingest"].rows_in == 110 and steps.steps["ingest"].rows_out == 100
    assert steps.steps["ingest"].calls == 2 and steps.steps["train"].calls == 1
    metrics = steps.mlflow_metrics()
    assert metrics["step.ingest.rows_out"] == 100 and "step.train.seconds" in metrics
    assert set(steps.timings) == {"ingest", "train"}


@pytest.mark.parametrize("index", [1, *SYNTHETIC_CHANGE_POINTS.values()])
def test_monitor_batch_gives_the_verdicts_of_its_parts(tmp_path, index):
    """The monitor step reuses the batch's scores for decay and runs with the cyclic
    collector paused: its verdicts must be those of each measure computed on its own, on
    every change point (the champion is fitted on the stable start of the stream)."""
    from tasks.monitoring.monitor import Limits, monitor_batch
    from tasks.training import train
    from tasks.training.evaluate import evaluate, relative_gain

    history = pd.concat([synthetic_batch(i).frame for i in range(4)], ignore_index=True)
    champion = train.fit(history, SYNTHETIC, None)
    reference, batch = history.tail(1000), synthetic_batch(index).frame
    batch.loc[batch.index[::3], SYNTHETIC.target] = np.nan  # a third of the labels still out
    limits = Limits()
    result = monitor_batch("b", batch, reference, champion, 0.77, SYNTHETIC, tmp_path,
                           limits=limits, ranges=load_ranges(suite_path("synthetic")))

    drift = measure_drift(reference[SYNTHETIC.columns].assign(prediction=champion.score(
        reference)), batch[SYNTHETIC.columns].assign(prediction=champion.score(batch)),
        SYNTHETIC, prediction_column="prediction")
    assert (result.drift_share, result.drifted_features) == (drift.drift_share,
                                                             drift.drifted_features)
    assert (result.label_score, result.label_drifted) == (drift.label_score, drift.label_drifted)
    assert (result.prediction_score, result.prediction_drifted) == (drift.prediction_score,
                                                                    drift.prediction_drifted)
    adv = domain_classifier(reference, batch, SYNTHETIC)
    assert result.adversarial_auc == adv.auc
    assert result.adversarial_drifted == (adv.auc >= limits.adversarial_auc)
    labelled = batch[batch[SYNTHETIC.target].notna()]
    metric = evaluate(champion, labelled, SYNTHETIC)["accuracy"]
    assert (result.champion_metric, result.labelled_rows) == (metric, len(labelled))
    assert result.decay == -relative_gain(metric, 0.77, True)


def test_a_batch_below_min_rows_is_not_enough_rows_not_drift(tmp_path):
    """Issue 21.10a: a 1-row batch gave "drift share 1.00" and a retrain. Below
    Thresholds.min_rows drift and decay are not judged: no alarm, no retrain, and the
    decision's reasons say "not enough rows"."""
    from tasks.gate.decide import decide
    from tasks.monitoring.monitor import Limits, monitor_batch
    from tasks.training import train

    thresholds = Thresholds()
    assert isinstance(thresholds.min_rows, int) and thresholds.min_rows >= 30
    history = pd.concat([synthetic_batch(i).frame for i in range(4)], ignore_index=True)
    champion = train.fit(history, SYNTHETIC, None)
    one_row = synthetic_batch(20).frame.head(1)
    limits = Limits(drift_share=thresholds.drift_share, min_rows=thresholds.min_rows)
    result = monitor_batch("tiny", one_row, history.tail(1000), champion, 0.77, SYNTHETIC,
                           tmp_path, limits=limits, source="one-row.csv")
    assert "not enough rows" in result.not_judged and "1 < 30" in result.not_judged
    assert result.drifted_features == [] and result.to_dict()["drift_share"] is None
    assert result.decay is None and not result.label_drifted
    assert result.rows == 1 and result.labelled_rows == 1
    raised = alarms.check(result, drift_share=thresholds.drift_share,
                          max_decay=thresholds.max_decay)
    assert raised == []
    decision = decide([result], raised, has_champion=True)
    assert decision.action == "no action"
    assert any("not enough rows" in r for r in decision.reasons)
    # at the threshold the batch is judged as before
    enough = synthetic_batch(20).frame.head(thresholds.min_rows)
    judged = monitor_batch("enough", enough, history.tail(1000), champion, 0.77, SYNTHETIC,
                           tmp_path / "enough", limits=limits, source="enough.csv")
    assert judged.not_judged == "" and judged.decay is not None


def test_monitor_report_uses_the_flows_drift_share_and_titles_the_batch(tmp_path):
    """Issue 16.6 through the monitor step: the report's headline is judged with the flow's
    drift_share and its title names the batch id and the landed file."""
    import json as _json

    from tasks.monitoring.monitor import Limits, monitor_batch
    from tasks.training import train

    history = pd.concat([synthetic_batch(i).frame for i in range(4)], ignore_index=True)
    champion = train.fit(history, SYNTHETIC, None)
    batch = synthetic_batch(SYNTHETIC_CHANGE_POINTS["covariate"]).frame
    result = monitor_batch("c0ffee", batch, history.tail(1000), champion, 0.77, SYNTHETIC,
                           tmp_path, limits=Limits(drift_share=0.0001), source="week-05.csv")
    page = open(result.reports["html"], encoding="utf-8").read()
    assert "greenlight drift: batch c0ffee (week-05.csv)" in page
    assert ("Dataset Drift is detected" in page) == (result.drift_share >= 0.0001)
    drift_json = _json.loads(open(result.reports["json"], encoding="utf-8").read())
    assert "0.0001" in _json.dumps(drift_json)  # the share Evidently judged with


def test_the_reference_is_scored_once_per_champion_and_reference(tmp_path):
    """A cycle monitors its batches against one champion and reference: the reference's
    scores are reused from the first batch on, and the prediction drift of every batch is
    the one computed from scratch. A changed reference (same object, edited) is rescored."""
    from tasks.monitoring.monitor import monitor_batch, reference_scores
    from tasks.training import train

    history = pd.concat([synthetic_batch(i).frame for i in range(4)], ignore_index=True)
    champion = train.fit(history, SYNTHETIC, None)
    reference = history.tail(1000).copy()
    for index in (4, SYNTHETIC_CHANGE_POINTS["prior"]):
        batch = synthetic_batch(index).frame
        result = monitor_batch(f"b{index}", batch, reference, champion, 0.77, SYNTHETIC,
                               tmp_path / str(index))
        drift = measure_drift(reference[SYNTHETIC.columns].assign(prediction=champion.score(
            reference)), batch[SYNTHETIC.columns].assign(prediction=champion.score(batch)),
            SYNTHETIC, prediction_column="prediction")
        assert (result.prediction_score, result.prediction_drifted) == (
            drift.prediction_score, drift.prediction_drifted)
    first = reference_scores(champion, reference)
    assert reference_scores(champion, reference) is first
    reference.loc[reference.index[0], "income"] *= 3
    again = reference_scores(champion, reference)
    assert again is not first
    assert (again == champion.score(reference)).all()
