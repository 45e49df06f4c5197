"""The retrain sequence as one plain function: recipe, train, gate, refit.

The flow (flows/retrain.py) and the adaptation benchmark (benchmarks/adaptation.py) both
run it, so what the benchmark measures is what the flow does. `decide` runs before it (its
Decision is an input: the cycle records it for every batch, retrained or not); registering
and routing by policy run after it, in the flow.

Each step's implementation is a field of `Calls`: the flow passes its Prefect tasks (one
task run per step in the UI), the benchmark its cached fits, a test the plain functions.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from core.faults import crash_point
from core.steps import Steps
from core.threads import MAX_WORKERS, map_threads
from tasks.data.spec import DatasetSpec
from tasks.gate.decide import Decision, champion_stale
from tasks.gate.gate import GateResult, bootstrap_blocker, gate
from tasks.gate.history import guard, judged_rows
from tasks.training import recipe as recipes
from tasks.training.model import GreenlightModel
from tasks.training.train import (
    Challenger,
    Fitter,
    ensemble_challenger,
    train_challenger,
)

T = TypeVar("T")


class TrainingSettings(Protocol):
    """What the sequence reads of flows.params.Training (which satisfies it as it is)."""

    auto_recipe: bool
    half_life_days: float | None
    window_days: float | None
    gate_min_rows: int
    gate_min_class_rows: int
    min_delta: float
    refresh_on: str
    refit: bool
    reference_rows: int
    recipe_mode: str
    ensemble_tau: float
    leaf_refit: bool
    backtest_folds: int
    member_trees: str


@dataclass(frozen=True)
class Calls:
    """The step implementations; the plain task functions unless a caller wraps them."""

    choose: Callable[..., recipes.RecipeChoice] = recipes.choose_before_gate
    train: Callable[..., Challenger] = train_challenger
    gate: Callable[..., GateResult] = gate
    refit: Callable[..., tuple[Challenger, list[str]]] = recipes.refit_challenger


@dataclass
class Retrained:
    """What the sequence produced: the recipe, the (refitted) challenger and the gate's
    verdict; `blocked` instead when the rows cannot give a first champion."""

    blocked: str | None = None
    choice: recipes.RecipeChoice | None = None
    challenger: Challenger | None = None
    result: GateResult | None = None
    refit_problems: list[str] = field(default_factory=list)
    members: list[Challenger] = field(default_factory=list)  # an ensemble's, else []


def fixed_recipe(spec: DatasetSpec, training: TrainingSettings) -> recipes.RecipeChoice | None:
    """The recipe the user or the spec fixed, or None when it is to be backtested."""
    if training.auto_recipe and not training.half_life_days and not training.window_days:
        return None
    fixed = recipes.Recipe(training.half_life_days or spec.training.half_life_days,
                           training.window_days or spec.training.window_days)
    return recipes.RecipeChoice(fixed, pd.DataFrame(), spec.primary_metric,
                                reason="fixed by the flow parameters or the dataset spec")


def newer_than(challenger: Challenger, champion_until: pd.Timestamp | None) -> bool:
    """Did the challenger learn from rows newer than any the champion saw?"""
    return (champion_until is not None
            and pd.Timestamp(challenger.params["train_end"]) > champion_until)


def retrain_sequence(history: pd.DataFrame, spec: DatasetSpec, training: TrainingSettings, *,
                     gate_rows: int, decision: Decision,
                     champion: GreenlightModel | None, champion_until: pd.Timestamp | None,
                     batch_column: str, refit_if: Callable[[GateResult], bool],
                     steps: Steps | None = None, fitter: Fitter | None = None,
                     calls: Calls = Calls(), lgbm: dict[str, Any] | None = None,
                     new_batches: Collection[str] | None = None) -> Retrained:
    """Recipe, train, gate and (when `refit_if` the verdict) refit, on labelled `history`.

    The gate window is the newest `gate_rows` rows; the recipe is backtested only on rows
    before it. Without a champion, rows that cannot give a first model stop the sequence
    before the backtest (`blocked`). `lgbm` overrides LightGBM's settings (the benchmark).
    A challenger that passes the gate must not be worse beyond noise than the champion on
    the batches before `new_batches` (default: the newest batch), which the champion was
    already judged on (tasks/gate/history.py); one that is fails the gate."""
    steps = steps or Steps()
    if champion is None:
        blocked = bootstrap_blocker(history, spec, gate_rows)
        if blocked:
            return Retrained(blocked=blocked)
    choice = fixed_recipe(spec, training)
    if choice is None:
        with steps.step("recipe", rows_in=len(history)):
            options: dict[str, Any] = {"ensemble_tau": training.ensemble_tau} \
                if training.recipe_mode == "ensemble" else {}
            if training.leaf_refit:
                options["leaf_refit"] = True
            choice = calls.choose(history, spec, gate_rows=gate_rows, batch_column=batch_column,
                                  folds=training.backtest_folds, **options)
    recipes_ = list(choice.weights or [choice.best])
    refit_lgbm = lgbm
    if len(recipes_) > 1 and training.member_trees == "light":
        lgbm = refit_lgbm = recipes.light_params(lgbm)
    elif len(recipes_) > 1 and training.member_trees == "light_refit":
        refit_lgbm = recipes.light_params(lgbm)  # the gate and the guard judge full members
    # Each model is fitted once (`fit_once`): a leaf refit reuses its plain recipe's trees,
    # and a window that keeps every row is the fit without it.
    plains = list(dict.fromkeys(plain(r) for r in recipes_))
    twins_ = [r for r in recipes_ if r.refit_days is not None]
    workers = MAX_WORKERS if fitter is None else 1  # Dask spreads its own fits
    with steps.step("train", rows_in=len(history)) as step:
        def train(recipe: recipes.Recipe, base: Challenger | None = None,
                  model: GreenlightModel | None = None) -> Challenger:
            extra = {"refit_days": recipe.refit_days} if recipe.refit_days is not None else {}
            return calls.train(history, spec, gate_rows=gate_rows,
                               half_life_days=recipe.half_life_days,
                               window_days=recipe.window_days,
                               reference_rows=training.reference_rows,
                               batch_column=batch_column, fitter=fitter, lgbm=lgbm, **extra,
                               **({"base": base} if base else {}),
                               **({"model": model} if model else {}))
        times = sorted_times(history, spec)
        kept = {p: rows_kept(times, gate_rows, p.window_days) for p in plains}
        bases = fit_once(plains, lambda p: (kept[p], p.half_life_days),
                         lambda p, model: train(p, model=model), _model, workers)
        twins = fit_once(twins_, lambda t: (kept[plain(t)], t.half_life_days, t.refit_days),
                         lambda t, model: train(t, bases[plain(t)], model), _model, workers)
        members = [twins[r] if r.refit_days is not None else bases[r] for r in recipes_]
        challenger = ensemble_challenger(members, list(choice.weights.values()) or [1.0])
        step.rows_out = len(challenger.split.train)
    crash_point("train")
    with steps.step("gate", rows_in=len(challenger.split.gate)):
        stale = champion_stale(decision, refresh_on=training.refresh_on,
                               newer=newer_than(challenger, champion_until))
        result = calls.gate(challenger.model, champion, challenger.split.gate, spec,
                            min_delta=training.min_delta, min_rows=training.gate_min_rows,
                            min_class_rows=training.gate_min_class_rows,
                            slice_feature=spec.slice_feature, stale=stale)
    if result.passed and champion is not None:
        judged = judged_rows(history, spec, batch_column, new_batches, champion_until)
        with steps.step("history", rows_in=len(judged)):
            result = guard(result, challenger.model, champion, judged, spec,
                           min_delta=training.min_delta, min_rows=training.gate_min_rows)
    out = Retrained(choice=choice, challenger=challenger, result=result,
                    members=members if len(members) > 1 else [])
    if result.passed:
        with steps.step("estimator", rows_in=len(challenger.split.gate)):
            challenger.model.performance = performance_estimator(
                challenger.model, challenger.split.gate, spec)
    if training.refit and refit_if(result):
        with steps.step("refit", rows_in=len(history)) as step:
            def refit(recipe: recipes.Recipe, member: Challenger,
                      base: Challenger | None = None, model: GreenlightModel | None = None
                      ) -> tuple[Challenger, list[str]]:
                """The recipe on every row; a leaf refit from its plain recipe's refit."""
                return calls.refit(member, history, spec, recipe, champion,
                                   reference_rows=training.reference_rows,
                                   batch_column=batch_column, lgbm=refit_lgbm,
                                   **({"base": base} if base else {}),
                                   **({"model": model} if model else {}))
            rows = {p: rows_kept(times, 0, p.window_days) for p in plains}
            trained = dict(zip(recipes_, members, strict=True))
            again = fit_once(plains, lambda p: (rows[p], p.half_life_days),
                             lambda p, model: refit(p, bases[p], model=model), _refitted,
                             workers)
            twice = fit_once(twins_, lambda t: (rows[plain(t)], t.half_life_days, t.refit_days),
                             lambda t, model: refit(t, trained[t], again[plain(t)][0], model),
                             _refitted, workers)
            refits = [twice[r] if r.refit_days is not None else again[r] for r in recipes_]
            out.challenger = ensemble_challenger([c for c, _ in refits],
                                                 list(choice.weights.values()) or [1.0])
            out.refit_problems = [p for _, problems in refits for p in problems]
            step.rows_out = out.challenger.params.get("refit_rows", 0)
        # the refit model keeps the gated model's estimator: fitted on rows neither
        # learned from, where the refit model has seen the gate window
        out.challenger.model.performance = challenger.model.performance
    return out


