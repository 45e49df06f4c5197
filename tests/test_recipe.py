"""The training recipe is chosen by backtest on the past only, and follows the stream."""

import json

import numpy as np
import pandas as pd
import pytest

from tasks.data.spec import DatasetSpec, TrainingDefaults
from tasks.training.recipe import CANDIDATES, Recipe, choose_recipe, fit_recipe, refit_challenger
from tasks.training.train import train_challenger

SPEC = DatasetSpec(name="t", time_column="ts", target="y", task="classification",
                   features=["x1", "x2", "x3"], primary_metric="accuracy", positive_class=1)
PER_DAY = 4
FAST = {"n_estimators": 30, "learning_rate": 0.2, "num_leaves": 8}


def stream(days=400, seed=0, flip_day=None, noise=0.3):
    """Six-hourly rows; y follows x1 (and an interaction) until `flip_day`, then its opposite."""
    rng = np.random.default_rng(seed)
    n = days * PER_DAY
    x = rng.normal(size=(n, 3))
    signal = x[:, 0] + 0.7 * x[:, 1] * x[:, 2] + rng.normal(0, noise, n)
    y = (signal > 0).astype(int)
    if flip_day is not None:
        y[flip_day * PER_DAY:] ^= 1
    ts = pd.date_range("2025-01-01", periods=n, freq="6h")
    return pd.DataFrame({"ts": ts, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y})


def test_recipe_names_and_the_default_grid():
    assert Recipe().name == "expanding"
    assert Recipe(60).name == "half-life 60d"
    assert Recipe(None, 90).name == "sliding 90d"
    assert {r.name for r in CANDIDATES} >= {"expanding", "half-life 14d", "half-life 180d",
                                            "sliding 30d", "sliding 90d", "sliding 180d"}
    assert Recipe().memory_days > Recipe(180).memory_days > Recipe(None, 30).memory_days


def test_a_recent_concept_flip_picks_a_short_memory():
    choice = choose_recipe(stream(flip_day=310), SPEC, fold_rows=20 * PER_DAY, params=FAST)
    assert choice.best.memory_days < 50, choice.table
    table = choice.table.set_index("recipe")
    assert table.loc["expanding", "mean"] < 0.5 < table.loc[choice.best.name, "mean"]


def test_a_stationary_stream_keeps_a_long_memory():
    choice = choose_recipe(stream(noise=0.6, seed=1), SPEC, fold_rows=30 * PER_DAY,
                           params=FAST)
    assert choice.best.memory_days >= 90, choice.table


def test_the_backtest_never_touches_rows_at_or_after_the_cutoff():
    past = stream(days=300, seed=2, flip_day=250)
    cutoff = past["ts"].iloc[-1] + pd.Timedelta(hours=6)
    future = stream(days=60, seed=3).assign(ts=lambda d: d.ts + (cutoff - d.ts.iloc[0]))
    future["y"] = 1 - future["y"]  # poisoned: it would change every score if it were used
    both = pd.concat([past, future], ignore_index=True).sample(frac=1, random_state=0)
    choice = choose_recipe(both, SPEC, fold_rows=15 * PER_DAY, params=FAST, before=cutoff)
    clean = choose_recipe(past, SPEC, fold_rows=15 * PER_DAY, params=FAST)
    assert all(pd.Timestamp(f["end"]) < cutoff for f in choice.folds)
    assert all(pd.Timestamp(f["train_end"]) < pd.Timestamp(f["start"]) for f in choice.folds)
    assert choice.folds[-1]["end"] == str(past["ts"].iloc[-1])  # the newest fold ends last
    pd.testing.assert_frame_equal(choice.table, clean.table)
    assert choice.best == clean.best


def test_too_little_history_falls_back_to_the_spec_default():
    spec = SPEC.model_copy(update={"training": TrainingDefaults(half_life_days=7)})
    choice = choose_recipe(stream(days=20), spec, fold_rows=40 * PER_DAY)
    assert choice.best == Recipe(7, None) and "spec default" in choice.reason
    json.dumps(choice.to_dict())


