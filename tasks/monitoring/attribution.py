"""Attribution: what the model relies on, per row and per feature (LightGBM's own TreeSHAP).

`booster.predict(X, pred_contrib=True)` gives each row's exact SHAP values, which add up
with the expected value to the booster's raw score (its margin: log-odds for a classifier,
the estimate for a regressor). No new dependency: the booster every version already carries.

An ensemble (GreenlightModel.ensemble) averages its members' *scores* (probabilities or
estimates), so its contributions are taken in that space: each member's margin
contributions are moved to score space by the rescale rule (every feature's share of the
margin's move from the expected value is its share of the score's move), then weighted
and summed. They add up to the ensemble's score per row, which is its raw score: the
ensemble has no margin of its own. `space="score"` asks the same of a single model, so
champion and challenger can be compared on one scale whatever each is.

Cost: TreeSHAP takes ~0.8 ms a row for 200 trees of 31 leaves on one thread here (a score
takes ~0.008 ms), so contributions are computed on a seeded sample of at most
`ATTRIBUTION_ROWS` rows (drift.sample_rows, as drift samples big and wide batches), split
between an ensemble's members. On 200 rows a feature's share moves by up to ~0.05 of the
total between weeks of the same world, where inflation moves price's by ~0.2
(tests/test_attribution.py): 200 rows keep a batch's cost near a third of a second.

Attribution drift compares the champion's mean |contribution| per feature on a batch with
the same on its reference (its training sample): a change in what the model relies on with
little change in the feature itself is a concept-drift hint.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.monitoring.drift import sample_rows

ATTRIBUTION_ROWS = 200  # rows a batch's contributions are computed on (split over members)
MIN_MEMBER_ROWS = 100  # an ensemble's members share the rows, but never fewer than this
SPACES = ("raw", "score")


@dataclass(frozen=True)
class Contributions:
    """Per-row contributions (rows x features) and the expected value each row starts from;
    `base + values.sum(axis=1)` is the model's score in `space` ("raw": the booster's
    margin; "score": probability or estimate, what the model's `score` returns)."""

    values: np.ndarray
    base: np.ndarray
    features: list[str]
    space: str

    def total(self) -> np.ndarray:
        """What the contributions add up to, per row."""
        return self.base + self.values.sum(axis=1)

    def mean_abs(self, mask: np.ndarray | None = None) -> pd.Series:
        """Mean |contribution| per feature (over `mask`'s rows when given): how much the
        model leans on each feature, in the units of its score."""
        values = self.values if mask is None else self.values[mask]
        if not len(values):
            return pd.Series(np.nan, index=self.features, dtype=float)
        return pd.Series(np.abs(values).mean(axis=0), index=self.features, dtype=float)

    def frame(self) -> pd.DataFrame:
        """The contributions as columns named after the features."""
        return pd.DataFrame(self.values, columns=self.features)


