"""Train a challenger on a time window of the lake with recency sample weights.

Time is respected: the gate window is the newest rows and is held out; training uses
only rows older than it, and weights decay with age so the model follows the present.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.training.model import GreenlightModel
from tasks.training.multiclass import class_codes, fit_booster

# One thread: batches are small (a fit takes ~0.15 s), and on a 2-core machine shared with a
# server or a second cycle, OpenMP's spin-waiting made a 2-thread fit take minutes.
LGBM_PARAMS = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31,
               "min_child_samples": 20, "random_state": 0, "n_jobs": 1, "verbose": -1}
# A leaf refit (`refit_leaves`) keeps this share of each leaf's old value: on the adaptation
# benchmark 0.6 did better than 0.3 and 0.9 on Elec2 (docs/benchmarks.md).
REFIT_DECAY = 0.6
MIN_REFIT_ROWS = 50  # fewer newest rows than this: the leaves are left as they were
# (half-life, days of newest rows its leaves are refitted on, or None): one fit of a backtest
Fit = tuple[float | None, float | None]


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    gate: pd.DataFrame


def gate_window_rows(batch_rows: int, fraction: float, min_rows: int,
                     max_fraction: float) -> int:
    """The gate window's size for a newest batch of `batch_rows` rows: `fraction` of it, or
    where that is under `min_rows` (Training.gate_window_min_rows, 100), as near `min_rows`
    as `max_fraction` of the batch allows.

    30% of a 100-row batch is 30 rows, where a 16% class has 5 rows or fewer and the gate
    cannot judge even a stale champion (tasks.gate.gate.class_floor): on the synthetic
    stream 4 of 15 retrains were "not enough evidence" at 30 rows, 1 at 50. Growing the
    window within the batch keeps it on rows no champion saw, and leaves the rest of the
    batch to train the challenger, so it still learned from rows newer than the champion's.
    It grows only toward what judges, not to the 200 rows that prove a gain: at 365 rows a
    window of 182 did no better than 109 (docs/benchmarks.md, on any cadence), and each row
    it takes is one fewer in the challenger's training rows and the backtest's folds."""
    share = int(fraction * batch_rows)
    return max(share, min(min_rows, int(max(fraction, max_fraction) * batch_rows)))


def split_gate_window(frame: pd.DataFrame, spec: DatasetSpec, gate_rows: int,
                      window_days: float | None) -> Split:
    """Hold out the newest `gate_rows` rows; train on what came before, within the window."""
    # The lake is read in time order, so the sort (a copy of all history) is usually skipped.
    times = frame[spec.time_column]
    ordered = frame if times.is_monotonic_increasing else frame.sort_values(spec.time_column,
                                                                          kind="stable")
    ordered = ordered.reset_index(drop=True)
    gate_rows = min(gate_rows, len(ordered) // 2)
    gate = ordered.iloc[len(ordered) - gate_rows:]
    train = ordered.iloc[: len(ordered) - gate_rows]
    if window_days is not None and len(train):
        start = train[spec.time_column].max() - pd.Timedelta(days=window_days)
        train = train[train[spec.time_column] > start]
    return Split(train.reset_index(drop=True), gate.reset_index(drop=True))


def recency_weights(times: pd.Series, half_life_days: float | None) -> np.ndarray:
    """`0.5 ** (age / half_life)`, age in days from the newest training row."""
    if not half_life_days:
        return np.ones(len(times))
    age_days = (times.max() - times).dt.total_seconds().to_numpy() / 86400.0
    return np.power(0.5, age_days / half_life_days)


def binary_target(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """1 where the label is the positive class: the one encoding every metric agrees on.

    A label column with gaps (late labels) is float: 1.0 must still match positive class 1."""
    y = frame[spec.target]
    if pd.api.types.is_float_dtype(y) and bool((y.dropna() % 1 == 0).all()):
        y = y.astype("Int64")
    return (y.astype(str) == str(spec.positive_class)).to_numpy(dtype=int)


# (task, params, X, y, sample weights, categorical features) -> fitted sklearn-API estimator
Fitter = Callable[[str, dict, pd.DataFrame, np.ndarray, np.ndarray, Any], Any]


def local_fit(task: str, params: dict, X: pd.DataFrame, y: np.ndarray, weights: np.ndarray,
              categorical: Any) -> Any:
    """LightGBM in this process: the default below the Dask threshold."""
    cls = lgb.LGBMClassifier if task == "classification" else lgb.LGBMRegressor
    return cls(**params).fit(X, y, sample_weight=weights, categorical_feature=categorical)


def _encoded(train: pd.DataFrame, spec: DatasetSpec) -> tuple[GreenlightModel, np.ndarray]:
    """A model with its categories fixed from `train` (no estimator yet), and the labels."""
    categories = {c: sorted(train[c].dropna().unique().tolist()) for c in spec.categorical_features}
    if spec.task == "multiclass":  # probabilities in the spec's class order, always
        return GreenlightModel(None, spec, categories, list(spec.classes or [])), \
            class_codes(train, spec)
    if spec.task == "classification":
        y = binary_target(train, spec)
        values = train[spec.target].dropna().unique().tolist()
        negative = next((v for v in values if str(v) != str(spec.positive_class)), "other")
        positive = next((v for v in values if str(v) == str(spec.positive_class)),
                        spec.positive_class)
        labels = [negative, positive]
    else:
        y = train[spec.target].to_numpy(dtype=float)
        labels = None
    return GreenlightModel(None, spec, categories, labels), y


def fit(train: pd.DataFrame, spec: DatasetSpec, half_life_days: float | None,
        params: dict | None = None, fitter: Fitter | None = None,
        refit_days: float | None = None) -> GreenlightModel:
    """Fit LightGBM on the training rows; categories are fixed from the training data.

    `params` overrides LGBM_PARAMS: the recipe backtest fits many small models, and
    benchmarks match a baseline's settings. `fitter` runs the fit elsewhere (Dask, see
    tasks/scale/distributed.py) on exactly the same encoded rows, labels and weights.
    `refit_days`: then the leaves are refitted on the newest rows (`refit_leaves`)."""
    params = {**LGBM_PARAMS, **(params or {})}
    model, y = _encoded(train, spec)
    weights = recency_weights(train[spec.time_column], half_life_days)
    X, categorical = model.encode(train), list(model.categories) or "auto"
    if spec.task == "multiclass":  # in this process (tasks/training/multiclass.py)
        model._booster = fit_booster(params, X, y, weights, categorical, len(model.labels))
        X, y, train = X[y >= 0], y[y >= 0], train[y >= 0]  # an unknown label refits nothing
    else:
        model.estimator = (fitter or local_fit)(spec.task, params, X, y, weights, categorical)
    if refit_days is not None:
        model._booster = refit_leaves(model.booster, X, y, train[spec.time_column],
                                      refit_days)
    return model


def refit_leaves(booster: lgb.Booster, X: pd.DataFrame, y: np.ndarray, times: pd.Series,
                 days: float) -> lgb.Booster:
    """The booster with its leaf values re-estimated on the rows of the newest `days` days
    (`Booster.refit`, keeping REFIT_DECAY of each old value): still one booster.

    A long memory learns the shape (which features matter, where they split) from many
    rows; the newest rows then set what each leaf says now. On Elec2 it lifts every memory
    longer than a month, on Bike Sharing it makes each worse; an ensemble holding each
    recipe with and without it (Training.leaf_refit) lets the backtest weigh them, which
    beat the best fixed memory on Elec2 (docs/benchmarks.md). Too few newest rows: the
    booster unchanged."""
    newest = (times > times.max() - pd.Timedelta(days=days)).to_numpy()
    if newest.sum() < MIN_REFIT_ROWS:
        return booster
    # num_threads for refit's own prediction of the leaves: LightGBM's default thread count
    # is process-wide, and a backtest thread fitting meanwhile made that predict crash.
    # No categorical_feature: the trees keep their splits (the leaves come from predicting
    # with them), and LightGBM 4 refuses any list that differs from the booster's params,
    # which hold none, so every dataset with a categorical feature failed here.
    return booster.refit(X[newest], y[newest], decay_rate=REFIT_DECAY, num_threads=1)


def with_refit_leaves(model: GreenlightModel, train: pd.DataFrame, spec: DatasetSpec,
                      days: float) -> GreenlightModel:
    """A copy of `model`, fitted on `train`, with its leaves refitted on the newest `days`
    days: what `fit(train, ..., refit_days=days)` returns, without fitting the trees again.

    An ensemble with leaf refits holds most recipes twice, plain and refitted; the twin
    reuses the plain member's trees, which halves the ensemble's fits."""
    twin = copy.copy(model)
    _, y = _encoded(train, spec)
    if spec.task == "multiclass":  # an unknown label (-1) refits nothing
        train, y = train[y >= 0], y[y >= 0]
    twin._booster = refit_leaves(model.booster, model.encode(train), y,
                                 train[spec.time_column], days)
    return twin


def _booster_params(task: str, params: dict) -> dict | None:
    """The parameters LightGBM's sklearn estimator hands to `lightgbm.train` for `params`,
    or None if this LightGBM does not say (then `fit_scores` fits through sklearn)."""
    cls = lgb.LGBMClassifier if task == "classification" else lgb.LGBMRegressor
    process = getattr(cls(**params), "_process_params", None)
    return process(stage="fit") if process is not None else None


def fit_scores(train: pd.DataFrame, score_on: pd.DataFrame, spec: DatasetSpec,
               half_lives: list[float | None], params: dict | None = None
               ) -> dict[float | None, np.ndarray]:
    """`fit(train, spec, h, params).score(score_on)` for each half-life h, bit for bit, with
    the rows encoded and binned once.

    The recipe backtest fits up to six half-lives on the same rows of a fold. LightGBM bins
    a Dataset's features without looking at the weights, so one constructed Dataset serves
    every fit, its weights swapped in between (weights of all ones are no weights, as the
    sklearn estimator passes them). Labels of one class only go through `fit`: the sklearn
    estimator relabels those."""
    model, y = _encoded(train, spec)
    scores = _shared_fits(model.encode(train), y, train[spec.time_column],
                          lambda: model.encode(score_on), list(model.categories), spec,
                          [(h, None) for h in half_lives], params,
                          lambda f: fit(train, spec, f[0], params).score(score_on))
    return {h: scores[h, None] for h in half_lives}


def _shared_fits(X: pd.DataFrame, y: np.ndarray, times: pd.Series,
                 X_score: Callable[[], pd.DataFrame], categorical: list[str],
                 spec: DatasetSpec, fits: list[Fit], params: dict | None,
                 separate: Callable[[Fit], np.ndarray]) -> dict[Fit, np.ndarray]:
    """`fit_scores` on rows already encoded as `fit` encodes them, for each (half-life,
    leaf refit days): a leaf refit reuses its half-life's booster. `separate(f)` is the
    separate fit and score, for what one shared Dataset cannot do."""
    params = {**LGBM_PARAMS, **(params or {})}
    booster_params = None if spec.task == "multiclass" else _booster_params(spec.task, params)
    if booster_params is None or (spec.task == "classification" and len(np.unique(y)) < 2):
        return {f: separate(f) for f in fits}
    half_lives = [h for h, _ in fits]
    by_weights: dict[float | None, np.ndarray | None] = {}
    for h in dict.fromkeys(half_lives):
        w = recency_weights(times, h)
        by_weights[h] = None if np.all(w == 1) else w
    # Unweighted fits first: a constructed Dataset's weights can be replaced, not removed.
    order = sorted(by_weights, key=lambda h: by_weights[h] is not None)
    data = lgb.Dataset(X, label=y, weight=by_weights[order[0]], params=booster_params,
                       categorical_feature=categorical or "auto")
    scored = X_score()
    out = {}
    for i, h in enumerate(order):
        if i:
            data.set_weight(by_weights[h])
        booster = lgb.train(booster_params, data, num_boost_round=params["n_estimators"],
                            keep_training_booster=True)
        for days in dict.fromkeys(d for g, d in fits if g == h):
            refitted = booster if days is None else refit_leaves(booster, X, y, times, days)
            out[h, days] = refitted.predict(scored, num_threads=1)
    return {f: out[f] for f in fits}


@dataclass(frozen=True)
class EncodedRows:
    """Rows encoded once, for many fits on subsets of them (the recipe backtest's folds):
    encoding and labelling every fold's rows again cost ~10% of the backtest.

    Categorical codes here are over the values of every row; `fit` numbers the values of
    its own training rows, so `range_scores` renumbers them per subset (same order, since
    both are sorted), giving the frame `fit` would encode, bit for bit."""

    frame: pd.DataFrame
    X: pd.DataFrame
    y: np.ndarray | None  # None: the labels of a subset are not a slice of these (below)
    categories: dict[str, list[Any]]


def encode_rows(frame: pd.DataFrame, spec: DatasetSpec) -> EncodedRows:
    """`frame` (index 0..n-1) encoded once for `range_scores`."""
    model, y = _encoded(frame, spec)
    target = frame[spec.target]
    # A float label column with a fractional value is not cast to integers whole, but a
    # subset without one would be (binary_target): there, label each subset itself.
    sliceable = not (spec.task == "classification" and pd.api.types.is_float_dtype(target)
                     and not bool((target.dropna() % 1 == 0).all()))
    return EncodedRows(frame, model.encode(frame), y if sliceable else None, model.categories)


def _renumbered(rows: EncodedRows, train: np.ndarray, score: np.ndarray
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The features of two subsets with category codes over the values in `train` only
    (-1 for a value it lacks, as `GreenlightModel.encode` gives)."""
    X, X_score = rows.X.iloc[train].copy(), rows.X.iloc[score].copy()
    for col, cats in rows.categories.items():
        codes = rows.X[col].to_numpy()
        seen = np.zeros(len(cats) + 1, dtype=bool)
        seen[codes[train] + 1] = True
        seen[0] = False  # -1 (missing) stays -1
        lookup = np.full(len(cats) + 1, -1, dtype="int32")
        lookup[seen] = np.arange(int(seen.sum()), dtype="int32")
        X[col], X_score[col] = lookup[codes[train] + 1], lookup[codes[score] + 1]
    return X, X_score


def range_scores(rows: EncodedRows, train: np.ndarray, score: np.ndarray, spec: DatasetSpec,
                 fits: list[Fit], params: dict | None = None) -> dict[Fit, np.ndarray]:
    """`fit(frame.iloc[train], spec, h, params, refit_days=d).score(frame.iloc[score])` for
    each (h, d) of `fits`, bit for bit, from rows encoded once (`train` and `score` are row
    positions, in time order)."""
    X, X_score = _renumbered(rows, train, score)
    part = rows.frame.iloc[train]
    y = rows.y[train] if rows.y is not None else binary_target(part, spec)
    return _shared_fits(X, y, part[spec.time_column], lambda: X_score, list(rows.categories),
                        spec, fits, params,
                        lambda f: fit(part, spec, f[0], params, refit_days=f[1]).score(
                            rows.frame.iloc[score]))


def reference_sample(train: pd.DataFrame, spec: DatasetSpec, batch_column: str,
                     min_rows: int, max_rows: int = 20_000) -> pd.DataFrame:
    """The newest batch the model trained on: what it takes as "now".

    A longer reference would mix regimes the model has already moved past, and every
    batch after a change would keep looking drifted. At least `min_rows` (Evidently uses
    distance measures from 1000 reference rows on, p-value tests below)."""
    ordered = train.sort_values(spec.time_column, kind="stable")
    newest = ordered[ordered[batch_column] == ordered[batch_column].iloc[-1]]
    rows = min(max(len(newest), min_rows), max_rows)
    return ordered.iloc[-rows:][spec.columns].reset_index(drop=True)


@dataclass
class Challenger:
    model: GreenlightModel
    split: Split
    reference: pd.DataFrame
    params: dict
    batch_set: str
    data_hash: str


def train_challenger(history: pd.DataFrame, spec: DatasetSpec, *, gate_rows: int,
                     half_life_days: float | None, window_days: float | None,
                     reference_rows: int, batch_column: str,
                     fitter: Fitter | None = None, lgbm: dict | None = None,
                     refit_days: float | None = None,
                     base: Challenger | None = None,
                     model: GreenlightModel | None = None) -> Challenger:
    """Split off the gate window, fit on the older rows, and keep the reference sample.

    `lgbm` overrides LGBM_PARAMS (a benchmark matching a baseline's settings); `refit_days`
    refits the leaves on the newest rows before the gate window (`refit_leaves`), of
    `base`'s trees when given (the same recipe without the refit, `with_refit_leaves`).
    `model` is the fit when the caller already has it (another recipe's, on the same rows
    with the same half-life). `batch_set` hashes the batches and recipe, so the same data
    never registers twice."""
    split = split_gate_window(history, spec, gate_rows, window_days)
    if model is None and base is not None and refit_days is not None:
        model = with_refit_leaves(base.model, split.train, spec, refit_days)
    if model is None:
        model = fit(split.train, spec, half_life_days, lgbm, fitter=fitter,
                    refit_days=refit_days)
    batches = sorted(history[batch_column].unique().tolist())
    params = {"half_life_days": half_life_days, "window_days": window_days,
              "refit_days": refit_days, "train_rows": len(split.train),
              "gate_rows": len(split.gate),
              "train_start": str(split.train[spec.time_column].min()),
              "train_end": str(split.train[spec.time_column].max()),
              "gate_start": str(split.gate[spec.time_column].min()),
              "gate_end": str(split.gate[spec.time_column].max()), "refit": False,
              "trained_until": str(split.train[spec.time_column].max()), **LGBM_PARAMS,
              **(lgbm or {}),
              "engine": getattr(fitter, "engine", "lightgbm")}
    # Batch ids are content hashes, so this hashes the data; the batch set adds the recipe.
    data_hash = hashlib.sha256(",".join(batches).encode()).hexdigest()[:16]
    recipe = f"{data_hash}|{half_life_days}|{window_days}|{gate_rows}" + (
        f"|refit {refit_days}" if refit_days is not None else "")
    reference = reference_sample(split.train, spec, batch_column, reference_rows)
    return Challenger(model, split, reference, params,
                      hashlib.sha256(recipe.encode()).hexdigest()[:16], data_hash)


def ensemble_challenger(members: list[Challenger], weights: list[float]) -> Challenger:
    """One challenger from challengers of several recipes trained on the same history and
    gate window: its model scores the weighted mean (`GreenlightModel.ensemble`), so the
    gate, the registry and serving take it as any other.

    It trained on every row some member trained on (the longest memory's split and
    reference); `members` in its params lists each member's recipe and weight, and the batch
    set hashes them, so a different ensemble of the same data is a different version."""
    if len(members) == 1:
        return members[0]
    widest = max(members, key=lambda c: len(c.split.train))
    model = GreenlightModel.ensemble([c.model for c in members], weights)
    described = [{"half_life_days": c.params["half_life_days"],
                  "window_days": c.params["window_days"],
                  **({"refit_days": c.params["refit_days"]} if c.params.get("refit_days")
                     else {}), "weight": round(w / sum(weights), 4)}
                 for c, w in zip(members, weights, strict=True)]
    params = {**widest.params, "half_life_days": None, "window_days": None,
              "members": described,
              "train_start": min(c.params["train_start"] for c in members),
              "trained_until": max(c.params["trained_until"] for c in members),
              "refit": all(c.params.get("refit") for c in members)}
    key = "|".join([widest.data_hash, *(f"{d['half_life_days']}/{d['window_days']}/"
                                        + (f"{d['refit_days']}/" if "refit_days" in d else "")
                                        + f"{d['weight']}" for d in described)])
    return Challenger(model, widest.split, widest.reference, params,
                      hashlib.sha256(key.encode()).hexdigest()[:16], widest.data_hash)
