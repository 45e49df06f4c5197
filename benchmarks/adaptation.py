"""Does greenlight's automatic policy keep up with the best fixed retraining strategy?

Replays monthly batches of Elec2 and Bike Sharing (hourly) through the real task functions,
with the warm-up and LightGBM settings of ../shared/data/*/PROVENANCE.md, and prints the
mean monthly primary metric of:
- static: trained once on the warm-up months;
- the complete fixed grid in batches (tasks.training.recipe.batch_grid): expanding,
  sliding 1/3/6/12 batches, half-lives of 1/2, 1, 2, 4 and 8 batches, each refitted before
  every month on the data before it, and scored on it;
- no gate: refitted before every month with the flow's backtest (choose_before_gate) on the
  data before it: its best recipe, or its softmax ensemble of the grid at each temperature
  of TAUS, at the temperature that did best over the TAU_MEMORY months before ("tau by
  backtest"), or backtested on LONG_FOLDS folds (what recipe selection alone is worth);
- auto: the flow with its defaults. Each month the champion is scored on the month (the
  number that counts); then monitor_batch + decide (drift share 0.3, max decay 0.05); on
  "retrain" the flow's own retrain sequence runs (tasks.training.sequence.retrain_sequence):
  the gate window is the newest 30% of the month, choose_before_gate backtests on the rows
  before it in three gate-sized folds, the challenger is fitted with the best recipe, and
  tasks.gate.gate judges it against the champion. As decide retrained on drift, a
  challenger on newer rows than the champion passes unless the champion is proven better
  (verdict "refresh", Training.refresh_on, tasks.gate.decide.champion_stale); a passing
  challenger is refitted with its recipe on every row, gate window included, before it is
  promoted (Training.refit);
- auto, best recipe: BEST, the same settings named (the variants below are named over it);
- auto, leaf refit, ensemble tau 0.1, 6 folds: the one variant that beat the best fixed
  strategy through the flow (Elec2), the softmax ensemble of the complete grid, each
  recipe also with its leaves refitted, backtested on six folds;
- leaf refits: each strategy of the grid with its booster's leaves refitted on the newest
  batch (Recipe.refit_days), the no-gate best recipe and ensembles of the grid doubled with
  these twins (choose_before_gate leaf_refit), and "auto, leaf refit[, ensemble tau T[, 6
  folds]]": the flow with Training.leaf_refit (and backtest_folds 6);
- auto, ensemble tau T[, 6 folds]: the flow with Training.recipe_mode "ensemble" at
  temperature T (on 6 backtest folds);
- auto, gain only / gain only + refit: the same with refresh_on "never" (every challenger
  must prove its gain; "marginal" is not promoted), refit off or on; auto, no refit: the
  defaults with refit off. What each part is worth;
- auto, refresh on decay: refresh_on "decay", where only a champion that decayed by
  max_decay loses the benefit of the doubt (an equal newer model is promoted only then).

It prints the best fixed strategy and each policy's paired difference to it: the mean over
batches and a 95% interval by t over the per-batch differences. `--policies` picks the
automatic variants (the default and the best recipe unless told; each replays monitoring
every month, the slow part); `--fixed-only` leaves out the leaf-refit and no-gate rows.

Months where the flow would not act (no retrain, a failed gate) keep the champion, so it
ages: --trace prints, month by month, every strategy's score, decide's triggers, the gate's
verdict and interval, and the champion's age in months.

    uv run python benchmarks/adaptation.py [--datasets elec2,bike_sharing] [--trace]
        [--policies "auto;auto, ensemble tau 0.05"]

Any dataset with a spec under expectations/ (e.g. one made by `greenlight init`) runs the
same way, cut at any cadence (`tasks.data.replay.cut_batches`: Y, Q, M, W, D, h, with a
multiple if wanted), with LightGBM's defaults from the spec unless --trees/--learning-rate:

    uv run python benchmarks/adaptation.py --dataset NAME --data FILE --freq Q --warmup 2

Issue 31's matrix (docs/benchmarks.md, "On any cadence"), each cell with --fixed-only, its
--cell name and --json FILE (one line per policy: the best fixed strategy, the paired
difference, batches better, and how many batches were "not enough evidence"):

    --dataset elec2 --freq W --warmup 26                      # weekly, ~336 rows
    --dataset elec2                                           # monthly
    --dataset bike_sharing --data ../shared/data/bike_sharing/day.csv --freq Q --warmup 2
    --dataset bike_sharing                                    # hour.csv by month
    --dataset bike_weathersit                                 # hour.csv, weathersit (multiclass)
    --dataset synthetic --synthetic-rows 100                  # also 365 and 3000

"auto, before issue 31" replays the defaults as they were before the small-window rule
(tasks.gate.gate small_windows=False, the window 30% of the batch).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from functools import partial
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.params import Thresholds, Training  # noqa: E402
from tasks.data.replay import (  # noqa: E402
    SYNTHETIC_MALFORMED,
    cut_batches,
    load_dataset,
    synthetic_stream,
)
from tasks.data.spec import load_spec  # noqa: E402
from tasks.gate.decide import Decision, decide  # noqa: E402
from tasks.gate.gate import GateResult, gate  # noqa: E402
from tasks.monitoring import alarms  # noqa: E402
from tasks.monitoring.monitor import monitor_batch  # noqa: E402
from tasks.monitoring.suspect import (  # noqa: E402
    collapsed,
    label_skill,
    learnable_skill,
    suspect_reason,
)
from tasks.training.evaluate import evaluate  # noqa: E402
from tasks.training.model import GreenlightModel  # noqa: E402
from tasks.training.recipe import (  # noqa: E402
    Recipe,
    RecipeChoice,
    batch_days,
    batch_grid,
    choose_before_gate,
    choose_recipe,
    ensemble_weights,
    fit_recipe,
    refit_challenger,
    with_leaf_refits,
)
from tasks.training.sequence import Calls, retrain_sequence  # noqa: E402
from tasks.training.train import (  # noqa: E402
    LGBM_PARAMS,
    Challenger,
    gate_window_rows,
    train_challenger,
)

BATCH = "_batch"
# PROVENANCE: warm-up months and LightGBM settings; plus a slice for the gate's guard.
SETUP = {"elec2": {"warmup": 6, "params": {"n_estimators": 200, "learning_rate": 0.05},
                   "slice": "day"},
         "bike_sharing": {"warmup": 4, "params": {"n_estimators": 300, "learning_rate": 0.05},
                          "slice": "workingday"},
         # hour.csv again, weathersit (1-4) the multiclass target: Bike Sharing's settings
         "bike_weathersit": {"warmup": 4, "params": {"n_estimators": 300,
                                                     "learning_rate": 0.05},
                             "slice": "workingday"}}
TAUS = (0.02, 0.05, 0.1, 0.2)  # ensemble temperatures tried without the gate
TAU_MEMORY = 6  # months of realised scores that pick the temperature ("tau by backtest")
LONG_FOLDS = 6  # "longer backtest memory": twice the flow's 3 gate-sized folds
# The shipped defaults (flows.params), so the benchmark measures what a user gets.
FLOW = {"drift_share": Thresholds().drift_share, "max_decay": Thresholds().max_decay,
        "gate_fraction": Training().gate_fraction, "min_delta": Training().min_delta,
        "reference_rows": Training().reference_rows}
TRACE = False
CELL = ""  # --cell: the matrix cell's name in the summary
SUMMARY: list[dict] = []  # one row per policy: what --json writes
FIXED_ONLY = False  # --fixed-only: compare the policies with the fixed grid alone
# The automatic policy: label -> Training settings over FLOW's; the flow's default first.
# The variants name their settings over BEST (one recipe from 3 backtest folds, no leaf
# refits: the default), so they replay as they were recorded whatever the default.
BEST = {"recipe_mode": "best", "ensemble_tau": 0.05, "leaf_refit": False, "backtest_folds": 3}
AUTO = {"auto": {}, "auto, best recipe": BEST,
        **{f"auto, ensemble tau {t:g}": {**BEST, "recipe_mode": "ensemble", "ensemble_tau": t}
           for t in (0.05, 0.1, 0.2)},
        "auto, gain only": {**BEST, "refresh_on": "never", "refit": False},
        "auto, gain only + refit": {**BEST, "refresh_on": "never"},
        "auto, refresh on decay": {**BEST, "refresh_on": "decay"},
        "auto, no refit": {**BEST, "refit": False},
        "auto, leaf refit": {**BEST, "leaf_refit": True},
        **{f"auto, leaf refit, ensemble tau {t:g}": {
            **BEST, "leaf_refit": True, "recipe_mode": "ensemble", "ensemble_tau": t}
           for t in (0.05, 0.1, 0.2)},
        **{f"auto, leaf refit, ensemble tau {t:g}, {LONG_FOLDS} folds": {
            **BEST, "leaf_refit": True, "recipe_mode": "ensemble", "ensemble_tau": t,
            "backtest_folds": LONG_FOLDS} for t in (0.05, 0.1, 0.2)},
        **{f"auto, ensemble tau {t:g}, {LONG_FOLDS} folds": {
            **BEST, "recipe_mode": "ensemble", "ensemble_tau": t, "backtest_folds": LONG_FOLDS}
           for t in (0.05, 0.1)}}
# Issue 31's small-window rule, its parts: the gate window of gate_fraction alone (no
# growth toward gate_min_rows), and the same with the best recipe (the suite's recipe).
# "before issue 31": no small-window rule (GATE_OFF: a gate keyword, not a setting), the
# window 30% of the batch, each class 30 rows: what the defaults did until 2026-12-07.
GATE_OFF = "_small_windows_off"
BEFORE_31 = {"gate_max_fraction": 0.3, GATE_OFF: True}
AUTO.update({"auto, 30% window": {"gate_max_fraction": 0.3},
             "auto, best recipe, 30% window": {**BEST, "gate_max_fraction": 0.3},
             "auto, window 200": {"gate_window_min_rows": 200},
             "auto, best recipe, window 200": {**BEST, "gate_window_min_rows": 200},
             "auto, before issue 31": BEFORE_31,
             "auto, best recipe, before issue 31": {**BEST, **BEFORE_31}})
# Issue 31's fourth goal (a retrain that costs what it earns): lighter ensembles. UNIFORM:
# no backtest, the grid weighted alike; light members: a quarter of the trees at four times
# the learning rate (the backtest's BACKTEST_PARAMS shrinkage), before the gate and after.
UNIFORM = "_uniform"
AUTO.update({"auto, light members": {"member_trees": "light"},
             "auto, uniform": {UNIFORM: True, "member_trees": "full"},
             "auto, light uniform": {UNIFORM: True, "member_trees": "light"}})
# Light members in the refit only: the gate and the history guard judge full ones
# (the default since 2026-12-08), and the default before it, full members throughout.
AUTO.update({"auto, light refit": {"member_trees": "light_refit"},
             "auto, full members": {"member_trees": "full"}})
POLICIES = "auto;auto, best recipe"


def read_frame(name: str, data: Path | None, spec) -> pd.DataFrame:
    """The dataset's rows; Bike Sharing's daily file (day.csv) too, each day at hour 0."""
    if name == "bike_sharing" and data is not None and data.name == "day.csv":
        raw = pd.read_csv(data)
        raw["timestamp"], raw["hr"] = pd.to_datetime(raw["dteday"]), 0
        return raw[spec.columns].sort_values(spec.time_column, kind="stable").reset_index(
            drop=True)
    return load_dataset(name, data)


class Replay:
    """The monthly batches, and every fit keyed by what it depends on, so the strategies
    share a challenger when they would have trained the same one."""

    def __init__(self, name: str, data: Path | None, freq: str = "M",
                 warmup: int | None = None, synthetic_rows: int | None = None) -> None:
        self.spec = load_spec(name)
        setup = SETUP.get(name) or {"warmup": 4, "params": {},
                                    "slice": self.spec.slice_feature}
        if data is not None and data.is_dir():  # the folder holding elec2/ and bike_sharing/
            data = data / name
        if name == "synthetic":  # the built-in stream, its malformed batch quarantined
            self.batches = [b for i, b in enumerate(synthetic_stream(
                rows=synthetic_rows or 3000)) if i != SYNTHETIC_MALFORMED]
        else:
            self.batches = cut_batches(read_frame(name, data, self.spec), self.spec, freq)
        if warmup is not None:
            setup = {**setup, "warmup": warmup}
        if not 0 < setup["warmup"] < len(self.batches):
            raise SystemExit(f"--warmup {setup['warmup']}: {name} cut by {freq} has "
                             f"{len(self.batches)} batches; warm up on fewer")
        self.frames = [b.frame.assign(**{BATCH: b.label}) for b in self.batches]
        self.warmup, self.params, self.slice = setup["warmup"], setup["params"], setup["slice"]
        whole = pd.concat(self.frames, ignore_index=True)
        self.days = batch_days(whole, self.spec, BATCH)
        self.grid = batch_grid(self.days)
        self.cache: dict = {}
        self.seconds: Counter = Counter()
        self.calls: Counter = Counter()
        self.trace: dict = {}

    def _once(self, key: tuple, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def timed(self, name: str, call, *args, **kwargs):
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self.seconds[name] += time.perf_counter() - start
            self.calls[name] += 1

    def history(self, i: int) -> pd.DataFrame:
        """Every row up to and including month i."""
        return pd.concat(self.frames[: i + 1], ignore_index=True)

    def fit(self, rows: pd.DataFrame, recipe: Recipe, params: dict | None = None
            ) -> GreenlightModel:
        """The recipe on every row of a history (keyed by its length): a fixed strategy's
        model for the next month, and the flow's refit of that recipe, are the same fit.
        `params` over the replay's LightGBM settings (a lighter ensemble member)."""
        params = {**self.params, **(params or {})}
        return self._once(("fit_recipe", len(rows), recipe, tuple(sorted(params.items()))),
                          lambda: self.timed("fits", fit_recipe, rows, self.spec, recipe,
                                             params))

    def name(self, recipe: Recipe) -> str:
        """A grid recipe in batches, as the issue names them."""
        if recipe.window_days is not None:
            return f"sliding {round(recipe.window_days / self.days * 2) / 2:g}"
        if recipe.half_life_days is not None:
            return f"half-life {round(recipe.half_life_days / self.days * 2) / 2:g}"
        return "expanding"

    def choose(self, rows: pd.DataFrame, fold_rows: int, key: tuple) -> Recipe:
        return self._once(("choose_recipe", *key), lambda: self.timed(
            "choose_recipe", choose_recipe, rows, self.spec, fold_rows=fold_rows)).best

    def step_calls(self, i: int, small_windows: bool = True, uniform: bool = False) -> Calls:
        """The sequence's steps at month i: the recipe backtest and the challenger's fit
        are shared by the strategies (they depend on the month only), the gate is timed
        and judges with the dataset's slice guard. `uniform`: no backtest, every recipe of
        the grid (and its leaf-refit twin) weighted alike."""
        def choose(*args, **kwargs) -> object:
            if uniform:
                return self._once(("uniform", i, tuple(sorted(kwargs.items()))),
                                  lambda: uniform_choice(self, kwargs.get("leaf_refit", False)))
            return self._once(("choose", i, tuple(sorted(kwargs.items()))), lambda: self.timed(
                "choose_recipe", choose_before_gate, *args, **kwargs))

        def train(*args, **kwargs) -> Challenger:
            key = ("train", i, kwargs["gate_rows"], kwargs["half_life_days"],
                   kwargs["window_days"], kwargs.get("refit_days"),
                   tuple(sorted((kwargs.get("lgbm") or {}).items())))  # `base` or not: same
            return self._once(key, lambda: self.timed("fits", train_challenger, *args,
                                                      **kwargs))

        def judge(*args, slice_feature=None, **kwargs) -> GateResult:
            return self.timed("gate", gate, *args, slice_feature=self.slice,
                              small_windows=small_windows, **kwargs)

        def refit(challenger, history, spec, recipe, champion, base=None, model=None,
                  **kwargs):
            return refit_challenger(challenger, history, spec, recipe, champion,
                                    model=model or self.fit(history, recipe,
                                                            kwargs.get("lgbm")), **kwargs)
        return Calls(choose=choose, train=train, gate=judge, refit=refit)

    def score(self, model, i: int) -> float:
        return evaluate(model, self.frames[i], self.spec)[self.spec.primary_metric]


