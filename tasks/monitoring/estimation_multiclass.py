"""CBPE for K >= 3 classes: the champion's accuracy, macro-F1, balanced accuracy or log loss
on an unlabelled batch, with a band (tasks/monitoring/estimation.py does two classes).

Calibrated per class: each class's probability is calibrated one-vs-rest on the reference
(isotonic or sigmoid, chosen per class by `choose_calibrator` as for binary), then each row's
calibrated probabilities are renormalised to sum to one. A row's calibrated probabilities
are then the distribution of its unknown label, so:
- log loss: the expected per-row loss `-sum_k c_k log p_k`, averaged; its variance from the
  per-row variances;
- accuracy, macro-F1, balanced accuracy: labels are drawn DRAWS times from the calibrated
  probabilities (seeded) and each draw's metric computed from its confusion counts
  (tasks/training/multiclass.py); the estimate is their mean and the batch's sampling
  variance their variance. For accuracy that is `mean c(predicted)` and `sum c(1-c)/n^2`,
  the binary formula; for macro-F1 a ratio of counts, no closed form is needed.
The band adds, as for binary, the calibrator's own sampling error and a systematic term
(chunks of the reference estimated by calibrators fitted without them), and rows with a
category the champion never saw may each be right or wrong. Same assumption as binary:
no concept drift (P(y | x) as on the reference).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.training.evaluate import primary_metric, truth_of
from tasks.training.model import GreenlightModel
from tasks.training.multiclass import (
    EPS,
    from_confusion,
    predicted,
)

METHOD = "cbpe_multiclass"
DRAWS = 200


def fit_calibrators(scores: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """One-vs-rest calibrators, one per class, each of the kind its Brier score chose."""
    from tasks.monitoring.estimation import _fit_calibrator, choose_calibrator

    per_class = []
    for k in range(scores.shape[1]):
        hit = (y == k).astype(int)
        per_class.append(_fit_calibrator(choose_calibrator(scores[:, k], hit), scores[:, k],
                                         hit))
    return {"kind": "per_class", "classes": per_class}


def calibrated(calibrator: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    """Each row's calibrated class probabilities, summing to one."""
    from tasks.monitoring.estimation import calibrate

    c = np.column_stack([calibrate(cal, scores[:, k])
                         for k, cal in enumerate(calibrator["classes"])])
    return c / c.sum(axis=1, keepdims=True)


def expected(metric: str, scores: np.ndarray, c: np.ndarray, seed: int = 0
             ) -> tuple[float, float]:
    """The expected metric of these scores when each row's label follows `c`, and the
    batch's sampling variance of it."""
    n, k = c.shape
    if metric == "log_loss":
        losses = -np.log(np.clip(scores, EPS, 1.0))
        mean_row = (c * losses).sum(axis=1)
        var_row = (c * losses**2).sum(axis=1) - mean_row**2
        return float(mean_row.mean()), float(np.maximum(var_row, 0).sum() / n**2)
    pred = predicted(scores)
    if metric == "accuracy":
        hit = c[np.arange(n), pred]
        return float(hit.mean()), float((hit * (1 - hit)).sum() / n**2)
    rng = np.random.default_rng(seed)
    u = rng.random((DRAWS, n, 1))
    labels = np.minimum((u > np.cumsum(c, axis=1)[None]).sum(axis=2), k - 1)
    cells = labels * k + pred[None, :] + (k + 1) * k * np.arange(DRAWS)[:, None]
    counts = np.bincount(cells.ravel(), minlength=DRAWS * (k + 1) * k).reshape(DRAWS, k + 1, k)
    values = from_confusion(counts, metric)
    return float(np.nanmean(values)), float(np.nanvar(values))


def _chunks(n: int, folds: int) -> list[np.ndarray]:
    return [c for c in np.array_split(np.arange(n), folds) if len(c)]


def fit_multiclass_cbpe(model: GreenlightModel, reference: pd.DataFrame, spec: DatasetSpec,
                        folds: int) -> Any:
    """The estimator of a multiclass champion's primary metric, from its labelled reference
    (time order), as `tasks.monitoring.estimation.fit_estimator` returns it."""
    from tasks.monitoring.estimation import Estimator

    scores, y = model.score(reference), truth_of(reference, spec)
    metric = spec.primary_metric
    misses, noise = [], []
    for chunk in _chunks(len(y), folds):
        rest = np.setdiff1d(np.arange(len(y)), chunk)
        c = calibrated(fit_calibrators(scores[rest], y[rest]), scores[chunk])
        value, var = expected(metric, scores[chunk], c)
        realised = primary_metric(scores[chunk], reference.iloc[chunk], spec, y[chunk])
        if not math.isnan(realised) and not math.isnan(value):
            misses.append(value - realised)
            noise.append(var)
    systematic = max(float(np.mean(np.square(misses)) - np.mean(noise)), 0.0) if misses else 0.0
    return Estimator(METHOD, metric, spec.task, primary_metric(scores, reference, spec, y),
                     len(y), calibrator=fit_calibrators(scores, y),
                     systematic_sd=math.sqrt(systematic))


def estimate_multiclass(estimator: Any, scores: np.ndarray, unseen: np.ndarray, z: float
                        ) -> tuple[float, float, float]:
    """(value, low, high) of a multiclass estimator on a batch's scores; `unseen` marks rows
    with a category the champion never saw."""
    n = len(scores)
    c = calibrated(estimator.calibrator, scores)
    value, var = expected(estimator.metric, scores, c)
    var *= 1 + n / estimator.reference_rows
    half = z * math.sqrt(var + estimator.systematic_sd**2)
    low, high = value - half, value + half
    if unseen.any():  # nothing is known of these rows: each may be right or wrong
        if estimator.metric == "log_loss":
            high += float(unseen.mean()) * -math.log(EPS) / 10
        else:
            low, high = low - unseen.mean(), high + unseen.mean()
    if estimator.metric == "log_loss":
        return value, max(low, 0.0), high
    return value, max(low, 0.0), min(high, 1.0)