def test_choice_is_logged_as_a_table_and_a_dict():
    choice = choose_recipe(stream(days=200, seed=4), SPEC, params=FAST, folds=2,
                           candidates=(Recipe(), Recipe(30), Recipe(None, 60)))
    assert list(choice.table["recipe"]) == ["expanding", "half-life 30d", "sliding 60d"]
    assert {"fold_1", "fold_2", "mean"} <= set(choice.table.columns)
    record = json.loads(json.dumps(choice.to_dict()))
    assert record["recipe"] == choice.best.name and len(record["table"]) == 3
    assert record["table"][0]["mean"] == pytest.approx(choice.table["mean"].iloc[0])


def test_fit_recipe_refits_on_every_row_the_recipe_keeps(monkeypatch):
    seen = {}
    monkeypatch.setattr("tasks.training.recipe.fit",
                        lambda rows, spec, half_life, params=None, refit_days=None:
                        seen.update(rows=rows, half_life=half_life))
    rows = stream(days=100)
    fit_recipe(rows, SPEC, Recipe(14, 30))
    newest = rows["ts"].max()
    assert seen["half_life"] == 14 and seen["rows"]["ts"].max() == newest
    assert seen["rows"]["ts"].min() > newest - pd.Timedelta(days=30)
    fit_recipe(rows, SPEC, Recipe())
    assert len(seen["rows"]) == len(rows) and seen["half_life"] is None


def test_a_big_history_is_backtested_on_a_seeded_sample_with_the_same_choice():
    """Above max_rows the folds are fitted on a uniform sample (one rate for every row), so
    the backtest's cost stops growing with the history; the choice is the one the whole
    history gives, the folds still describe the whole windows, and the reason says so."""
    data = stream(flip_day=310)
    whole = choose_recipe(data, SPEC, fold_rows=20 * PER_DAY, params=FAST)
    sampled = choose_recipe(data, SPEC, fold_rows=20 * PER_DAY, params=FAST, max_rows=1000)
    again = choose_recipe(data, SPEC, fold_rows=20 * PER_DAY, params=FAST, max_rows=1000)
    assert sampled.best.memory_days < 50 and whole.best.memory_days < 50
    assert [f["rows"] for f in sampled.folds] == [f["rows"] for f in whole.folds]
    assert "seeded sample of 1000 of 1600 rows" in sampled.reason
    assert sampled.table.equals(again.table)  # seeded: the same rows every time


def test_refit_challenger_learns_the_gate_window_too_and_says_so():
    rows = stream(days=120, seed=5).assign(batch=lambda d: d.ts.dt.strftime("%Y-%m"))
    gated = train_challenger(rows, SPEC, gate_rows=40 * PER_DAY, half_life_days=None,
                             window_days=60, reference_rows=200, batch_column="batch")
    full, problems = refit_challenger(gated, rows, SPEC, Recipe(None, 60), gated.model,
                                      reference_rows=200, batch_column="batch")
    assert not problems and full.model is not gated.model
    assert gated.params["trained_until"] < str(gated.split.gate["ts"].min())
    assert full.params["trained_until"] == str(rows["ts"].max()) and full.params["refit"]
    assert full.params["refit_rows"] == 60 * PER_DAY  # the recipe's window, gate included
    assert full.reference["ts"].max() == rows["ts"].max()  # drift is judged against now
    assert full.batch_set == gated.batch_set  # same data and recipe: registers once


def test_a_refit_that_fails_its_sanity_checks_keeps_the_gated_model():
    rows = stream(days=120, seed=5).assign(batch="b")
    gated = train_challenger(rows, SPEC, gate_rows=40 * PER_DAY, half_life_days=None,
                             window_days=None, reference_rows=200, batch_column="batch")
    flat = rows.assign(y=1)  # a refit that can only say one thing
    kept, problems = refit_challenger(gated, flat, SPEC, Recipe(), gated.model,
                                      reference_rows=200, batch_column="batch")
    assert kept is gated and any("constant" in p for p in problems)