def uniform_choice(r: Replay, leaf_refit: bool) -> RecipeChoice:
    """The complete grid in batches (with its leaf-refit twins), every recipe weighted
    alike, with no backtest: what the ensemble is at an infinite temperature."""
    grid = with_leaf_refits(r.grid, r.days) if leaf_refit else r.grid
    choice = RecipeChoice(grid[0], pd.DataFrame(), r.spec.primary_metric,
                          reason="uniform ensemble of the grid, no backtest")
    choice.weights = {g: 1.0 / len(grid) for g in grid}
    return choice


def fixed_strategies(r: Replay) -> dict[str, list[float]]:
    """Each fixed strategy of the complete grid (`batch_grid`, in batches) refitted before
    every month on every row before it, and scored on that month; static is fitted once."""
    static = r.fit(r.history(r.warmup - 1), Recipe())
    out: dict[str, list[float]] = {"static": [], **{r.name(g): [] for g in r.grid}}
    for i in range(r.warmup, len(r.frames)):
        before = r.history(i - 1)
        out["static"].append(r.score(static, i))
        for recipe in r.grid:
            out[r.name(recipe)].append(r.score(r.fit(before, recipe), i))
    return out


def leaf_refit_strategies(r: Replay) -> dict[str, list[float]]:
    """Each fixed strategy of the grid with its leaves refitted on the newest batch
    (Recipe.refit_days, tasks.training.train.refit_leaves), refitted before every month."""
    out: dict[str, list[float]] = {f"{r.name(g)} + leaf refit": [] for g in r.grid}
    for i in range(r.warmup, len(r.frames)):
        before = r.history(i - 1)
        for recipe in r.grid:
            out[f"{r.name(recipe)} + leaf refit"].append(
                r.score(r.fit(before, replace(recipe, refit_days=round(r.days, 2))), i))
    return out


