"""Performance before the labels land: the champion's primary metric estimated on an
unlabelled batch, with a band.

- Classification, CBPE (confidence-based performance estimation, as NannyML does it).
  The champion's scores are calibrated on its reference (labelled rows it did not train on,
  e.g. its gate window): isotonic regression or Platt's sigmoid, whichever has the lower
  Brier score on held-out, time-ordered folds of the reference (isotonic is more flexible
  but overfits a small reference, sigmoid is two numbers; below `MIN_ISOTONIC_ROWS` only
  sigmoid is tried). On a batch, each row's calibrated probability `c` gives its expected
  correctness (`c` where the champion says positive, `1 - c` where it says negative), so
  the expected accuracy is their mean; ROC AUC is the AUC of the scores against the
  calibrated probabilities used as fractional labels (each row counted as a positive
  with weight `c` and a negative with weight `1 - c`).
- Regression, DLE (direct loss estimation). A small LightGBM "nanny" learns the champion's
  absolute error (MAE) or squared error (RMSE) on the reference from the features and the
  champion's prediction; its mean over a batch is the estimate (the root of it for RMSE).
  The reference must be rows the champion did not train on, so the nanny learns real
  errors, not training errors. The nanny learns the error relative to the prediction's
  size (floored at the reference's 10% quantile): trees cannot extrapolate, and when demand
  grows past the reference's level, relative errors carry over where absolute ones do not.

The band (nominal `LEVEL`) adds the variances of
- the batch's own sampling noise: per-row Bernoulli variances `c (1 - c)` for accuracy, a
  Hanley-McNeil standard error for AUC, the nanny's out-of-chunk residual variance for DLE;
- the estimator's own, learned from `reference_rows` rows: the same per-row variance over
  the reference's size;
- a systematic term: how far the estimator, refitted without one contiguous chunk of the
  reference, misses that chunk's realised metric (CBPE: beyond the chunk's Bernoulli noise;
  DLE: all of it, relative to the loss level, as rows an hour apart are not independent);
- CBPE only: rows with a category the champion never saw may each be right or wrong.

Both methods assume no concept drift (P(y | x) stays as on the reference): a change in the
labels alone is invisible to them, and that is what labels, once they land, are for.

The estimator is plain data (`to_json` / `from_json`): numbers for the calibrator, LightGBM's
text model for the nanny, so it can be saved next to the model and read back without
pickling. No Prefect, no MLflow here.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.training.evaluate import primary_metric, relative_gain, truth_of
from tasks.training.model import GreenlightModel

FORMAT = 1
Z = {0.8: 1.2816, 0.9: 1.6449, 0.95: 1.96}
LEVEL = 0.9  # the band's nominal coverage
MIN_ISOTONIC_ROWS = 500  # below this, isotonic's steps overfit: sigmoid without trying
FOLDS = 5  # contiguous chunks of the reference, for choosing the calibrator and the band
EPS = 1e-6
# The nanny: small and regularised, it learns from one reference of a few hundred rows up.
NANNY_PARAMS = {"n_estimators": 150, "learning_rate": 0.05, "num_leaves": 8,
                "min_child_samples": 20, "subsample": 0.8, "subsample_freq": 1,
                "colsample_bytree": 0.8, "reg_lambda": 1.0, "random_state": 0,
                "n_jobs": 1, "verbose": -1}
PREDICTION = "__prediction__"


@dataclass(frozen=True)
class Estimate:
    """The estimated primary metric of one batch and its band (`low` <= `value` <= `high`)."""

    metric: str
    value: float
    low: float
    high: float
    rows: int
    unseen: int = 0  # rows with a category the champion never saw (the band spans them)

    def covers(self, realised: float) -> bool:
        return self.low <= realised <= self.high


@dataclass
class Estimator:
    """Everything `estimate` needs besides the champion: plain numbers and text."""

    method: str  # "cbpe" or "dle"
    metric: str  # the spec's primary metric
    task: str
    reference_metric: float  # the champion's realised metric on the reference
    reference_rows: int
    calibrator: dict[str, Any] = field(default_factory=dict)  # CBPE: kind and its numbers
    nanny: str | None = None  # DLE: LightGBM's text model
    noise_var: float = 0.0  # DLE: per-row variance of the loss around the nanny's estimate
    scale_floor: float | None = None  # DLE: the nanny learns loss / max(|prediction|, this)
    # the band's systematic term: CBPE in the metric's units, DLE (relative) a fraction of
    # the estimated loss
    systematic_sd: float = 0.0
    level: float = LEVEL
    format: int = FORMAT
    _booster: Any = field(default=None, repr=False, compare=False)

    def to_json(self) -> str:
        state = {f.name: getattr(self, f.name) for f in fields(self)
                 if not f.name.startswith("_")}
        if isinstance(self.reference_metric, float) and math.isnan(self.reference_metric):
            state["reference_metric"] = None  # e.g. ROC AUC of a one-class reference
        return json.dumps(state, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Estimator:
        state = json.loads(text)
        if state.get("format") != FORMAT:
            raise ValueError(f"estimator format {state.get('format')!r}: this greenlight "
                             f"reads format {FORMAT}")
        if state["reference_metric"] is None:
            state["reference_metric"] = float("nan")
        return cls(**state)

    def booster(self) -> Any:
        if self._booster is None and self.nanny is not None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.nanny)
        return self._booster


# --- calibration ----------------------------------------------------------------------------
def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _fit_calibrator(kind: str, scores: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    if len(np.unique(y)) < 2:  # one class only: the reference rate, whatever the score
        return {"kind": "constant", "value": float(np.clip(y.mean(), EPS, 1 - EPS))}
    if kind == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
        return {"kind": "isotonic", "x": iso.X_thresholds_.tolist(),
                "y": iso.y_thresholds_.tolist()}
    a, b = _platt(_logit(scores), y.astype(float))
    return {"kind": "sigmoid", "a": a, "b": b}


def _platt(x: np.ndarray, y: np.ndarray, ridge: float = 1e-4, steps: int = 50
           ) -> tuple[float, float]:
    """Logistic regression of `y` on `x` (one feature and an intercept) by Newton's method:
    two numbers, so a few exact steps beat a general solver (sklearn's took ~60 ms a fit)."""
    w = np.zeros(2)
    X = np.column_stack([x, np.ones(len(x))])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(X @ w)))
        grad = X.T @ (p - y) + ridge * w
        hess = (X * (p * (1 - p))[:, None]).T @ X + ridge * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def calibrate(calibrator: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    """P(y = 1 | score) by the fitted calibrator."""
    kind = calibrator["kind"]
    if kind == "constant":
        return np.full(len(scores), calibrator["value"])
    if kind == "isotonic":
        c = np.interp(scores, calibrator["x"], calibrator["y"])
    else:
        c = 1 / (1 + np.exp(-(calibrator["a"] * _logit(scores) + calibrator["b"])))
    return np.clip(c, EPS, 1 - EPS)


def _chunks(n: int, folds: int = FOLDS) -> list[np.ndarray]:
    """Contiguous, time-ordered chunks of row positions 0..n-1."""
    return [c for c in np.array_split(np.arange(n), folds) if len(c)]


def choose_calibrator(scores: np.ndarray, y: np.ndarray) -> str:
    """"isotonic" or "sigmoid", by the Brier score on held-out contiguous chunks of the
    reference (each chunk calibrated by the others). Sigmoid, two numbers, unless isotonic
    is better by more than one standard error of the paired per-row difference (the
    one-SE rule: the simpler model unless the flexible one is clearly better); a reference
    under MIN_ISOTONIC_ROWS gets sigmoid without trying."""
    if len(y) < MIN_ISOTONIC_ROWS or len(np.unique(y)) < 2:
        return "sigmoid"
    errors: dict[str, list[np.ndarray]] = {"isotonic": [], "sigmoid": []}
    for chunk in _chunks(len(y)):
        rest = np.setdiff1d(np.arange(len(y)), chunk)
        for kind in errors:
            c = calibrate(_fit_calibrator(kind, scores[rest], y[rest]), scores[chunk])
            errors[kind].append((c - y[chunk]) ** 2)
    gain = np.concatenate(errors["sigmoid"]) - np.concatenate(errors["isotonic"])
    return "isotonic" if gain.mean() > gain.std(ddof=1) / len(gain) ** 0.5 else "sigmoid"


# --- CBPE -------------------------------------------------------------------------------------
def _cbpe(metric: str, scores: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """The expected metric of these scores given calibrated probabilities `c`, and its
    sampling variance."""
    n = len(scores)
    if metric == "accuracy":
        correct = np.where(scores >= 0.5, c, 1 - c)
        return float(correct.mean()), float((c * (1 - c)).sum() / n**2)
    # roc_auc: the scores against fractional labels; Hanley-McNeil for the variance
    from sklearn.metrics import roc_auc_score

    pos, neg = float(c.sum()), float((1 - c).sum())
    auc = float(roc_auc_score(np.r_[np.ones(n), np.zeros(n)], np.r_[scores, scores],
                              sample_weight=np.r_[c, 1 - c]))
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (pos - 1) * (q1 - auc**2) + (neg - 1) * (q2 - auc**2)) / max(
        pos * neg, 1.0)
    return auc, float(max(var, 0.0))


def _fit_cbpe(model: GreenlightModel, reference: pd.DataFrame, spec: DatasetSpec
              ) -> Estimator:
    scores, y = model.score(reference), truth_of(reference, spec)
    kind = choose_calibrator(scores, y)
    # The systematic term: each chunk estimated by a calibrator fitted without it.
    misses, noise = [], []
    for chunk in _chunks(len(y)):
        rest = np.setdiff1d(np.arange(len(y)), chunk)
        c = calibrate(_fit_calibrator(kind, scores[rest], y[rest]), scores[chunk])
        value, var = _cbpe(spec.primary_metric, scores[chunk], c)
        realised = primary_metric(scores[chunk], reference.iloc[chunk], spec, y[chunk])
        if not math.isnan(realised):
            misses.append(value - realised)
            noise.append(var)
    systematic = max(float(np.mean(np.square(misses)) - np.mean(noise)), 0.0) if misses else 0.0
    return Estimator("cbpe", spec.primary_metric, spec.task,
                     primary_metric(scores, reference, spec, y), len(y),
                     calibrator=_fit_calibrator(kind, scores, y),
                     systematic_sd=math.sqrt(systematic))


# --- DLE --------------------------------------------------------------------------------------
def _nanny_frame(model: GreenlightModel, frame: pd.DataFrame, scores: np.ndarray
                 ) -> pd.DataFrame:
    X = model.encode(frame).reset_index(drop=True)
    X[PREDICTION] = scores
    return X


def _loss(metric: str, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    err = y - scores
    return np.abs(err) if metric == "mae" else err**2


RELATIVE = True


def _scale(scores: np.ndarray, floor: float) -> np.ndarray:
    """What the nanny divides the loss by: the prediction's size, floored."""
    return np.maximum(np.abs(scores), floor)


def _fit_nanny(X: pd.DataFrame, loss: np.ndarray, categorical: list[str]) -> Any:
    import lightgbm as lgb

    return lgb.LGBMRegressor(**NANNY_PARAMS).fit(X, loss, categorical_feature=categorical
                                                 or "auto")


def _dle_value(metric: str, mean_loss: float) -> float:
    return math.sqrt(max(mean_loss, 0.0)) if metric == "rmse" else mean_loss


def _fit_dle(model: GreenlightModel, reference: pd.DataFrame, spec: DatasetSpec
             ) -> Estimator:
    metric = spec.primary_metric
    scores, y = model.score(reference), truth_of(reference, spec)
    X, loss = _nanny_frame(model, reference, scores), _loss(metric, y, scores)
    floor = float(np.quantile(np.abs(scores), 0.1)) + EPS if RELATIVE else None
    divisor = _divisor(metric, scores, floor)
    categorical = list(model.categories)
    # Out-of-chunk: the nanny's residual variance per row and its miss per chunk.
    oof = np.empty(len(y))
    for chunk in _chunks(len(y)):
        rest = np.setdiff1d(np.arange(len(y)), chunk)
        nanny = _fit_nanny(X.iloc[rest], loss[rest] / divisor[rest], categorical)
        oof[chunk] = nanny.predict(X.iloc[chunk]) * divisor[chunk]
    noise_var = float(np.mean((loss - oof) ** 2))
    misses = [float(oof[chunk].mean() - loss[chunk].mean()) for chunk in _chunks(len(y))]
    # Not less the per-row noise, as CBPE does: hourly rows are not independent, so their
    # residual variance over n says little of a chunk's miss, which is measured whole.
    systematic = float(np.mean(np.square(misses)))
    if RELATIVE:  # errors grow with the level, and so does the estimator's miss
        systematic /= float(loss.mean()) ** 2
    nanny = _fit_nanny(X, loss / divisor, categorical)
    return Estimator("dle", metric, spec.task, primary_metric(scores, reference, spec, y),
                     len(y), nanny=nanny.booster_.model_to_string(), noise_var=noise_var,
                     systematic_sd=math.sqrt(systematic), scale_floor=floor)


def _divisor(metric: str, scores: np.ndarray, floor: float | None) -> np.ndarray:
    """What the nanny's target is divided by: 1, or the prediction's size (floored), squared
    for RMSE, so that it learns relative errors, which carry over to a higher level."""
    if floor is None:
        return np.ones(len(scores))
    size = np.maximum(np.abs(scores), floor)
    return size**2 if metric == "rmse" else size


# --- the API ------------------------------------------------------------------------------------
def fit_estimator(model: GreenlightModel, reference: pd.DataFrame, spec: DatasetSpec
                  ) -> Estimator:
    """An estimator of `model`'s primary metric, from labelled rows it did not train on
    (its gate window, or a newer held-out batch), in time order."""
    reference = reference[reference[spec.target].notna()]
    if spec.time_column in reference:  # the chunks below are contiguous stretches of time
        reference = reference.sort_values(spec.time_column, kind="stable")
    reference = reference.reset_index(drop=True)
    if len(reference) < 2 * FOLDS:
        raise ValueError(f"estimation needs at least {2 * FOLDS} labelled reference rows, "
                         f"got {len(reference)}")
    if spec.task == "multiclass":  # tasks/monitoring/estimation_multiclass.py
        from tasks.monitoring.estimation_multiclass import fit_multiclass_cbpe

        return fit_multiclass_cbpe(model, reference, spec, FOLDS)
    if spec.task == "classification":
        return _fit_cbpe(model, reference, spec)
    return _fit_dle(model, reference, spec)


def estimate(estimator: Estimator, model: GreenlightModel, batch: pd.DataFrame,
             scores: np.ndarray | None = None) -> Estimate:
    """The champion's primary metric on `batch` (labels not needed), with a band at
    `estimator.level`. `scores`, when given, are `model.score(batch)`."""
    if len(batch) == 0:
        raise ValueError("cannot estimate the metric of an empty batch")
    scores = model.score(batch) if scores is None else np.asarray(scores)
    z = Z.get(estimator.level, 1.6449)
    if estimator.method == "cbpe_multiclass":
        from tasks.monitoring.estimation_multiclass import estimate_multiclass

        unseen = unseen_rows(model, batch)
        value, low, high = estimate_multiclass(estimator, scores, unseen, z)
        return Estimate(estimator.metric, value, low, high, len(batch), int(unseen.sum()))
    if estimator.method == "cbpe":
        c = calibrate(estimator.calibrator, scores)
        value, var = _cbpe(estimator.metric, scores, c)
        # The calibrator was learned from the reference's rows: its own sampling error
        # carries over, as much again as the batch's when both are the same size.
        var *= 1 + len(batch) / estimator.reference_rows
        half = z * math.sqrt(var + estimator.systematic_sd**2)
        low, high = value - half, value + half
        unseen = unseen_rows(model, batch)
        if unseen.any():  # nothing is known of these rows: each may be right or wrong
            if estimator.metric == "accuracy":
                correct = np.where(scores >= 0.5, c, 1 - c)[unseen]
                low -= correct.sum() / len(batch)
                high += (1 - correct).sum() / len(batch)
            else:
                low, high = low - unseen.mean(), high + unseen.mean()
        return Estimate(estimator.metric, value, max(low, 0.0), min(high, 1.0), len(batch),
                        int(unseen.sum()))
    losses = estimator.booster().predict(_nanny_frame(model, batch, scores), num_threads=1
                                         ) * _divisor(estimator.metric, scores,
                                                      estimator.scale_floor)
    mean_loss = float(np.mean(losses))
    noise = estimator.noise_var * (1 / len(batch) + 1 / estimator.reference_rows)
    systematic = estimator.systematic_sd * (mean_loss if estimator.scale_floor is not None
                                            else 1.0)
    half = z * math.sqrt(noise + systematic**2)
    low, high = max(mean_loss - half, 0.0), mean_loss + half
    return Estimate(estimator.metric, _dle_value(estimator.metric, mean_loss),
                    _dle_value(estimator.metric, low), _dle_value(estimator.metric, high),
                    len(batch))


def unseen_rows(model: GreenlightModel, batch: pd.DataFrame) -> np.ndarray:
    """Rows with a categorical value the champion never trained on (it scores them as
    missing): a calibration learned on the reference says nothing about them."""
    mask = np.zeros(len(batch), dtype=bool)
    for col, cats in model.categories.items():
        values = batch[col]
        mask |= (values.notna() & ~values.isin(cats)).to_numpy()
    return mask


def estimated_decay(estimator: Estimator, result: Estimate, higher_is_better: bool
                    ) -> float:
    """The estimate's relative decay against the reference's realised metric, signed as
    monitoring's decay is (positive = worse)."""
    return -relative_gain(result.value, estimator.reference_metric, higher_is_better)


@functools.lru_cache(maxsize=8)
def load_estimator(text: str | None) -> Estimator | None:
    """The estimator a model carries (its JSON), parsed once per cycle and champion; None
    for a model without one."""
    return None if not text else Estimator.from_json(text)
