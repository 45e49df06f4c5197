"""Multiclass (K >= 3 classes) through training, the gate, the registry and serving, on the
seeded ticket stream (tasks/data/replay_multiclass.py) and a real MLflow SQLite store."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from registry import promote, register, versions
from tasks.data.lake import BATCH_COLUMN
from tasks.data.replay_multiclass import CLASSES, multiclass_batch
from tasks.data.spec import DatasetSpec, load_spec
from tasks.gate.bootstrap import paired_bootstrap
from tasks.gate.gate import gate
from tasks.training.model import GreenlightModel
from tasks.training.multiclass import multiclass_metrics
from tasks.training.train import ensemble_challenger, train_challenger

SPEC = load_spec("synthetic_multiclass")


def _history(*indices: int, rows: int = 600) -> pd.DataFrame:
    parts = [multiclass_batch(i, rows=rows) for i in indices]
    return pd.concat([b.frame.assign(**{BATCH_COLUMN: b.label}) for b in parts],
                     ignore_index=True)


def _challenger(history: pd.DataFrame, **recipe):
    return train_challenger(history, SPEC, gate_rows=300, reference_rows=200,
                            batch_column=BATCH_COLUMN, lgbm={"n_estimators": 40},
                            **{"half_life_days": None, "window_days": None, **recipe})


def test_metrics_are_scikit_learns_and_the_bootstrap_reads_each_one():
    """Accuracy, macro-F1, balanced accuracy and log loss as scikit-learn computes them; the
    paired bootstrap gives the same point gain and an interval around it for each, from
    per-row losses (accuracy, log loss) or resampled confusion counts (the other two)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    old = rng.dirichlet([1, 1, 1, 1], size=400)
    new = old + 0.3 * np.eye(4)[y]
    new /= new.sum(axis=1, keepdims=True)
    got = multiclass_metrics(old, y)
    pred = old.argmax(axis=1)
    assert got == pytest.approx({
        "accuracy": skm.accuracy_score(y, pred),
        "macro_f1": skm.f1_score(y, pred, average="macro"),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "log_loss": skm.log_loss(y, old, labels=range(4))})
    for metric in ("accuracy", "macro_f1", "balanced_accuracy", "log_loss"):
        spec = SPEC.model_copy(update={"primary_metric": metric})
        boot = paired_bootstrap(y, old, new, spec, n_resamples=300)
        assert boot.champion == pytest.approx(got[metric])
        assert boot.challenger == pytest.approx(multiclass_metrics(new, y)[metric])
        assert 0 < boot.ci_low < boot.gain < boot.ci_high, metric  # new is truly better


def test_a_multiclass_spec_says_its_classes_and_metric():
    """A multiclass spec without classes, or with a binary-only metric, is one clear error;
    the new metrics are refused for a binary spec."""
    base = SPEC.model_dump()
    with pytest.raises(ValueError, match="needs 'classes'"):
        DatasetSpec.model_validate({**base, "classes": ["a", "b"]})
    with pytest.raises(ValueError, match="roc_auc"):
        DatasetSpec.model_validate({**base, "primary_metric": "roc_auc"})
    with pytest.raises(ValueError, match="is for task multiclass"):
        DatasetSpec.model_validate({**base, "task": "classification", "classes": None,
                                    "positive_class": "billing"})
    assert not SPEC.model_copy(update={"primary_metric": "log_loss"}).higher_is_better


def test_multiclass_trains_gates_registers_and_serves(reg):
    """Strings as classes: a recency-weighted fit, a leaf-refit twin and their ensemble,
    gated on macro-F1 against a champion from before the prior shift, registered from code,
    loaded back bit for bit and served by a real server with each class's probability."""
    from serving.app import create_app
    from tests.serving_helpers import running

    old = _challenger(_history(0, 1))
    first = gate(old.model, None, old.split.gate, SPEC, min_delta=0.0)
    assert first.verdict == "bootstrap" and set(first.challenger_metrics) == {
        "accuracy", "macro_f1", "balanced_accuracy", "log_loss"}
    history = _history(10, 11, 12)
    plain = _challenger(history, half_life_days=7)
    twin = _challenger(history, half_life_days=7, refit_days=7, base=plain)
    assert twin.model.booster is not plain.model.booster
    both = ensemble_challenger([plain, twin], [0.5, 0.5])
    scores = both.model.score(both.split.gate)
    assert scores.shape == (len(both.split.gate), 4)
    assert np.allclose(scores, 0.5 * plain.model.score(both.split.gate)
                       + 0.5 * twin.model.score(both.split.gate))
    verdict = gate(both.model, old.model, both.split.gate, SPEC, min_delta=0.0,
                   slice_feature="region", min_slice_rows=50, n_resamples=300)
    assert verdict.champion is not None and verdict.ci_low is not None
    assert verdict.challenger > verdict.champion  # billing surged: the old model under-calls it
    assert verdict.slices and all(s["ok"] in (True, False) for s in verdict.slices)

    sample = both.model.example(both.split.gate.head(5))
    version = register.register(reg, python_model=both.model, input_example=sample,
                                output_example=both.model.predict(None, sample),
                                reference=both.reference, batch_set=both.batch_set,
                                params={}, metrics={}, tags={}, experiment="mc-training").version
    promote.promote(reg, version, reason="multiclass test")
    loaded = versions.load_model(reg, version)
    assert loaded.labels == list(CLASSES)
    assert np.array_equal(loaded.score(both.split.gate), scores)
    rows = json.loads(both.split.gate[SPEC.features].head(20).to_json(orient="records"))
    with running(create_app(reg, reg.state_dir, poll_seconds=3600)) as url:
        got = httpx.post(f"{url}/predict", json=rows).json()["predictions"]
    expected = both.model.score(pd.DataFrame(rows))
    for answer, probs in zip(got, expected, strict=True):
        assert answer["prediction"] == CLASSES[int(np.argmax(probs))]
        assert list(answer["probabilities"]) == list(CLASSES)
        assert answer["probabilities"][answer["prediction"]] == answer["confidence"]
        assert answer["confidence"] == pytest.approx(probs.max())
        assert answer["needs_review"] == (answer["confidence"] < 0.6)