def ensemble_scores(r: Replay, model_of, choice: RecipeChoice, tau: float, i: int) -> float:
    """Month i's score of the softmax ensemble of `choice`'s backtest at temperature tau,
    each member being `model_of(recipe)`."""
    weights = ensemble_weights(choice, r.spec, tau=tau)
    model = GreenlightModel.ensemble([model_of(g) for g in weights], list(weights.values()))
    return r.score(model, i)


def no_gate_strategies(r: Replay) -> dict[str, list[float]]:
    """Recipe selection alone, refitted on every row before each month, no monitor or gate:
    the best backtested recipe, and the ensemble at each temperature of TAUS, both from the
    flow's backtest (gate-sized folds on the rows before the newest 30% of the last month).
    "tau by backtest" takes, each month, the temperature whose ensemble scored best over
    the TAU_MEMORY months before it (realised scores only, so no look-ahead); the last one
    backtests on LONG_FOLDS folds instead of 3 (a longer backtest memory)."""
    out: dict[str, list[float]] = {"backtest best, no gate": [],
                                   **{f"ensemble tau {t:g}, no gate": [] for t in TAUS},
                                   "ensemble tau by backtest, no gate": [],
                                   "backtest best + leaf refits, no gate": [],
                                   **{f"ensemble tau {t:g} + leaf refits, no gate": []
                                      for t in TAUS},
                                   f"ensemble tau 0.05, {LONG_FOLDS} folds, no gate": []}
    sign = 1 if r.spec.higher_is_better else -1
    for i in range(r.warmup, len(r.frames)):
        before = r.history(i - 1)
        gate_rows = int(FLOW["gate_fraction"] * len(r.frames[i - 1]))
        best = r._once(("nogate-best", i), partial(
            r.timed, "choose_recipe", choose_before_gate, before, r.spec, gate_rows=gate_rows,
            batch_column=BATCH))
        out["backtest best, no gate"].append(r.score(r.fit(before, best.best), i))
        grid = r._once(("nogate-grid", i), partial(
            r.timed, "choose_recipe", choose_before_gate, before, r.spec, gate_rows=gate_rows,
            batch_column=BATCH, ensemble_tau=TAUS[0]))
        for t in TAUS:
            out[f"ensemble tau {t:g}, no gate"].append(
                ensemble_scores(r, partial(r.fit, before), grid, t, i))
        done = len(out["backtest best, no gate"]) - 1
        past = {t: out[f"ensemble tau {t:g}, no gate"][max(0, done - TAU_MEMORY):done]
                for t in TAUS}
        pick = max(TAUS, key=lambda t: sign * sum(past[t]) / len(past[t])) if done \
            else 0.05
        out["ensemble tau by backtest, no gate"].append(out[f"ensemble tau {pick:g}, no gate"][-1])
        refits = r._once(("nogate-refits", i), partial(
            r.timed, "choose_recipe", choose_before_gate, before, r.spec, gate_rows=gate_rows,
            batch_column=BATCH, leaf_refit=True))
        out["backtest best + leaf refits, no gate"].append(r.score(r.fit(before, refits.best), i))
        refit_grid = r._once(("nogate-refit-grid", i), partial(
            r.timed, "choose_recipe", choose_before_gate, before, r.spec, gate_rows=gate_rows,
            batch_column=BATCH, ensemble_tau=0.1, leaf_refit=True))
        for t in TAUS:
            out[f"ensemble tau {t:g} + leaf refits, no gate"].append(
                ensemble_scores(r, partial(r.fit, before), refit_grid, t, i))
        longer = r._once(("nogate-long", i), partial(
            r.timed, "choose_recipe", choose_before_gate, before, r.spec, gate_rows=gate_rows,
            batch_column=BATCH, ensemble_tau=0.05, folds=LONG_FOLDS))
        out[f"ensemble tau 0.05, {LONG_FOLDS} folds, no gate"].append(
            ensemble_scores(r, partial(r.fit, before), longer, 0.05, i))
    return out