def _booster_contributions(model: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """One booster's margin contributions and expected value per row (TreeSHAP)."""
    out = np.asarray(model.booster.predict(model.encode(frame), pred_contrib=True,
                                           num_threads=1))
    if out.ndim != 2 or out.shape[1] != len(model.features) + 1:
        raise ValueError(f"attribution supports binary classification and regression: the "
                         f"booster gave {out.shape[1] if out.ndim == 2 else out.shape} "
                         f"contribution columns for {len(model.features)} features")
    return out[:, :-1], out[:, -1]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def to_score_space(values: np.ndarray, base: np.ndarray, classifier: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Margin contributions moved to probability space by the rescale rule: each feature
    keeps its share of the move from the expected value; they add up to the probability.
    A regressor's margin is its score: unchanged."""
    if not classifier:
        return values, base
    raw = base + values.sum(axis=1)
    p, p0 = _sigmoid(raw), _sigmoid(base)
    move = raw - base
    flat = np.abs(move) < 1e-12  # no move: the sigmoid's slope at the expected value
    slope = np.where(flat, p0 * (1 - p0), (p - p0) / np.where(flat, 1.0, move))
    return values * slope[:, None], p0


def contributions(model: Any, frame: pd.DataFrame, space: str = "raw") -> Contributions:
    """Per-row contributions of `model` (a GreenlightModel) on every row of `frame`.

    A single model in "raw" space: LightGBM's own, adding up to its raw score. An ensemble
    is always in "score" space (module docstring), as is a single model asked for it."""
    if space not in SPACES:
        raise ValueError(f"attribution space must be one of {SPACES}, not {space!r}")
    features = list(model.features)
    if model.members:
        values = np.zeros((len(frame), len(features)))
        base = np.zeros(len(frame))
        for member, weight in model.members:
            v, b = to_score_space(*_booster_contributions(member, frame), member.is_classifier)
            values += weight * v
            base += weight * b
        return Contributions(values, base, features, "score")
    values, base = _booster_contributions(model, frame)
    if space == "score":
        values, base = to_score_space(values, base, model.is_classifier)
    return Contributions(values, base, features, space)


def raw_score(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """What `contributions(model, frame)` adds up to: a single booster's margin, an
    ensemble's score (the weighted mean of its members' scores)."""
    if model.members:
        return np.asarray(model.score(frame))
    return np.asarray(model.booster.predict(model.encode(frame), raw_score=True, num_threads=1))


def sample_for(model: Any, frame: pd.DataFrame, max_rows: int = ATTRIBUTION_ROWS,
               seed: int = 0) -> pd.DataFrame:
    """The rows contributions are computed on: a seeded sample (drift.sample_rows) of at
    most `max_rows`, fewer for an ensemble (its members share the budget)."""
    members = max(1, len(model.members))
    return sample_rows(frame, max(MIN_MEMBER_ROWS, max_rows // members), seed)


def mean_abs(model: Any, frame: pd.DataFrame, max_rows: int = ATTRIBUTION_ROWS,
             space: str = "raw") -> pd.Series:
    """Mean |contribution| per feature on a sample of `frame` (`sample_for`)."""
    return contributions(model, sample_for(model, frame, max_rows), space).mean_abs()


# champion -> (its reference's content hash, its mean |contribution| there), as
# monitor.reference_scores: every batch of a cycle is compared with the same reference.
_REFERENCE: weakref.WeakKeyDictionary[Any, tuple[np.ndarray, pd.Series]] = (
    weakref.WeakKeyDictionary())


def reference_attribution(model: Any, reference: pd.DataFrame,
                          max_rows: int = ATTRIBUTION_ROWS) -> pd.Series:
    """The champion's mean |contribution| per feature on its own reference, once per
    champion and reference (keyed by the model, checked against the reference's hash)."""
    key = pd.util.hash_pandas_object(reference[model.features], index=False).to_numpy()
    cached = _REFERENCE.get(model)
    if cached is not None and np.array_equal(cached[0], key):
        return cached[1]
    found = mean_abs(model, reference, max_rows)
    _REFERENCE[model] = (key, found)
    return found


def attribution_shift(now: pd.Series, before: pd.Series) -> dict[str, float]:
    """Per feature, the change of its mean |contribution| from `before` to `now`, as a
    share of `before`'s total: scale-free (log-odds or estimate units cancel), and a
    feature the model barely used cannot blow up the way a ratio would. +0.20: the model
    now leans on it by a fifth of everything it relied on before."""
    total = float(before.sum())
    if not np.isfinite(total) or total <= 0:
        return {}
    return {f: float((now.get(f, 0.0) - before.get(f, 0.0)) / total) for f in before.index}


def largest_shift(shift: dict[str, float]) -> tuple[str, float] | None:
    """The feature whose reliance moved most, with its signed change; None for none."""
    if not shift:
        return None
    name = max(shift, key=lambda f: abs(shift[f]))
    return name, shift[name]


def batch_shift(model: Any, reference: pd.DataFrame, batch: pd.DataFrame,
                max_rows: int = ATTRIBUTION_ROWS) -> dict[str, float]:
    """Attribution drift of one batch: `attribution_shift` of the champion's mean
    |contribution| on the batch against its reference (sampled, cached)."""
    if not len(batch) or reference is None or not len(reference):
        return {}
    return attribution_shift(mean_abs(model, batch, max_rows),
                             reference_attribution(model, reference, max_rows))


def shift_words(shift: dict[str, float], top: int = 3) -> str:
    """`price +0.31, age -0.12`: the largest changes in what the model relies on."""
    ranked = sorted(shift.items(), key=lambda kv: -abs(kv[1]))[:top]
    return ", ".join(f"{f} {v:+.2f}" for f, v in ranked)
