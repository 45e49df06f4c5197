"""The retrain sequence as one plain function: recipe, train, gate, refit.

The flow (flows/retrain.py) and the adaptation benchmark (benchmarks/adaptation.py) both
run it, so what the benchmark measures is what the flow does. `decide` runs before it (its
Decision is an input: the cycle records it for every batch, retrained or not); registering
and routing by policy run after it, in the flow.

Each step's implementation is a field of `Calls`: the flow passes its Prefect tasks (one
task run per step in the UI), the benchmark its cached fits, a test the plain functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pandas as pd

from core.faults import crash_point
from core.steps import Steps
from core.threads import MAX_WORKERS, map_threads
from tasks.data.spec import DatasetSpec
from tasks.gate.decide import Decision, champion_stale
from tasks.gate.gate import GateResult, bootstrap_blocker, gate
from tasks.training import recipe as recipes
from tasks.training.model import GreenlightModel
from tasks.training.train import (
    Challenger,
    Fitter,
    ensemble_challenger,
    train_challenger,
)


class TrainingSettings(Protocol):
    """What the sequence reads of flows.params.Training (which satisfies it as it is)."""

    auto_recipe: bool
    half_life_days: float | None
    window_days: float | None
    gate_min_rows: int
    min_delta: float
    refresh_on: str
    refit: bool
    reference_rows: int
    recipe_mode: str
    ensemble_tau: float
    leaf_refit: bool
    backtest_folds: int


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
                     calls: Calls = Calls(), lgbm: dict[str, Any] | None = None) -> Retrained:
    """Recipe, train, gate and (when `refit_if` the verdict) refit, on labelled `history`.

    The gate window is the newest `gate_rows` rows; the recipe is backtested only on rows
    before it. Without a champion, rows that cannot give a first model stop the sequence
    before the backtest (`blocked`). `lgbm` overrides LightGBM's settings (the benchmark)."""
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
    # Each distinct recipe's trees are fitted once; a leaf refit reuses its plain recipe's.
    plains = list(dict.fromkeys(replace(r, refit_days=None) for r in recipes_))
    workers = MAX_WORKERS if fitter is None else 1  # Dask spreads its own fits
    with steps.step("train", rows_in=len(history)) as step:
        def train(recipe: recipes.Recipe, base: Challenger | None = None) -> Challenger:
            return calls.train(history, spec, gate_rows=gate_rows,
                               half_life_days=recipe.half_life_days,
                               window_days=recipe.window_days,
                               **({"refit_days": recipe.refit_days, "base": base} if base
                                  else {}),
                               reference_rows=training.reference_rows,
                               batch_column=batch_column, fitter=fitter, lgbm=lgbm)
        bases = dict(zip(plains, map_threads(train, plains, workers=workers), strict=True))
        members = map_threads(lambda r: bases[r] if r.refit_days is None else train(
            r, bases[replace(r, refit_days=None)]), recipes_, workers=workers)
        challenger = ensemble_challenger(members, list(choice.weights.values()) or [1.0])
        step.rows_out = len(challenger.split.train)
    crash_point("train")
    with steps.step("gate", rows_in=len(challenger.split.gate)):
        stale = champion_stale(decision, refresh_on=training.refresh_on,
                               newer=newer_than(challenger, champion_until))
        result = calls.gate(challenger.model, champion, challenger.split.gate, spec,
                            min_delta=training.min_delta, min_rows=training.gate_min_rows,
                            slice_feature=spec.slice_feature, stale=stale)
    out = Retrained(choice=choice, challenger=challenger, result=result,
                    members=members if len(members) > 1 else [])
    if result.passed:
        with steps.step("estimator", rows_in=len(challenger.split.gate)):
            challenger.model.performance = performance_estimator(
                challenger.model, challenger.split.gate, spec)
    if training.refit and refit_if(result):
        with steps.step("refit", rows_in=len(history)) as step:
            def refit(recipe: recipes.Recipe, member: Challenger,
                      base: Challenger | None = None) -> tuple[Challenger, list[str]]:
                """The recipe on every row; a leaf refit from its plain recipe's refit."""
                return calls.refit(member, history, spec, recipe, champion,
                                   reference_rows=training.reference_rows,
                                   batch_column=batch_column, lgbm=lgbm,
                                   **({"base": base} if base else {}))
            done = map_threads(lambda r: refit(r, bases[r]), plains, workers=workers)
            refitted = dict(zip(plains, done, strict=True))
            trained = dict(zip(recipes_, members, strict=True))
            refits = map_threads(lambda r: refitted[r] if r.refit_days is None else refit(
                r, trained[r], refitted[replace(r, refit_days=None)][0]), recipes_,
                workers=workers)
            out.challenger = ensemble_challenger([c for c, _ in refits],
                                                 list(choice.weights.values()) or [1.0])
            out.refit_problems = [p for _, problems in refits for p in problems]
            step.rows_out = out.challenger.params.get("refit_rows", 0)
        # the refit model keeps the gated model's estimator: fitted on rows neither
        # learned from, where the refit model has seen the gate window
        out.challenger.model.performance = challenger.model.performance
    return out


def performance_estimator(model: GreenlightModel, window: pd.DataFrame, spec: DatasetSpec
                          ) -> str | None:
    """The label-free performance estimator of a model that passed the gate, fitted on the
    gate window (rows it never trained on), as JSON; None where the window is too small."""
    from tasks.monitoring.estimation import fit_estimator

    try:
        return fit_estimator(model, window, spec).to_json()
    except ValueError:
        return None