def auto_policy(r: Replay, out_dir: Path, label: str, settings: dict
                ) -> tuple[list[float], Counter]:
    """Monitor, decide, then the flow's retrain sequence, and promote: month by month.

    `settings` override Training's defaults: refresh_on (when a challenger on newer rows
    only has to not lose), refit (the promoted model is refitted with the gate window),
    recipe_mode (the best recipe or the ensemble)."""
    settings = dict(settings)
    small_windows = not settings.pop(GATE_OFF, False)
    uniform = settings.pop(UNIFORM, False)
    lgbm = dict(r.params)
    training = Training(**{"gate_fraction": FLOW["gate_fraction"],
                           "min_delta": FLOW["min_delta"],
                           "reference_rows": FLOW["reference_rows"], **settings})
    log: Counter = Counter()
    scores: list[float] = []
    champion = registered = reference = seen_until = born = None
    decision = Decision("bootstrap", ["no champion yet"], frozenset({"bootstrap"}))
    for i in range(r.warmup - 1, len(r.frames)):
        row: dict = {"month": r.batches[i].label}
        if champion is not None:
            scores.append(r.score(champion, i))
            row.update(score=scores[-1], age=i - born)
            seen = r.timed("monitor", monitor_batch, r.batches[i].label, r.frames[i],
                           reference, champion, registered, r.spec, out_dir / f"{label}-{i}")
            raised = alarms.check(seen, drift_share=FLOW["drift_share"],
                                  max_decay=FLOW["max_decay"])
            held = suspect(r, champion, seen, i)
            if held:
                log["suspect"] += 1
                row["decide"] = "held: labels suspect"
                r.trace.setdefault(label, []).append(row)
                continue
            decision = decide([seen], raised, has_champion=True)
            row["decide"] = ",".join(sorted(decision.kinds)) or "-"
            r.trace.setdefault(label, []).append(row)
            if not decision.retrain:
                continue
            log["retrains"] += 1
        done = retrain_sequence(r.history(i), r.spec, training,
                                gate_rows=gate_window_rows(
                                    len(r.frames[i]), training.gate_fraction,
                                    training.gate_window_min_rows,
                                    training.gate_max_fraction),
                                decision=decision, champion=champion, champion_until=seen_until,
                                batch_column=BATCH, refit_if=lambda result: result.passed,
                                calls=r.step_calls(i, small_windows, uniform), lgbm=lgbm)
        if done.blocked:
            log["blocked"] += 1
            continue
        result, challenger = done.result, done.challenger
        log[f"recipe {'ensemble' if done.choice.weights else done.choice.best.name}"] += 1
        log[result.verdict] += 1
        log["small window"] += "small window" in result.reason
        row.update(recipe=done.choice.best.name, verdict=result.verdict, gain=result.gain,
                   ci_low=result.ci_low, champ_ci_low=result.champion_ci_low)
        if not result.passed:
            continue
        log["promotions"] += champion is not None
        champion, registered, born = challenger.model, result.challenger, i
        seen_until = pd.Timestamp(challenger.params["trained_until"])
        reference = challenger.reference
    return scores, log