def test_a_class_too_thin_in_the_window_is_named_and_one_class_is_not_enough():
    """A class under the floor in the gate window is "not enough evidence" for that class;
    a window where fewer than two classes reach it is not judged at all."""
    history = _history(10, 11)
    ch = _challenger(history)
    champion = _challenger(_history(0, 1)).model
    verdict = gate(ch.model, champion, ch.split.gate, SPEC, min_delta=0.0, min_rows=100,
                   n_resamples=200, min_class_rows=40)
    assert "not enough evidence for class account" in verdict.reason
    assert "recall fell most on class" in verdict.reason  # the old model's classes differ
    one = ch.split.gate[ch.split.gate["team"] == "shipping"]
    verdict = gate(ch.model, champion, one, SPEC, min_delta=0.0, min_rows=10,
                   min_class_rows=10, stale=True)
    assert verdict.verdict == "insufficient" and "at least two classes" in verdict.reason


def test_an_unknown_label_is_counted_wrong_not_a_crash():
    """A label outside the spec's classes scores as a wrong answer and trains nothing."""
    history = _history(0, 1)
    history.loc[history.index[:5], "team"] = "refund"
    ch = _challenger(history)
    assert isinstance(ch.model, GreenlightModel) and ch.model.is_multiclass
    window = ch.split.gate.copy()
    window.loc[window.index[:3], "team"] = "refund"
    result = gate(ch.model, None, window, SPEC, min_delta=0.0)
    assert result.verdict == "bootstrap" and 0 < result.challenger < 1


def test_init_infers_a_multiclass_target_with_its_metric_and_class_checks(tmp_path):
    """`init` on a CSV whose target has four text classes: a multiclass spec with the
    classes, a metric and why; the suite refuses an unknown class (quarantine) and holds a
    batch whose class mix is far off or that lacks a class (label hold)."""
    from tasks.data.infer import init_dataset
    from tasks.data.validate import read_suite, split_label_checks, validate_frame

    sample = pd.concat([multiclass_batch(i, rows=300).frame for i in range(4)])
    path = tmp_path / "tickets.csv"
    sample.to_csv(path, index=False)
    result = init_dataset("tickets", path, target="team", time_column="timestamp",
                          root=tmp_path / "exp")
    said = "\n".join(result.lines())
    assert "multiclass: team has 4 text values" in said and "accuracy" in said
    spec = DatasetSpec.model_validate(json.loads((tmp_path / "exp/tickets/spec.json")
                                                 .read_text()))
    assert spec.task == "multiclass" and spec.classes == list(CLASSES)
    rows, labels = split_label_checks(read_suite(tmp_path / "exp/tickets/suite.json"), "team")
    batch = multiclass_batch(3, seed=11, rows=300).frame  # before east: no new region
    assert validate_frame(batch, rows, source="b").success
    assert not validate_frame(batch.assign(team="refund"), rows, source="b").success
    assert validate_frame(multiclass_batch(2, rows=300).frame[["team"]], labels,
                          source="b").success
    lacking = batch[batch["team"] != "account"][["team"]]
    assert not validate_frame(lacking, labels, source="b").success
    skewed = batch.assign(team=np.where(np.arange(300) < 250, "billing", batch["team"]))
    assert not validate_frame(skewed[["team"]], labels, source="b").success


def test_cbpe_estimates_a_multiclass_champion_before_the_labels():
    """Calibrated per class, the expected macro-F1 and accuracy of the next batch fall in
    their band while the world is as on the reference, and the estimator survives JSON."""
    from tasks.monitoring.estimation import Estimator, estimate, fit_estimator

    ch = _challenger(_history(0, 1, 2, rows=800))
    for metric in ("macro_f1", "accuracy"):
        spec = SPEC.model_copy(update={"primary_metric": metric})
        est = Estimator.from_json(fit_estimator(ch.model, ch.split.gate, spec).to_json())
        batch = multiclass_batch(3, rows=1500).frame
        guess = estimate(est, ch.model, batch)
        realised = multiclass_metrics(ch.model.score(batch),
                                      np.searchsorted(CLASSES, batch["team"]))[metric]
        assert guess.low <= realised <= guess.high, (metric, guess, realised)
        assert guess.high - guess.low < 0.2


def test_a_batch_missing_a_class_is_held_not_quarantined():
    """The shipped multiclass suite: a week without one of the four teams is held for a
    person (the label hold, as a constant label is), in one line naming the file."""
    from tasks.data import labels
    from tasks.data.spec import suite_path
    from tasks.data.validate import read_suite, split_label_checks

    _, label_suite = split_label_checks(read_suite(suite_path(SPEC.name)), SPEC.target)
    week = multiclass_batch(12, rows=600).frame
    assert labels.implausible(week, SPEC, label_suite, min_rows=50, source="w.csv") is None
    reason = labels.implausible(week[week["team"] != "account"], SPEC, label_suite,
                                min_rows=50, source="w.csv")
    assert reason.startswith("w.csv: labels implausible") and "team missing" in reason
    assert "\n" not in reason
