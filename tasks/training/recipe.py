"""Choose the training recipe (recency half-life or sliding window) by rolling-origin backtest.

No fixed memory wins everywhere: a 60-day half-life is best on Elec2 and far worse than a
3-month window on Bike Sharing, whose demand doubles in a year. So each retrain replays
the recent past: for each of the newest `folds` windows of the data it is given, every
candidate is fitted on the rows before the window and scored on it, and the best mean
primary metric wins. The caller passes only rows older than the gate window, so the
recipe is never chosen on the rows that then judge the challenger. By default
(flows.params.Training: recipe_mode ensemble, leaf_refit, six folds) the flow weighs the
complete grid, each recipe also with its leaves refitted, by softmax of the folds' loss
(`ensemble_weights`): the only variant that beat the best fixed strategy through the flow
(docs/benchmarks.md). Its members may be light (`light_params`, Training.member_trees).
recipe_mode best takes the best recipe alone.

The backtest fits many models, so it uses BACKTEST_PARAMS: 50 trees at learning rate 0.2
(the same total shrinkage as 200 at 0.05) on one thread, about 15x cheaper per fit. It
ranks recipes; the challenger itself is then fitted with the full settings. The fits are
shared where they coincide and run two at a time (`_backtest`), which changes no score.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.gate.gate import sanity_checks
from tasks.training.backtest import (
    BACKTEST_PARAMS,
    MAX_BACKTEST_ROWS,
    MIN_TRAIN_ROWS,
    _backtest,
    _fold_bounds,
    _thin,
)
from tasks.training.model import GreenlightModel
from tasks.training.train import (
    LGBM_PARAMS,
    Challenger,
    Fit,
    fit,
    reference_sample,
    split_gate_window,
    with_refit_leaves,
)

LIGHT_SHARE = 4  # a light ensemble member: 1/4 of the trees at 4x the learning rate


@dataclass(frozen=True)
class Recipe:
    """How much of the past a model learns from: a recency half-life, a sliding window,
    both, or neither (expanding, equal weights); and whether its leaves are then refitted
    on the newest `refit_days` days (tasks.training.train.refit_leaves)."""

    half_life_days: float | None = None
    window_days: float | None = None
    refit_days: float | None = None

    @property
    def name(self) -> str:
        parts = []
        if self.window_days is not None:
            parts.append(f"sliding {self.window_days:g}d")
        if self.half_life_days is not None:
            parts.append(f"half-life {self.half_life_days:g}d")
        name = ", ".join(parts) or "expanding"
        return name + (f", leaves refit on {self.refit_days:g}d"
                       if self.refit_days is not None else "")

    def fit(self) -> Fit:
        """What a backtest fits on the rows the recipe keeps: (half-life, leaf refit days)."""
        return self.half_life_days, self.refit_days

    @property
    def memory_days(self) -> float:
        """Mean age of the training weight for a long history: breaks ties towards the
        longer (steadier) memory."""
        memory = math.inf
        if self.half_life_days is not None:
            memory = self.half_life_days / math.log(2)
        if self.window_days is not None:
            memory = min(memory, self.window_days / 2)
        return memory


# The grid for monthly batches: half-lives of about 1/2, 1, 2, 3 and 6 batches, windows of
# 1, 3 and 6, and expanding. Coarser batches scale it (`grid_for`).
CANDIDATES: tuple[Recipe, ...] = (
    Recipe(), Recipe(180), Recipe(90), Recipe(60), Recipe(30), Recipe(14),
    Recipe(None, 180), Recipe(None, 90), Recipe(None, 30),
)
MONTH_DAYS = 365.25 / 12


def batch_months(history: pd.DataFrame, spec: DatasetSpec, batch_column: str | None) -> int:
    """How many whole months a batch spans: the median over the history's batches of the
    time from a batch's first row to its last, in months, rounded, at least 1.

    The data's own cadence, not a setting: a user who lands a year a batch gets a grid on
    the scale of years without being asked. The median ignores an odd short batch (a
    harvest of served predictions, the last part of a replay)."""
    if not batch_column or batch_column not in history.columns or not len(history):
        return 1
    times = history.groupby(batch_column, sort=False)[spec.time_column].agg(["min", "max"])
    days = (times["max"] - times["min"]).dt.total_seconds().median() / 86400.0
    return max(1, round(float(days) / MONTH_DAYS)) if math.isfinite(days) else 1


def grid_for(months: int) -> tuple[Recipe, ...]:
    """CANDIDATES in units of `months` months a batch: the same multiples of a batch.

    With yearly batches the fixed grid stopped at 180 days, under one batch, so every
    window held less than the newest batch and the backtest chose expanding 36 times of 38
    ("Your own data"). Monthly and finer cadences keep CANDIDATES exactly: weekly batches
    already get 2 to 26 batches of memory from it, and their verdicts stay as they were."""
    if months <= 1:
        return CANDIDATES
    return tuple(Recipe(None if r.half_life_days is None else r.half_life_days * months,
                        None if r.window_days is None else r.window_days * months)
                 for r in CANDIDATES)


# The complete fixed grid in batches (the adaptation benchmark's, issue 20): sliding windows
# of 1, 3, 6 and 12 batches and half-lives of 1/2 to 8 batches, beside expanding.
WINDOW_BATCHES = (1, 3, 6, 12)
HALF_LIFE_BATCHES = (0.5, 1, 2, 4, 8)


def batch_days(history: pd.DataFrame, spec: DatasetSpec, batch_column: str | None) -> float:
    """How long a batch is, in days: the median time between the starts of consecutive
    batches (a month is MONTH_DAYS however long the calendar month), MONTH_DAYS when the
    history cannot say.

    The grid of an ensemble is in batches, so its recipes mean the same on weekly and
    yearly data without a setting."""
    if not batch_column or batch_column not in history.columns or not len(history):
        return MONTH_DAYS
    starts = history.groupby(batch_column, sort=False)[spec.time_column].min().sort_values()
    if len(starts) < 2:
        return MONTH_DAYS
    days = float(starts.diff().dt.total_seconds().median()) / 86400.0
    if not math.isfinite(days) or days <= 0:
        return MONTH_DAYS
    return round(days / MONTH_DAYS) * MONTH_DAYS if days >= 27 else days


def batch_grid(days: float) -> tuple[Recipe, ...]:
    """The complete fixed grid for batches of `days` days: expanding, the sliding windows of
    WINDOW_BATCHES batches and the half-lives of HALF_LIFE_BATCHES batches."""
    return (Recipe(), *(Recipe(None, round(k * days, 2)) for k in WINDOW_BATCHES),
            *(Recipe(round(k * days, 2)) for k in HALF_LIFE_BATCHES))


@dataclass
class RecipeChoice:
    best: Recipe
    table: pd.DataFrame  # one row per candidate: a score per fold, then the mean
    metric: str
    folds: list[dict] = field(default_factory=list)  # each fold's time bounds and rows
    reason: str = ""
    seconds: float = 0.0
    weights: dict[Recipe, float] = field(default_factory=dict)  # an ensemble's members

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for run params and version tags."""
        table = self.table.astype(object).where(self.table.notna(), None)
        return {"recipe": self.best.name, **asdict(self.best), "metric": self.metric,
                "reason": self.reason, "seconds": round(self.seconds, 3), "folds": self.folds,
                "table": table.to_dict(orient="records"),
                "weights": {r.name: round(w, 4) for r, w in self.weights.items()}}

    def member_weights(self) -> dict[str, float]:
        """An ensemble's members by recipe name with their weights; {} for one recipe."""
        return {r.name: round(w, 4) for r, w in self.weights.items()}

    def backtest_means(self) -> dict[str, float | None]:
        """Each candidate's mean backtest score by recipe name (None: not scored); {}
        without a backtest (a fixed recipe, too few rows)."""
        if self.table.empty or "mean" not in self.table:
            return {}
        return {name: None if pd.isna(m) else round(float(m), 5)
                for name, m in zip(self.table["recipe"], self.table["mean"], strict=True)}


