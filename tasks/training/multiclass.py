"""Multiclass (K >= 3 classes): labels as class positions, the fit, and the metrics.

A multiclass model scores a row as K probabilities, in the order of the spec's `classes`
(`DatasetSpec.classes`), so every model of a dataset (champion, challenger, each member of
an ensemble) speaks the same columns whatever classes its own training rows happened to hold.
A label outside `classes` is position -1: it counts as a wrong answer, never as a crash (the
suite's label hold keeps such a batch out of the lake in the first place).

The metrics come from one confusion matrix of K+1 truth rows (the last: a label outside the
classes) by K predicted columns, so the point estimate and every bootstrap resample
(tasks/gate/bootstrap.py resamples confusion counts) are the same function of counts.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from tasks.data.spec import MULTICLASS_METRICS, DatasetSpec

EPS = 1e-15  # log loss clips probabilities here, as scikit-learn does


def class_codes(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """Each row's class position in `spec.classes`; -1 for a missing or unknown label.

    Compared as text, as binary_target does: a label column with gaps (late labels) is
    float, and 2.0 must still be class 2."""
    y = frame[spec.target]
    if pd.api.types.is_float_dtype(y) and bool((y.dropna() % 1 == 0).all()):
        y = y.astype("Int64")
    lookup = {str(c): i for i, c in enumerate(spec.classes or [])}
    text = y.astype(str).where(y.notna(), None)
    return np.array([lookup.get(v, -1) if v is not None else -1 for v in text], dtype=int)


def unknown_labels(frame: pd.DataFrame, spec: DatasetSpec) -> list[Any]:
    """Labels present in `frame` that are not among the spec's classes (sorted as text)."""
    known = {str(c) for c in spec.classes or []}
    y = frame[spec.target].dropna()
    if pd.api.types.is_float_dtype(y) and bool((y % 1 == 0).all()):
        y = y.astype("Int64")
    return sorted({v for v in y.astype(str).unique() if v not in known})


def booster_params(params: dict, n_classes: int) -> dict:
    """`lightgbm.train` parameters for the sklearn-style `params` (LGBM_PARAMS): LightGBM
    reads random_state, n_jobs and min_child_samples as aliases; n_estimators is the
    number of rounds, passed apart."""
    out = {k: v for k, v in params.items() if k != "n_estimators"}
    return {**out, "objective": "multiclass", "num_class": n_classes}


def fit_booster(params: dict, X: pd.DataFrame, y: np.ndarray, weights: np.ndarray,
                categorical: Any, n_classes: int) -> lgb.Booster:
    """LightGBM's multiclass objective on rows labelled 0..K-1, with their weights.

    Through `lightgbm.train`, not LGBMClassifier: the sklearn estimator numbers the classes
    it sees, so a window missing one class would shift every column after it. Rows whose
    label is unknown (-1) are left out of the fit."""
    known = y >= 0
    data = lgb.Dataset(X[known], label=y[known], weight=np.asarray(weights)[known],
                       categorical_feature=categorical, params={"verbose": -1})
    return lgb.train(booster_params(params, n_classes), data,
                     num_boost_round=params["n_estimators"])


def predicted(proba: np.ndarray) -> np.ndarray:
    """The class position each row's probabilities favour (the first on a tie)."""
    return np.argmax(proba, axis=1)


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(K+1, K) counts: truth rows (K: unknown label), predicted columns."""
    truth = np.where(y < 0, n_classes, y)
    return np.bincount(truth * n_classes + pred,
                       minlength=(n_classes + 1) * n_classes).reshape(n_classes + 1, n_classes)


def from_confusion(counts: np.ndarray, metric: str) -> np.ndarray:
    """Accuracy, macro-F1 or balanced accuracy of confusion counts (..., K+1, K).

    Macro-F1 averages the classes present in the truth or the predictions, balanced accuracy
    the classes present in the truth: scikit-learn's `f1_score(average="macro")` and
    `balanced_accuracy_score` (a class absent from both is 0/0, left out of the mean)."""
    counts = np.asarray(counts, dtype=float)
    k = counts.shape[-1]
    tp = np.diagonal(counts[..., :k, :], axis1=-2, axis2=-1)
    total = counts.sum(axis=(-2, -1))
    support = counts[..., :k, :].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return tp.sum(axis=-1) / total
        if metric == "balanced_accuracy":
            recall = np.where(support > 0, tp / support, np.nan)
            return _nanmean(recall)
        if metric == "macro_f1":
            denom = counts.sum(axis=-2) + support  # 2TP + FP + FN
            f1 = np.where(denom > 0, 2 * tp / denom, np.nan)
            return _nanmean(f1)
    raise ValueError(f"{metric!r} is not a confusion metric")


def _nanmean(values: np.ndarray) -> np.ndarray:
    present = ~np.isnan(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present.any(axis=-1),
                        np.nansum(values, axis=-1) / present.sum(axis=-1), np.nan)


def row_log_loss(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """-log p(true class) per row, clipped at EPS (an unknown label: p = EPS)."""
    y = np.asarray(y).astype(int)
    known = y >= 0
    p = np.full(len(y), EPS)
    p[known] = proba[np.flatnonzero(known), y[known]]
    return -np.log(np.clip(p, EPS, 1.0))


def multiclass_metrics(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Every multiclass metric of K-column probabilities against class positions."""
    proba, y = np.asarray(proba, dtype=float), np.asarray(y).astype(int)
    if not len(y):
        return {m: float("nan") for m in MULTICLASS_METRICS}
    counts = confusion(y, predicted(proba), proba.shape[1])
    out = {m: float(from_confusion(counts, m)) for m in MULTICLASS_METRICS if m != "log_loss"}
    out["log_loss"] = float(row_log_loss(y, proba).mean())
    return {m: out[m] for m in MULTICLASS_METRICS}


def per_class_recall(proba: np.ndarray, y: np.ndarray, classes: list[Any]) -> dict[str, float]:
    """Recall of each class with rows (for the card and the approval form: the class whose
    recall fell most)."""
    y = np.asarray(y).astype(int)
    pred = predicted(np.asarray(proba, dtype=float))
    return {str(c): float((pred[y == i] == i).mean()) for i, c in enumerate(classes)
            if (y == i).any()}


def confusion_cells(y: np.ndarray, scores: np.ndarray, codes: np.ndarray, k: int
                    ) -> tuple[np.ndarray, int]:
    """Each row's cell among k groups x (K+1 truths) x K predictions, and the cells per
    group: a resample's confusion counts are one bincount of its rows' cells."""
    n_classes = scores.shape[1]
    y = np.asarray(y).astype(np.int64)
    truth = np.where(y < 0, n_classes, y)
    size = (n_classes + 1) * n_classes
    return codes.astype(np.int64) * size + truth * n_classes + predicted(scores), size


def confusion_draws(counts_of: Any, metric: str, y: np.ndarray, champion: np.ndarray,
                    challenger: np.ndarray, codes: np.ndarray, k: int
                    ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((point, draws), (point, draws)) of champion and challenger per group, for a metric
    of confusion counts (macro-F1, balanced accuracy): `counts_of(scores)` gives each
    draw's counts (draws, k, cells), from row or super-block resamples alike."""
    out = []
    for scores in (champion, challenger):
        n_classes = scores.shape[1]
        cells, size = confusion_cells(y, scores, codes, k)
        point = np.bincount(cells, minlength=k * size).reshape(k, n_classes + 1, n_classes)
        draws = counts_of(scores).reshape(-1, k, n_classes + 1, n_classes)
        out.append((from_confusion(point, metric), from_confusion(draws, metric)))
    return out[0], out[1]
