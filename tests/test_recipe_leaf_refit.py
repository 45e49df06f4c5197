"""A recipe may refit its booster's leaves on the newest batch (Recipe.refit_days): a long
memory's trees with the newest levels, still one booster, backtested, trained and served
like any recipe. On real data: Bike Sharing's demand grows in 2012."""

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from flows.params import Training
from tasks.data import replay as sources
from tasks.data.spec import load_spec
from tasks.gate.decide import Decision
from tasks.training.recipe import MONTH_DAYS, Recipe, RecipeChoice, choose_before_gate
from tasks.training.sequence import Calls, retrain_sequence
from tests.conftest import shared_file

BIKE = load_spec("bike_sharing")
FIRST = Decision("bootstrap", ["no champion yet"], frozenset({"bootstrap"}))


def bike(until: str) -> pd.DataFrame:
    frame = sources.load_dataset("bike_sharing",
                                 shared_file(*sources.DATA_FILES["bike_sharing"]))
    return frame[frame[BIKE.time_column] < pd.Timestamp(until)].reset_index(drop=True)


def test_a_leaf_refit_follows_growing_demand_with_the_long_memorys_trees(tmp_path):
    """Expanding memory up to April 2012 underestimates April's demand (2011's level
    weighs as much as 2012's); the same trees with leaves refitted on the newest month
    are far closer, and the model stays one booster of as many trees, which is what the
    registered version saves and serves."""
    from tasks.training.evaluate import evaluate
    from tasks.training.recipe import fit_recipe

    rows = bike("2012-05-01")
    month = rows[BIKE.time_column] >= pd.Timestamp("2012-04-01")
    past, april = rows[~month], rows[month]
    plain = fit_recipe(past, BIKE, Recipe())
    refit = fit_recipe(past, BIKE, Recipe(refit_days=round(MONTH_DAYS, 2)))
    mae_plain = evaluate(plain, april, BIKE)["mae"]
    mae_refit = evaluate(refit, april, BIKE)["mae"]
    assert mae_refit < 0.85 * mae_plain, (mae_plain, mae_refit)
    assert refit.members == [] and refit.booster.num_trees() == plain.booster.num_trees()
    _, artifacts = refit.as_files(tmp_path)
    served = lgb.Booster(model_file=artifacts["booster"])
    assert np.array_equal(served.predict(refit.encode(april), num_threads=1),
                          refit.score(april))


def test_the_backtest_offers_each_recipe_with_and_without_a_leaf_refit():
    """leaf_refit doubles the grid with the newest batch's refit; the refits score
    differently from their plain twins, and the table says which is which."""
    rows = bike("2011-07-01").assign(_batch=lambda d: d[BIKE.time_column].dt.strftime("%Y-%m"))
    plain = choose_before_gate(rows, BIKE, gate_rows=200, batch_column="_batch")
    both = choose_before_gate(rows, BIKE, gate_rows=200, batch_column="_batch",
                              leaf_refit=True)
    assert len(both.table) == 2 * len(plain.table)
    twins = both.table[both.table["refit_days"].notna()]
    assert len(twins) == len(plain.table) and twins["recipe"].str.contains("leaves refit").all()
    assert not np.allclose(twins["mean"].to_numpy(),
                           both.table[both.table["refit_days"].isna()]["mean"].to_numpy())
    pd.testing.assert_frame_equal(both.table[both.table["refit_days"].isna()]
                                  .drop(columns="refit_days").reset_index(drop=True),
                                  plain.table.drop(columns="refit_days"))


def test_the_flow_trains_gates_and_refits_a_leaf_refit_recipe_as_one_version():
    """Training.leaf_refit asks the backtest for the doubled grid; a chosen leaf refit is
    trained with it before the gate and refitted with it after, and says so in the
    version's params and recipe name."""
    rows = bike("2011-05-01").assign(_batch=lambda d: d[BIKE.time_column].dt.strftime("%Y-%m"))
    chosen = Recipe(None, 91.31, 30.44)
    asked = {}

    def choose(*args, **kwargs) -> RecipeChoice:
        asked.update(kwargs)
        return RecipeChoice(chosen, pd.DataFrame(), BIKE.primary_metric, reason="test")
    done = retrain_sequence(rows, BIKE, Training(leaf_refit=True), gate_rows=200,
                            decision=FIRST, champion=None, champion_until=None,
                            batch_column="_batch", refit_if=lambda result: result.passed,
                            calls=Calls(choose=choose))
    assert asked["leaf_refit"] is True
    assert done.result.passed and done.challenger.params["refit"] is True
    assert done.challenger.params["refit_days"] == 30.44
    assert done.choice.best.name == "sliding 91.31d, leaves refit on 30.44d"
    assert done.challenger.model.members == []