def suspect(r: Replay, champion: GreenlightModel, seen, i: int) -> str | None:
    """The flow's suspect-label hold (flows/cycle.py `_hold_suspects`) on batch i: its
    reason, or None. A real change of market or concept must never be held, so each cell
    counts how often it was ("suspect" in the policy's log; the replay then skips the
    batch's retrain, as the flow holds it from training until a person releases it)."""
    if seen.not_judged or seen.decay is None:
        return None
    skill = label_skill(champion, r.frames[i], r.spec)
    learnable = learnable_skill(r.frames[i], r.spec) if collapsed(skill) else None
    return suspect_reason(skill, learnable, drift_share=seen.drift_share,
                          drifted=seen.adversarial_drifted,
                          max_drift_share=FLOW["drift_share"], source=r.batches[i].label)


def report(r: Replay, scores: dict[str, list[float]], logs: dict[str, Counter]
           ) -> pd.DataFrame:
    spec = r.spec
    months = [b.label for b in r.batches[r.warmup:]]
    table = pd.DataFrame(scores, index=months).T
    out = pd.DataFrame({"all": table.mean(axis=1)})
    if spec.name == "bike_sharing":
        out["2011"] = table[[m for m in months if m < "2012"]].mean(axis=1)
        out["2012"] = table[[m for m in months if m >= "2012"]].mean(axis=1)
    digits = 3 if spec.higher_is_better else 1
    fixed = out["all"][["static", *(r.name(g) for g in r.grid)]]
    best = fixed.idxmax() if spec.higher_is_better else fixed.idxmin()
    policies = [k for k in out.index if k not in fixed.index]
    lgbm = {**LGBM_PARAMS, **r.params}  # what every fit uses: the project's, over-ridden
    rows = [len(f) for f in r.frames]
    print(f"\n{spec.name}: mean {spec.primary_metric} a batch, {len(months)} batches "
          f"{months[0]}..{months[-1]} of {min(rows)}-{max(rows)} rows (median "
          f"{int(pd.Series(rows).median())}), warm-up {r.warmup} batches, "
          f"{lgbm['n_estimators']} trees lr {lgbm['learning_rate']}")
    print(out.round(digits).to_string())
    print(f"best fixed: {best} {fixed[best]:.{digits + 1}f}")
    sign = 1 if spec.higher_is_better else -1
    print(f"each policy minus {best}, paired by batch: mean, 95% CI (t over the "
          f"{len(months)} per-batch differences), batches better")
    for name in policies:  # is the policy worse than the best, beyond noise? better?
        diff = table.loc[name] - table.loc[best]
        mean, half = diff.mean(), 1.96 * diff.std(ddof=1) / len(diff) ** 0.5
        print(f"  {name}: {mean:+.{digits + 1}f} ({mean - half:+.{digits + 1}f}.."
              f"{mean + half:+.{digits + 1}f}); better in {int((sign * diff > 0).sum())} "
              f"of {len(diff)}")
        log = logs.get(name, Counter())
        SUMMARY.append({"cell": CELL or spec.name, "policy": name, "best_fixed": best,
                        "best_fixed_mean": round(float(fixed[best]), digits + 1),
                        "policy_mean": round(float(out["all"][name]), digits + 1),
                        "diff": round(float(mean), digits + 2),
                        "ci": [round(float(mean - half), digits + 2),
                               round(float(mean + half), digits + 2)],
                        "better": int((sign * diff > 0).sum()), "batches": len(diff),
                        "insufficient": log.get("insufficient", 0) + log.get("blocked", 0),
                        "retrains": log.get("retrains", 0),
                        "promotions": log.get("promotions", 0),
                        "verdicts": {k: v for k, v in log.items()
                                     if not k.startswith("recipe ")}})
    for name, log in logs.items():
        counts = {k: v for k, v in log.items() if not k.startswith("recipe ")}
        recipes = {k[7:]: v for k, v in log.items() if k.startswith("recipe ")}
        print(f"{name}: {counts}; recipes {recipes}")
    print("seconds: " + ", ".join(
        f"{k} {v:.0f}" + (f" ({r.calls[k]} calls, {v / r.calls[k]:.2f} each)" if r.calls[k] else "")
        for k, v in r.seconds.items()))
    label = f"{spec.name} {spec.primary_metric}"
    return out.round(digits).rename(columns=lambda c: label if c == "all" else f"{label} {c}")


