"""Suspect labels: a batch whose labels disagree with the champion far more than its
features drift.

A real market change moves the features, or moves part of the concept: the champion's
skill drops but stays well above chance (the synthetic stream's concept change at W17 left
a two-month-old model with a Cohen's kappa of 0.25-0.29, against the 0.57 its own
probabilities expected). A broken label feed leaves the features as they were and takes
the skill away: flipped labels give a negative kappa, labels shifted by a row or taken
from another dataset's rows give about zero (issue 31). So a batch is suspect when its
features did not drift (drift share under the threshold, no adversarial drift), the
champion's skill on its labels, at the upper end of its 95% interval, keeps under a third
of the skill the champion expects there without labels (CBPE's calibrated probabilities, or
its own scores when it has no estimator), with at least MIN_EXPECTED to lose, and either
the skill is negative beyond noise (flipped labels) or the batch's labels cannot be
learned from its own features either (`learnable_skill`: shifted or foreign labels are
noise to them). The last test is what tells a broken feed from a real change of concept
that leaves an old model no skill: Elec2 has weeks where a three-month-old model's kappa
is about zero (11 of 127 weeks, 1996-1998), but a model fitted on half of such a week
predicts the other half.

Skill is chance-corrected, so a shift of the label share alone is not a suspect: for
classification, Cohen's kappa of the champion's predicted class against the labels; for
regression, the Pearson correlation of its estimate with the target (a regression model
expects no particular correlation without labels, so there the upper bound must be under
MAX_REGRESSION_SKILL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.monitoring.estimation import calibrate, load_estimator
from tasks.training.train import binary_target, fit

Z = 1.6449  # one-sided 95%: the upper end of the realised skill's interval
KEPT = 1 / 3  # a suspect keeps less than this share of the expected skill...
MIN_EXPECTED = 0.15  # ...of an expected kappa at least this (else nothing to lose)
MAX_REGRESSION_SKILL = 0.15  # regression: the correlation's upper end under this
# A small model fitted on each time-ordered half of the batch and scored on the other: as
# the recipe backtest's models (tasks.training.recipe.BACKTEST_PARAMS), fewer trees.
LEARN_PARAMS = {"n_estimators": 30, "learning_rate": 0.2, "n_jobs": 1}


@dataclass(frozen=True)
class Skill:
    """The champion's chance-corrected agreement with a batch's labels: realised, the upper
    end of its one-sided 95% interval, and expected without labels (None: regression)."""

    name: str  # "kappa" or "correlation"
    value: float
    high: float
    expected: float | None
    rows: int


def _kappa(agree: float, pred_share: float, label_share: float) -> float:
    chance = pred_share * label_share + (1 - pred_share) * (1 - label_share)
    return (agree - chance) / (1 - chance) if chance < 1 else 0.0


def label_skill(model: Any, frame: pd.DataFrame, spec: DatasetSpec,
                scores: np.ndarray | None = None) -> Skill | None:
    """The champion's skill on the labelled rows of `frame`; None without two of them or
    (classification) without both a predicted and a labelled class to compare. `scores`:
    the model's scores on those rows, when the caller has them."""
    rows = frame[frame[spec.target].notna()]
    n = len(rows)
    if n < 2:
        return None
    scores = np.asarray(model.score(rows) if scores is None else scores, dtype=float)
    if spec.task == "multiclass":
        return _multiclass_skill(model, rows, spec, scores)
    if spec.task != "classification":
        y = rows[spec.target].to_numpy(dtype=float)
        if np.std(scores) == 0 or np.std(y) == 0:
            return None
        r = float(np.corrcoef(scores, y)[0, 1])
        z = math.atanh(min(max(r, -0.999999), 0.999999))  # Fisher's z
        high = math.tanh(z + Z / math.sqrt(max(n - 3, 1)))
        return Skill("correlation", r, high, None, n)
    y = binary_target(rows, spec).astype(float)
    pred = (scores >= 0.5).astype(float)
    estimator = load_estimator(getattr(model, "performance", None))
    c = (calibrate(estimator.calibrator, scores) if estimator is not None
         and estimator.method == "cbpe" else np.clip(scores, 0.0, 1.0))
    agree = float(np.mean(pred == y))
    chance = pred.mean() * y.mean() + (1 - pred.mean()) * (1 - y.mean())
    if chance >= 1:
        return None
    value = _kappa(agree, float(pred.mean()), float(y.mean()))
    high = value + Z * math.sqrt(agree * (1 - agree) / n) / (1 - chance)
    expected = _kappa(float(np.mean(np.where(pred == 1, c, 1 - c))), float(pred.mean()),
                      float(c.mean()))
    return Skill("kappa", value, high, expected, n)