def test_an_ensemble_fits_each_recipes_trees_once_and_its_leaf_refit_from_them(monkeypatch):
    """The default ensemble holds most recipes twice, plain and leaf-refitted: the twin
    reuses its plain recipe's trees, before the gate and in the refit, and scores exactly
    as a fit of its own would."""
    from tasks.training import train as training
    from tasks.training.recipe import fit_recipe

    rows = bike("2011-09-01").assign(_batch=lambda d: d[BIKE.time_column].dt.strftime("%Y-%m"))
    plain, twin = Recipe(None, 91.31), Recipe(None, 91.31, 30.44)
    fresh = fit_recipe(rows, BIKE, twin)
    reused = training.with_refit_leaves(fit_recipe(rows, BIKE, plain),
                                        rows[rows[BIKE.time_column] > rows[BIKE.time_column]
                                             .max() - pd.Timedelta(days=91.31)], BIKE, 30.44)
    assert np.array_equal(reused.score(rows), fresh.score(rows))

    fits = []
    real_fit = training.fit

    def counted(*args, **kwargs):
        fits.append(kwargs.get("refit_days"))
        return real_fit(*args, **kwargs)

    def choose(*args, **kwargs) -> RecipeChoice:
        return RecipeChoice(plain, pd.DataFrame(), BIKE.primary_metric, reason="test",
                            weights={twin: 0.6, plain: 0.4})
    import tasks.training.recipe as recipe_module
    monkeypatch.setattr(training, "fit", counted)
    monkeypatch.setattr(recipe_module, "fit", counted)
    # full members: the served members are compared with full fits (light_refit's own
    # shape is tests/test_sequence.py's)
    done = retrain_sequence(rows, BIKE, Training(member_trees="full"), gate_rows=200,
                            decision=FIRST,
                            champion=None, champion_until=None, batch_column="_batch",
                            refit_if=lambda result: result.passed, calls=Calls(choose=choose))
    assert fits == [None, None]  # one fit before the gate, one in the refit: no twin fits
    assert done.result.passed and [d.get("refit_days") for d in
                                   done.challenger.params["members"]] == [30.44, None]
    assert np.array_equal(done.challenger.model.members[0][0].score(rows), fresh.score(rows))


def test_an_ensemble_fits_a_window_that_keeps_every_row_once_as_expanding(monkeypatch):
    """On a short history the complete grid's long windows keep every row: they are the
    expanding model under another name, fitted once before the gate and once in the refit,
    each member still named and weighted as its own recipe."""
    from tasks.training import train as training
    from tasks.training.recipe import fit_recipe

    rows = bike("2011-06-01").assign(_batch=lambda d: d[BIKE.time_column].dt.strftime("%Y-%m"))
    expanding, year, month = Recipe(), Recipe(None, 365.25), Recipe(None, 30.44)
    fits = []
    real_fit = training.fit

    def counted(*args, **kwargs):
        fits.append(len(args[0]))
        return real_fit(*args, **kwargs)

    def choose(*args, **kwargs) -> RecipeChoice:
        return RecipeChoice(expanding, pd.DataFrame(), BIKE.primary_metric, reason="test",
                            weights={expanding: 0.5, year: 0.3, month: 0.2})
    import tasks.training.recipe as recipe_module
    monkeypatch.setattr(training, "fit", counted)
    monkeypatch.setattr(recipe_module, "fit", counted)
    # full members: the served members are compared with full fits (light_refit's own
    # shape is tests/test_sequence.py's)
    done = retrain_sequence(rows, BIKE, Training(member_trees="full"), gate_rows=200,
                            decision=FIRST,
                            champion=None, champion_until=None, batch_column="_batch",
                            refit_if=lambda result: result.passed, calls=Calls(choose=choose))
    assert len(fits) == 4  # expanding and the month, before the gate and in the refit
    assert max(fits) == len(rows) and sorted(fits)[-2] == len(rows) - 200
    members = done.challenger.model.members
    assert [m["window_days"] for m in done.challenger.params["members"]] == [None, 365.25,
                                                                          30.44]
    assert [w for _, w in members] == pytest.approx([0.8, 0.2])  # one model, two recipes
    assert np.array_equal(members[0][0].score(rows), fit_recipe(rows, BIKE, year).score(rows))


@pytest.mark.parametrize("tz", [None, "Europe/London"])
def test_the_rows_a_recipe_keeps_are_counted_as_the_split_and_the_window_cut_them(tz):
    """`fit_once`'s key counts the rows on sorted times alone: for every window of the
    complete grid (days with fractions) and gate size, what split_gate_window and
    recipe_rows keep, on real hourly rows, shuffled and in a time zone too."""
    from tasks.training.recipe import batch_grid, recipe_rows
    from tasks.training.sequence import rows_kept, sorted_times
    from tasks.training.train import split_gate_window

    rows = bike("2011-09-01")
    if tz:
        rows[BIKE.time_column] = rows[BIKE.time_column].dt.tz_localize(tz, ambiguous="NaT",
                                                                       nonexistent="NaT")
        rows = rows[rows[BIKE.time_column].notna()]
    shuffled = rows.sample(frac=1, random_state=0)
    times = sorted_times(shuffled, BIKE)
    for recipe in (*batch_grid(MONTH_DAYS), *batch_grid(7.0), Recipe(None, 0.5)):
        for gate_rows in (0, 200, 1000):
            expected = len(split_gate_window(shuffled, BIKE, gate_rows, recipe.window_days).train)
            assert rows_kept(times, gate_rows, recipe.window_days) == expected, (recipe, gate_rows)
        assert rows_kept(times, 0, recipe.window_days) == len(recipe_rows(rows, BIKE, recipe))