def run(name: str, data: Path | None, params: dict, freq: str = "M",
        warmup: int | None = None, policies: tuple[str, ...] = ("auto",),
        synthetic_rows: int | None = None) -> pd.DataFrame:
    r = Replay(name, data, freq, warmup, synthetic_rows)
    r.params = {**r.params, **params}
    scores = r.timed("fixed strategies", fixed_strategies, r)
    r.calls["fixed strategies"] = 0
    if not FIXED_ONLY:
        scores.update(leaf_refit_strategies(r))
        scores.update(no_gate_strategies(r))
    logs = {}
    with tempfile.TemporaryDirectory(prefix="greenlight-bench-") as tmp:
        for label in policies:
            scores[label], logs[label] = auto_policy(r, Path(tmp), label, AUTO[label])
    if TRACE:
        print_trace(r, scores)
    return report(r, scores, logs)


def print_trace(r: Replay, scores: dict[str, list[float]]) -> None:
    """Month by month: where the automatic policy loses to the fixed strategies, and why
    (did decide retrain, the gate's verdict and interval, how old the champion was)."""
    months = [b.label for b in r.batches[r.warmup:]]
    fixed = pd.DataFrame({k: v for k, v in scores.items() if not k.startswith("auto")},
                         index=months)
    for label, rows in r.trace.items():
        t = pd.DataFrame(rows).set_index("month").reindex(months)
        t = pd.concat([fixed.round(3), t], axis=1)
        print(f"\n{r.spec.name} trace, {label}:")
        print(t.to_string(float_format=lambda v: f"{v:.3f}"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="elec2,bike_sharing")
    parser.add_argument("--dataset", default=None,
                        help="one dataset with a spec under expectations/ (instead of --datasets)")
    parser.add_argument("--data", type=Path, default=None,
                        help="its data file, or the folder holding elec2/ and bike_sharing/ "
                             "(default ../shared/data)")
    parser.add_argument("--freq", default="M", help="batch cadence (see cut_batches)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="batches before the first scored one (default PROVENANCE's, or 4)")
    parser.add_argument("--trees", type=int, default=None,
                        help="override PROVENANCE's number of trees (both datasets)")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--gate-fraction", type=float, default=FLOW["gate_fraction"],
                        help="share of the month held out as the gate window")
    parser.add_argument("--policies", default=POLICIES,
                        help="the automatic policies to replay, separated by ;, of: "
                             + "; ".join(AUTO).replace("%", "%%"))  # argparse formats %
    parser.add_argument("--synthetic-rows", type=int, default=None,
                        help="--dataset synthetic: rows a batch (default 3000; 20 weekly "
                             "batches, the malformed one left out as the flow quarantines it)")
    parser.add_argument("--cell", default="", help="the cell's name in --json")
    parser.add_argument("--json", type=Path, default=None,
                        help="append each policy's paired difference to this JSONL file")
    parser.add_argument("--trace", action="store_true",
                        help="print every month: scores, decide, gate verdict, champion age")
    parser.add_argument("--fixed-only", action="store_true",
                        help="skip the leaf-refit and no-gate strategies (quicker): the "
                             "policies against the fixed grid alone")
    args = parser.parse_args(argv)
    global TRACE, FIXED_ONLY, CELL
    TRACE, FIXED_ONLY, CELL = args.trace, args.fixed_only, args.cell
    params = {k: v for k, v in (("n_estimators", args.trees),
                                ("learning_rate", args.learning_rate)) if v is not None}
    FLOW["gate_fraction"] = args.gate_fraction
    start = time.perf_counter()
    names = [args.dataset] if args.dataset else [n.strip() for n in args.datasets.split(",")]
    try:
        chosen = tuple(p.strip() for p in args.policies.split(";") if p.strip())
        unknown = [p for p in chosen if p not in AUTO]
        if unknown:
            raise ValueError(f"--policies: unknown {unknown}; known: {list(AUTO)}")
        tables = [run(name, args.data, params, args.freq, args.warmup, chosen,
                      args.synthetic_rows) for name in names]
    except ValueError as exc:  # an unknown dataset, a missing file, a bad cadence: one line
        raise SystemExit(f"error: {exc}") from None
    print("\nsummary (accuracy: higher is better; mae: lower is better)")
    print(pd.concat(tables, axis=1).to_string())
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f}s")
    if args.json is not None:
        import json

        with args.json.open("a") as out:
            for row in SUMMARY:
                out.write(json.dumps({**row, "seconds": round(total)}) + "\n")


if __name__ == "__main__":
    main()
