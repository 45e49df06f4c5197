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
(tests/test_attribution.py): 200 rows keep a batch's cost near a third of a second. A
multiclass booster grows a tree per class each round: four classes cost ~4x (1.1-1.6 s a
batch of the ticket stream, 800 trees, on this loaded 2-core machine, 2026-12-08, `uv run
python benchmarks/attribution_cost.py --multiclass --repeats 5`).

Attribution drift compares the champion's mean |contribution| per feature on a batch with
the same on its reference (its training sample): a change in what the model relies on with
little change in the feature itself is a concept-drift hint.

Multiclass (K >= 3 classes): LightGBM gives one block of contributions per class, to that
class's raw score; in score space they are moved to the class probabilities by the same
rescale rule, the softmax in place of the sigmoid (`to_score_space`). `values` is then
rows x features x classes, and what the model relies on (`magnitude`, `mean_abs`,
explain's per-row change) is each feature's |contribution| summed over the classes: how far
it moves the whole probability vector. Not the predicted class's alone: a reader of "relies more on
wait_minutes" means the model, not whichever class happened to win the row; a prior drift
that changes which class wins would move a predicted-class measure with no change in the
model, and a challenger that sends a feature's rows to another class moves two columns,
both counted. It is also how SHAP sums a multiclass model's importance over classes.
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
PATH_NODES = 24  # Gauss-Legendre points of a multiclass row's way to probability space


def magnitude(values: np.ndarray) -> np.ndarray:
    """|contribution| per row and feature; multiclass (rows x features x classes): summed
    over the classes, how far the feature moves the whole probability vector (module
    docstring)."""
    found = np.abs(values)
    return found.sum(axis=2) if found.ndim == 3 else found


@dataclass(frozen=True)
class Contributions:
    """Per-row contributions (rows x features; multiclass: rows x features x classes) and
    the expected value each row starts from (rows; multiclass: rows x classes);
    `base + values.sum(axis=1)` is the model's score in `space` ("raw": the booster's
    margin; "score": probability or estimate, what the model's `score` returns)."""

    values: np.ndarray
    base: np.ndarray
    features: list[str]
    space: str

    def total(self) -> np.ndarray:
        """What the contributions add up to, per row (multiclass: per row and class)."""
        return self.base + self.values.sum(axis=1)

    def mean_abs(self, mask: np.ndarray | None = None) -> pd.Series:
        """Mean |contribution| per feature (over `mask`'s rows when given): how much the
        model leans on each feature, in the units of its score (`magnitude`)."""
        values = self.values if mask is None else self.values[mask]
        if not len(values):
            return pd.Series(np.nan, index=self.features, dtype=float)
        return pd.Series(magnitude(values).mean(axis=0), index=self.features, dtype=float)

    def frame(self) -> pd.DataFrame:
        """The contributions as columns named after the features (multiclass: one column
        per feature and class position, `feature[k]`)."""
        if self.values.ndim == 3:
            k = self.values.shape[2]
            return pd.DataFrame(self.values.reshape(len(self.values), -1),
                                columns=[f"{f}[{c}]" for f in self.features for c in range(k)])
        return pd.DataFrame(self.values, columns=self.features)


def _booster_contributions(model: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """One booster's margin contributions and expected value per row (TreeSHAP); for a
    multiclass booster, LightGBM's K blocks of (features + 1) columns, one per class, as
    rows x features x classes and rows x classes."""
    out = np.asarray(model.booster.predict(model.encode(frame), pred_contrib=True,
                                           num_threads=1))
    width = len(model.features) + 1
    k = out.shape[1] // width if out.ndim == 2 else 0
    if k < 1 or out.shape[1] != k * width or (k > 1) != bool(model.is_multiclass):
        raise ValueError(f"attribution: the booster gave "
                         f"{out.shape[1] if out.ndim == 2 else out.shape} contribution "
                         f"columns for {len(model.features)} features and "
                         f"{len(model.labels or []) or 1} output(s)")
    if k == 1:
        return out[:, :-1], out[:, -1]
    blocks = out.reshape(len(out), k, width)
    return blocks[:, :, :-1].transpose(0, 2, 1), blocks[:, :, -1]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _path_jacobian(base: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Per row, the softmax's Jacobian (diag(p) - p p') averaged along the straight way from
    the expected margins `base` to the row's `raw` (rows x classes each): Gauss-Legendre on
    PATH_NODES points, then a rank-one correction so that it maps the move exactly onto the
    probabilities' move (the quadrature's last ~1e-12 included)."""
    nodes, weights = np.polynomial.legendre.leggauss(PATH_NODES)
    move, eye = raw - base, np.eye(raw.shape[1])
    jac = np.zeros((*raw.shape, raw.shape[1]))
    for t, w in zip((nodes + 1) / 2, weights / 2, strict=True):
        p = _softmax(base + t * move)
        jac += w * (p[:, :, None] * eye - p[:, :, None] * p[:, None, :])
    residual = _softmax(raw) - _softmax(base) - np.einsum("nkj,nj->nk", jac, move)
    norm = (move ** 2).sum(axis=1)
    moved = norm > 1e-24
    jac[moved] += (residual[moved][:, :, None] * move[moved][:, None, :]
                   / norm[moved][:, None, None])
    return jac


def to_score_space(values: np.ndarray, base: np.ndarray, classifier: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Margin contributions moved to probability space by the rescale rule: each feature
    keeps its share of the move from the expected value; they add up to the probability.
    A regressor's margin is its score: unchanged.

    Multiclass (3-d `values`): the same rule with the softmax for the sigmoid. A feature's
    margin contributions (one per class) are mapped by the softmax's Jacobian averaged along
    the way from the expected margins to the row's (`_path_jacobian`); for a sigmoid that
    average is the secant slope, the binary rule exactly. They add up to each class's
    probability. Not each class's own ratio (p_k - p0_k) / (raw_k - base_k): a class whose
    margin barely moves while its probability moves with the others' divides by almost
    nothing (a feature then "contributed" 5 probability points a row on the ticket stream)."""
    if not classifier:
        return values, base
    if values.ndim == 3:
        raw = base + values.sum(axis=1)
        return (np.einsum("nkj,nfj->nfk", _path_jacobian(base, raw), values),
                _softmax(base))
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
        values: Any = 0.0
        base: Any = 0.0
        for member, weight in model.members:
            v, b = to_score_space(*_booster_contributions(member, frame), member.is_classifier)
            values, base = values + weight * v, base + weight * b
        return Contributions(np.asarray(values), np.asarray(base), features, "score")
    values, base = _booster_contributions(model, frame)
    if space == "score":
        values, base = to_score_space(values, base, model.is_classifier)
    return Contributions(values, base, features, space)


def raw_score(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """What `contributions(model, frame)` adds up to: a single booster's margin (one column
    per class for multiclass), an ensemble's score (the weighted mean of its members')."""
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