def test_the_backtest_scores_every_candidate_as_its_own_fit_would():
    """Shared Datasets, one fit per distinct rows and half-life (a leaf refit reusing its
    booster), and threads are speed only: each score is the one `fit` + `evaluate` give for
    that candidate and fold."""
    from tasks.training.backtest import BACKTEST_PARAMS, MIN_TRAIN_ROWS, _backtest, _fold_bounds
    from tasks.training.evaluate import evaluate
    from tasks.training.train import fit, split_gate_window

    data = stream(days=200, seed=4, flip_day=150)
    settings = {**BACKTEST_PARAMS, "random_state": 0, **FAST}
    bounds = _fold_bounds(len(data), 3, 20 * PER_DAY)
    candidates = (*CANDIDATES, Recipe(7, 56), Recipe(None, 1000), Recipe(None, None, 20),
                  Recipe(30, None, 20), Recipe(7, 56, 10))
    scores = _backtest(data, SPEC, candidates, bounds, settings)
    for recipe in candidates:
        for (start, end), score in zip(bounds, scores[recipe], strict=True):
            split = split_gate_window(data.iloc[:end], SPEC, end - start, recipe.window_days)
            if len(split.train) < MIN_TRAIN_ROWS:
                assert np.isnan(score)
                continue
            model = fit(split.train, SPEC, recipe.half_life_days, settings,
                        refit_days=recipe.refit_days)
            assert score == evaluate(model, split.gate, SPEC)["accuracy"], recipe


def test_the_recipe_choice_records_the_seconds_it_took(monkeypatch):
    """`seconds` is the whole backtest's duration (a fold's row index once overwrote it)."""
    from types import SimpleNamespace

    import tasks.training.recipe as recipe

    clock = iter(range(0, 10_000, 100))  # the recipe module's clock only
    monkeypatch.setattr(recipe, "time", SimpleNamespace(perf_counter=lambda: float(next(clock))))
    choice = choose_recipe(stream(days=120, seed=6), SPEC, fold_rows=20 * PER_DAY, params=FAST)
    assert not choice.table.empty  # the backtest ran
    assert choice.seconds == 100.0  # one reading at the start, one at the end
    assert choice.to_dict()["seconds"] == 100.0


CAT_SPEC = DatasetSpec(name="c", time_column="ts", target="y", task="classification",
                       features=["x1", "c"], categorical_features=["c"],
                       primary_metric="accuracy", positive_class=1)