def plain(recipe: recipes.Recipe) -> recipes.Recipe:
    """The recipe without its leaf refit: the one whose trees a leaf refit reuses."""
    return replace(recipe, refit_days=None)


def sorted_times(history: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """The history's times in order, as `split_gate_window` and `recipe_rows` see them."""
    column = history[spec.time_column]
    times = column.to_numpy(dtype="datetime64[ns]")  # tz-aware: the same instants, in UTC
    return times if column.is_monotonic_increasing else np.sort(times)


def rows_kept(times: np.ndarray, gate_rows: int, window_days: float | None) -> int:
    """How many rows a recipe trains on: `len(split_gate_window(...).train)` with
    `gate_rows` held out (0: `len(recipe_rows(...))`, every row), counted on the sorted
    times alone, so that comparing ten recipes copies no frame of a long history."""
    end = len(times) - min(gate_rows, len(times) // 2)
    if window_days is None or not end:
        return end
    start = times[end - 1] - np.timedelta64(round(window_days * 86400e9), "ns")
    return end - int(np.searchsorted(times[:end], start, side="right"))


def fit_once(recipes_: list[recipes.Recipe], key: Callable[[recipes.Recipe], Hashable],
             make: Callable[[recipes.Recipe, GreenlightModel | None], T],
             model_of: Callable[[T], GreenlightModel | None], workers: int
             ) -> dict[recipes.Recipe, T]:
    """`make(r, None)` for the first recipe of each `key`, `workers` at a time; then
    `make(r, model)` for the others, with the first's model (None: make it afresh).

    The key says which recipes fit the same model: the same half-life (and leaf refit) on
    as many of the newest rows (a window keeps a suffix). A window longer than the history
    keeps every row, so on a short history the complete grid's long windows are expanding
    under other names: each fitted again cost the ensemble a full fit before the gate and
    another in the refit. Each recipe keeps its own name, params and weight."""
    first: dict[Hashable, recipes.Recipe] = {}
    for r in recipes_:
        first.setdefault(key(r), r)
    heads = list(first.values())
    done = dict(zip(heads, map_threads(lambda r: make(r, None), heads, workers=workers),
                    strict=True))
    for r in recipes_:
        if r not in done:
            done[r] = make(r, model_of(done[first[key(r)]]))
    return done


def _model(challenger: Challenger) -> GreenlightModel:
    return challenger.model


def _refitted(refit: tuple[Challenger, list[str]]) -> GreenlightModel | None:
    """A refit's model to share, or None where it failed its checks (each then its own)."""
    return None if refit[1] else refit[0].model


def performance_estimator(model: GreenlightModel, window: pd.DataFrame, spec: DatasetSpec
                          ) -> str | None:
    """The label-free performance estimator of a model that passed the gate, fitted on the
    gate window (rows it never trained on), as JSON; None where the window is too small."""
    from tasks.monitoring.estimation import fit_estimator

    try:
        return fit_estimator(model, window, spec).to_json()
    except ValueError:
        return None
