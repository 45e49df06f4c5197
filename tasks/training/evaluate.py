"""Score models on labelled rows and compare them in one direction-aware way."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from tasks.data.spec import DatasetSpec
from tasks.training.model import GreenlightModel
from tasks.training.multiclass import class_codes, multiclass_metrics
from tasks.training.train import binary_target


def evaluate(model: GreenlightModel, frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, float]:
    """All the task's metrics on labelled rows; the primary one decides, the rest inform."""
    return metrics_of(model.score(frame), frame, spec)


def primary_metric(scores: np.ndarray, frame: pd.DataFrame, spec: DatasetSpec,
                   truth: np.ndarray | None = None) -> float:
    """`metrics_of(...)[spec.primary_metric]` alone: the recipe backtest ranks on it, and
    ROC AUC (a sort of every row) costs more than the accuracy it would be thrown away for.
    `truth`, when given, is `frame`'s labels as `truth_of` gives them (the backtest labels
    its rows once for every fold)."""
    y = truth_of(frame, spec) if truth is None else truth
    if spec.task == "multiclass":
        return multiclass_metrics(scores, y)[spec.primary_metric]
    if spec.task == "classification" and spec.primary_metric == "accuracy":
        return float(skm.accuracy_score(y, scores >= 0.5))
    return _metrics(scores, y, spec)[spec.primary_metric]


def truth_of(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """The labels every metric reads: 1/0 for the positive class, the class position
    (multiclass, -1 for a label outside the spec's classes), or the target as floats."""
    if spec.task == "multiclass":
        return class_codes(frame, spec)
    if spec.task == "classification":
        return binary_target(frame, spec)
    return frame[spec.target].to_numpy(dtype=float)


def metrics_of(scores: np.ndarray, frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, float]:
    """All the task's metrics of these scores (positive-class probabilities, or estimates)."""
    return _metrics(scores, truth_of(frame, spec), spec)


def _metrics(scores: np.ndarray, y: np.ndarray, spec: DatasetSpec) -> dict[str, float]:
    if spec.task == "multiclass":  # scores: one probability column per class
        return multiclass_metrics(scores, y)
    if spec.task == "classification":
        out = {"accuracy": skm.accuracy_score(y, scores >= 0.5)}
        out["roc_auc"] = skm.roc_auc_score(y, scores) if len(np.unique(y)) == 2 else float("nan")
        return {k: float(v) for k, v in out.items()}
    return {"mae": float(skm.mean_absolute_error(y, scores)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y, scores)))}


def relative_gain(new: float, old: float, higher_is_better: bool) -> float:
    """How much better `new` is than `old`, as a fraction of `old` (negative = worse)."""
    if old == 0 or np.isnan(old) or np.isnan(new):
        return float("nan") if np.isnan(new) or np.isnan(old) else float(np.sign(new - old))
    gain = (new - old) / abs(old)
    return float(gain if higher_is_better else -gain)