@pytest.mark.parametrize("labels", ["int", "float"])
def test_the_backtest_encodes_once_and_scores_as_each_fold_would_alone(labels):
    """Categories are coded once over every row and renumbered per fold: a value that first
    appears late (unseen by the early folds' fits), a value gone later, and missing values
    each score as `fit` on that fold's rows alone scores them; float labels with a fraction
    are labelled per fold, as `binary_target` labels each fold."""
    from tasks.training.backtest import (
        BACKTEST_PARAMS,
        MIN_TRAIN_ROWS,
        _backtest,
        _fold_bounds,
        _fold_rows,
    )
    from tasks.training.evaluate import evaluate
    from tasks.training.train import _renumbered, encode_rows, fit, split_gate_window

    data = stream(days=200, seed=5, flip_day=160)
    n = len(data)
    rng = np.random.default_rng(5)
    c = rng.choice(["m", "k", "a"], n).astype(object)
    c[: n // 3][rng.random(n // 3) < 0.5] = "z"  # gone after the first third
    c[-n // 10:][rng.random(n // 10) < 0.5] = "b"  # only in the newest fold
    c[rng.random(n) < 0.05] = None
    data["c"] = c
    data["y"] = np.where(data["c"] == "b", 1 - data["y"], data["y"])
    if labels == "float":
        data["y"] = data["y"].astype(float)
        data.loc[3, "y"] = 0.5  # no class: binary_target keeps the column's floats
    settings = {**BACKTEST_PARAMS, "random_state": 0, **FAST}
    bounds = _fold_bounds(n, 3, 20 * PER_DAY)
    candidates = (Recipe(), Recipe(30), Recipe(None, 30), Recipe(7, 56))
    scores = _backtest(data, CAT_SPEC, candidates, bounds, settings)
    for recipe in candidates:
        for (start, end), score in zip(bounds, scores[recipe], strict=True):
            split = split_gate_window(data.iloc[:end], CAT_SPEC, end - start, recipe.window_days)
            if len(split.train) < MIN_TRAIN_ROWS:
                assert np.isnan(score)
                continue
            model = fit(split.train, CAT_SPEC, recipe.half_life_days, settings)
            assert score == evaluate(model, split.gate, CAT_SPEC)["accuracy"], recipe
            # LightGBM bins categories by count, so codes renumbered one-to-one would score
            # the same: check the frames themselves are the ones `fit` encodes.
            rows = _fold_rows(data["ts"], start, end, recipe.window_days)
            X, X_score = _renumbered(encode_rows(data, CAT_SPEC), *rows)
            for ours, theirs in ((X, split.train), (X_score, split.gate)):
                pd.testing.assert_frame_equal(ours.reset_index(drop=True), model.encode(theirs))


def _batched(freq: str, years: int = 6, rows_per_day: int = 1) -> pd.DataFrame:
    """Daily (or finer) rows over `years`, labelled with their calendar `freq` batch."""
    times = pd.date_range("2000-01-01", periods=int(365.25 * years) * rows_per_day,
                          freq=f"{24 // rows_per_day}h")
    batch = pd.Series(times).dt.to_period(freq).astype(str)
    return pd.DataFrame({"ts": times, "batch": batch.to_numpy(), "y": 1})


@pytest.mark.parametrize(("freq", "months"), [("W", 1), ("M", 1), ("Q", 3), ("Y", 12)])
def test_the_batches_own_span_sets_the_scale_of_the_grid(freq, months):
    """"Your own data": yearly batches met a grid that stopped at 180 days and chose
    expanding 36 times of 38. The grid is in batches now: monthly and finer keep today's
    days exactly (the demo's weekly verdicts stay), coarser ones scale it."""
    from tasks.training.recipe import batch_months, candidates_for, grid_for

    frame = _batched(freq)
    assert batch_months(frame, SPEC, "batch") == months
    grid = grid_for(months)
    assert len(grid) == len(CANDIDATES)
    assert [r.half_life_days for r in grid] == [
        None if r.half_life_days is None else r.half_life_days * months for r in CANDIDATES]
    assert [r.window_days for r in grid] == [
        None if r.window_days is None else r.window_days * months for r in CANDIDATES]
    if months == 1:
        assert grid == CANDIDATES
    else:  # windows of 1, 3 and 6 batches, whatever a batch is
        windows = sorted(r.window_days for r in grid if r.window_days)
        assert windows == [30 * months, 90 * months, 180 * months]
    spec = SPEC.model_copy(update={"training": TrainingDefaults(window_days=90)})
    assert Recipe(None, 90) in candidates_for(spec, months)  # the spec's own stays a candidate


def test_without_batches_the_grid_is_todays():
    from tasks.training.recipe import batch_months

    assert batch_months(_batched("Y"), SPEC, None) == 1
    assert batch_months(_batched("Y"), SPEC, "no such column") == 1
    assert batch_months(_batched("Y").head(0), SPEC, "batch") == 1
    hourly_quarters = _batched("Q", years=1, rows_per_day=24)
    assert batch_months(hourly_quarters, SPEC, "batch") == 3


def test_ensemble_weights_are_a_softmax_of_the_backtest_loss():
    """exp(-loss / (tau * best loss)), tiny weights dropped: accuracy as 1 - accuracy, so a
    recipe 5% worse in loss gets 1/e of the best's weight at tau 0.05."""
    import math

    from tasks.training.recipe import RecipeChoice, ensemble_weights

    table = pd.DataFrame({"recipe": ["expanding", "half-life 30d", "sliding 30d", "x"],
                          "half_life_days": [None, 30.0, None, 7.0],
                          "window_days": [None, None, 30.0, None],
                          "mean": [0.80, 0.79, 0.50, float("nan")]})
    spec = SPEC
    choice = RecipeChoice(Recipe(), table, spec.primary_metric)
    weights = ensemble_weights(choice, spec, tau=0.05)
    assert list(weights) == [Recipe(), Recipe(30)]  # 0.50 is far too poor, NaN unscored
    ratio = weights[Recipe(30)] / weights[Recipe()]
    assert math.isclose(ratio, math.exp(-0.01 / (0.05 * 0.2)), rel_tol=1e-9)
    assert ensemble_weights(RecipeChoice(Recipe(60), pd.DataFrame(), "accuracy"), spec) == {
        Recipe(60): 1.0}


def test_the_complete_grid_is_in_batches():
    from tasks.training.recipe import MONTH_DAYS, batch_grid

    grid = batch_grid(MONTH_DAYS)
    assert grid[0] == Recipe() and len(grid) == 10
    assert [r.window_days for r in grid[1:5]] == [round(k * MONTH_DAYS, 2) for k in (1, 3, 6, 12)]
    assert [r.half_life_days for r in grid[5:]] == [
        round(k * MONTH_DAYS, 2) for k in (0.5, 1, 2, 4, 8)]