def _multiclass_skill(model: Any, rows: pd.DataFrame, spec: DatasetSpec,
                      scores: np.ndarray) -> Skill | None:
    """Cohen's kappa over K classes, realised and expected from the calibrated class
    probabilities (the champion's CBPE, else its own probabilities)."""
    from tasks.monitoring.estimation_multiclass import calibrated
    from tasks.training.multiclass import class_codes, predicted

    y, pred, n = class_codes(rows, spec), predicted(scores), len(rows)
    k = scores.shape[1]
    estimator = load_estimator(getattr(model, "performance", None))
    c = (calibrated(estimator.calibrator, scores) if estimator is not None
         and estimator.method == "cbpe_multiclass" else scores)
    pred_share = np.bincount(pred, minlength=k) / n
    label_share = np.bincount(y[y >= 0], minlength=k) / n
    agree = float(np.mean(pred == y))
    chance = float(pred_share @ label_share)
    if chance >= 1:
        return None
    value = (agree - chance) / (1 - chance)
    high = value + Z * math.sqrt(agree * (1 - agree) / n) / (1 - chance)
    agree_c, chance_c = float(c[np.arange(n), pred].mean()), float(pred_share @ c.mean(axis=0))
    expected = (agree_c - chance_c) / (1 - chance_c) if chance_c < 1 else 0.0
    return Skill("kappa", value, high, expected, n)


class _Halves:
    """Scores of the two half-models, each on the half it did not learn from."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.scores


def learnable_skill(frame: pd.DataFrame, spec: DatasetSpec) -> Skill | None:
    """How well the batch's own features predict its labels: a small model fitted on each
    time-ordered half and scored on the other (`label_skill` of those scores, its expected
    part unused). None where a half cannot be fitted (one class)."""
    rows = frame[frame[spec.target].notna()].sort_values(spec.time_column, kind="stable")
    half = len(rows) // 2
    if half < 2:
        return None
    first, second = rows.iloc[:half], rows.iloc[half:]
    try:
        scores = np.concatenate([fit(first, spec, None, LEARN_PARAMS).score(second),
                                 fit(second, spec, None, LEARN_PARAMS).score(first)])
    except ValueError:  # a half of one class
        return None
    return label_skill(_Halves(scores), pd.concat([second, first]), spec)


def collapsed(skill: Skill | None) -> bool:
    """Did the champion keep under a third of its expected skill (regression: under
    MAX_REGRESSION_SKILL), at the upper end of the interval?"""
    if skill is None:
        return False
    if skill.expected is None:
        return skill.high < MAX_REGRESSION_SKILL
    return skill.expected >= MIN_EXPECTED and skill.high < KEPT * skill.expected


def suspect_reason(skill: Skill | None, learnable: Skill | None, *,
                   drift_share: float | None, drifted: bool, max_drift_share: float,
                   source: str) -> str | None:
    """Why the batch's labels are suspect, in one line naming `source`; None if they are
    not (module docstring). `learnable` is `learnable_skill`, needed only when `skill`
    collapsed without turning negative (the caller may skip it otherwise)."""
    if not collapsed(skill) or drifted or (drift_share or 0.0) >= max_drift_share:
        return None
    drift = f"drift share {drift_share or 0.0:.2f}, no adversarial drift"
    if skill.high < 0:
        why = "worse than chance: flipped labels look like this"
    elif learnable is not None and learnable.high < MIN_EXPECTED:
        why = (f"and its own features do not predict them either ({learnable.name} "
               f"{learnable.value:+.2f}, a model fitted on each half of the batch): shifted "
               f"or another dataset's labels look like this")
    else:
        return None
    said = (f"the champion's estimates correlate {skill.value:+.2f} with them (95% upper "
            f"end {skill.high:+.2f})" if skill.expected is None else
            f"the champion agrees with them at kappa {skill.value:+.2f} (95% upper end "
            f"{skill.high:+.2f}) where its own probabilities expect {skill.expected:+.2f}")
    return (f"{source}: labels suspect ({said} on {skill.rows:,} labelled rows, while the "
            f"features barely moved: {drift}; {why}): held from training and gating until "
            f"released")