def light_params(params: dict | None) -> dict:
    """LightGBM settings for a light ensemble member (Training.member_trees): a
    LIGHT_SHARE-th of the trees at LIGHT_SHARE times the learning rate, the same total
    shrinkage, as the backtest's BACKTEST_PARAMS.

    An ensemble averages ten or more members, so each member's last bit of accuracy is
    mostly averaged away while its cost is paid in every retrain and in every score the
    champion gives (monitoring's attribution above all). By default (light_refit) the
    members the gate and the history guard judge are full and the refit, the version
    served, is light: on the adaptation matrix it scored as full members within noise on
    every cell, at about 0.7x the demo's CPU (docs/benchmarks.md, what a retrain costs).
    Light members before the gate too made the history guard miss a challenger that
    learned flipped labels."""
    merged = {**LGBM_PARAMS, **(params or {})}
    return {**(params or {}),
            "n_estimators": max(1, int(merged["n_estimators"]) // LIGHT_SHARE),
            "learning_rate": min(1.0, float(merged["learning_rate"]) * LIGHT_SHARE)}


def _loss(mean: float, spec: DatasetSpec) -> float:
    """A backtest score as a loss, lower better: the error itself, or 1 - a score bounded
    by 1 (accuracy, F1, AUC), so that a temperature relative to it means the same."""
    return 1.0 - mean if spec.higher_is_better else mean


def ensemble_weights(choice: RecipeChoice, spec: DatasetSpec, *, tau: float = 0.05,
                     min_weight: float = 0.01) -> dict[Recipe, float]:
    """Softmax weights of the backtested recipes, exp(-loss / (tau * best loss)), from the
    backtest table only: never from the gate window, which then judges the ensemble.

    A temperature relative to the best loss is scale-free (accuracy points and bike counts
    alike): a recipe 5% worse than the best gets e^-1 of its weight at tau 0.05. Weights
    under `min_weight` are dropped (a member costs a fit and a booster for nothing) and the
    rest renormalised. No table (too few rows): the chosen recipe alone."""
    table = choice.table
    if table.empty or "mean" not in table:
        return {choice.best: 1.0}
    scored = table[table["mean"].notna()]
    if scored.empty:
        return {choice.best: 1.0}
    losses = np.array([_loss(float(m), spec) for m in scored["mean"]])
    scale = max(tau * float(losses.min()), 1e-12)
    raw = np.exp(-(losses - losses.min()) / scale)
    raw = raw / raw.sum()
    refits = scored["refit_days"] if "refit_days" in scored else [None] * len(scored)
    recipes = [Recipe(_none(h), _none(w), _none(d)) for h, w, d in
               zip(scored["half_life_days"], scored["window_days"], refits, strict=True)]
    kept = {r: float(w) for r, w in zip(recipes, raw, strict=True) if w >= min_weight}
    total = sum(kept.values())
    return dict(sorted(((r, w / total) for r, w in kept.items()), key=lambda rw: -rw[1]))


def _none(value: Any) -> float | None:
    """A table cell as a recipe field: NaN and None are "not set"."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)


def fit_recipe(rows: pd.DataFrame, spec: DatasetSpec, recipe: Recipe,
               params: dict | None = None) -> GreenlightModel:
    """Fit on every row the recipe keeps: after the gate passes, refitting the recipe with
    the gate window included gives the promoted model the newest rows too (the gate judged
    the recipe on rows the gated model never saw)."""
    return fit(recipe_rows(rows, spec, recipe), spec, recipe.half_life_days, params,
               refit_days=recipe.refit_days)


def recipe_rows(rows: pd.DataFrame, spec: DatasetSpec, recipe: Recipe) -> pd.DataFrame:
    """The rows a recipe learns from: all of them, or its sliding window up to the newest."""
    if recipe.window_days is None or not len(rows):
        return rows
    newest = rows[spec.time_column].max()
    return rows[rows[spec.time_column] > newest - pd.Timedelta(days=recipe.window_days)]


def refit_challenger(challenger: Challenger, history: pd.DataFrame, spec: DatasetSpec,
                     recipe: Recipe, champion: GreenlightModel | None, *, reference_rows: int,
                     batch_column: str, lgbm: dict | None = None,
                     model: GreenlightModel | None = None,
                     base: Challenger | None = None) -> tuple[Challenger, list[str]]:
    """The gated challenger's recipe refitted on every labelled row, gate window included.

    The gate judged the recipe on rows its model never saw; serving that model would then
    leave the newest rows (the most telling, under drift) out until the next retrain. On the
    adaptation benchmark the refit gained 1 point of Elec2 accuracy and 2 of Bike MAE. The
    refit must pass the same sanity checks; if it does not, the gated model is kept and the
    problems are returned. Params record what the served model learned from; `lgbm`
    overrides LightGBM's settings, as in `fit`; `model` is that fit when the caller already
    has it (the benchmark shares it with the fixed strategy of the same recipe). A leaf
    refit recipe with `base`, the refit of its plain recipe, reuses that one's trees."""
    if model is None and base is not None and recipe.refit_days is not None:
        model = with_refit_leaves(base.model, recipe_rows(history, spec, recipe), spec,
                                  recipe.refit_days)
    model = model or fit_recipe(history, spec, recipe, lgbm)
    problems = sanity_checks(model, champion, model.score(challenger.split.gate), spec)
    if problems:
        return challenger, problems
    rows = recipe_rows(history, spec, recipe)
    # the settings the refit fitted with: a light refit's member differs from the gated one
    trees = {k: v for k, v in (lgbm or {}).items() if k in ("n_estimators", "learning_rate")}
    params = {**challenger.params, "refit": True, "refit_rows": len(rows),
              "trained_until": str(rows[spec.time_column].max()), **trees}
    reference = reference_sample(rows, spec, batch_column, reference_rows)
    return replace(challenger, model=model, params=params, reference=reference), []


def choose_recipe(train: pd.DataFrame, spec: DatasetSpec, *,
                  candidates: tuple[Recipe, ...] = CANDIDATES, folds: int = 3,
                  fold_rows: int | None = None, seed: int = 0, params: dict | None = None,
                  before: pd.Timestamp | None = None,
                  max_rows: int = MAX_BACKTEST_ROWS) -> RecipeChoice:
    """Backtest each candidate on the newest `folds` windows of `train` and pick the best.

    `fold_rows` None uses len(train) // (2 * folds), so the backtest spans the newer half;
    pass the size of a batch to make each fold one deployment period. `before` drops rows
    at or after it, for callers holding the whole history. With too little data for the
    folds, the spec's default recipe is returned. Above `max_rows` rows the folds are fitted
    and scored on a seeded sample (`_thin`); `folds` still records each window's full rows."""
    began = time.perf_counter()
    tcol, metric = spec.time_column, spec.primary_metric
    data = train[train[spec.target].notna()]
    if before is not None:
        data = data[data[tcol] < before]
    data = data.sort_values(tcol, kind="stable").reset_index(drop=True)
    fold_rows = fold_rows or len(data) // (2 * folds)
    default = Recipe(spec.training.half_life_days, spec.training.window_days)
    if fold_rows < MIN_TRAIN_ROWS or len(data) < (folds + 1) * fold_rows:
        return RecipeChoice(default, pd.DataFrame(), metric, reason=(
            f"spec default: {len(data)} rows are too few for {folds} folds of {fold_rows}"),
            seconds=time.perf_counter() - began)
    settings = {**BACKTEST_PARAMS, "random_state": seed, **(params or {})}
    bounds = _fold_bounds(len(data), folds, fold_rows)
    fold_info = [{"fold": i + 1, "start": str(data[tcol].iloc[a]),
                  "end": str(data[tcol].iloc[b - 1]), "train_end": str(data[tcol].iloc[a - 1]),
                  "rows": b - a} for i, (a, b) in enumerate(bounds)]
    total = len(data)
    data, bounds = _thin(data, bounds, max_rows, seed)
    scores = _backtest(data, spec, candidates, bounds, settings)
    table = pd.DataFrame([{"recipe": r.name, "half_life_days": r.half_life_days,
                           "window_days": r.window_days, "refit_days": r.refit_days,
                           **{f"fold_{i + 1}": s for i, s in enumerate(row)}} for r, row in
                          scores.items()])
    table["mean"] = table[[f"fold_{i + 1}" for i in range(folds)]].mean(axis=1, skipna=False)
    sign = 1 if spec.higher_is_better else -1
    ranked = sorted((r for r in candidates if not math.isnan(_mean(scores[r]))),
                    key=lambda r: (sign * _mean(scores[r]), r.memory_days), reverse=True)
    best = ranked[0] if ranked else default
    sampled = f", on a seeded sample of {len(data)} of {total} rows" if len(data) < total else ""
    reason = (f"{best.name}: best mean {metric} {_mean(scores[best]):.4f} over {folds} folds "
              f"of {fold_rows} rows{sampled}" if ranked
              else "spec default: no candidate could be scored")
    return RecipeChoice(best, table, metric, fold_info, reason, time.perf_counter() - began)


def candidates_for(spec: DatasetSpec, months: int = 1) -> tuple[Recipe, ...]:
    """The grid for batches of `months` months plus the spec's own recipe, which may be
    tuned to its batch length."""
    grid = grid_for(months)
    default = Recipe(spec.training.half_life_days, spec.training.window_days)
    return grid if default in grid else (*grid, default)


def with_leaf_refits(candidates: tuple[Recipe, ...], days: float) -> tuple[Recipe, ...]:
    """The candidates, then each again with its leaves refitted on the newest `days` days
    (one batch): a long memory's shape with the newest batch's leaf values."""
    return (*candidates, *(replace(r, refit_days=round(days, 2)) for r in candidates
                           if r.refit_days is None))


def choose_before_gate(history: pd.DataFrame, spec: DatasetSpec, *, gate_rows: int,
                       folds: int = 3, batch_column: str | None = None,
                       ensemble_tau: float | None = None,
                       leaf_refit: bool = False) -> RecipeChoice:
    """Backtest on the rows older than the gate window, never on it: the window that then
    judges the challenger must not also have picked how it was trained.

    Each fold is a replica of the gate (as many rows, the model fitted on every row before
    it), so a change inside the newest batch shows in the newest folds' training data.
    Batch-sized folds would train every fold on the old regime and always favour the
    longest memory right after a change. With `batch_column` the grid is on the scale of
    the history's own batches (`batch_months`, `grid_for`).

    With `ensemble_tau` the candidates are the complete grid in batches (`batch_grid`) and
    the choice carries every recipe's weight (`ensemble_weights`): the challenger is then
    their weighted ensemble. With `leaf_refit` every candidate also runs with its leaves
    refitted on the newest batch (`with_leaf_refits`)."""
    months = batch_months(history, spec, batch_column)
    older = split_gate_window(history, spec, gate_rows, None).train
    days = batch_days(history, spec, batch_column)

    def grid(candidates: tuple[Recipe, ...]) -> tuple[Recipe, ...]:
        return with_leaf_refits(candidates, days) if leaf_refit else candidates
    if ensemble_tau is not None:
        choice = choose_recipe(older, spec, candidates=grid(batch_grid(days)), folds=folds,
                               fold_rows=gate_rows)
        choice.weights = ensemble_weights(choice, spec, tau=ensemble_tau)
        choice.reason += "; ensemble " + ", ".join(
            f"{r.name} {w:.2f}" for r, w in choice.weights.items())
        return choice
    choice = choose_recipe(older, spec, candidates=grid(candidates_for(spec, months)),
                           folds=folds, fold_rows=gate_rows)
    if months > 1:
        choice.reason += f"; grid scaled to batches of {months} months"
    return choice


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
