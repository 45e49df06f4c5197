"""The retrain sequence (recipe, train, gate, refit) as the flow and the adaptation
benchmark run it: a plain function on real data, without Prefect."""

import pandas as pd
import pytest

from core.steps import Steps
from flows.params import Training
from tasks.data.replay import SYNTHETIC_CHANGE_POINTS, synthetic_batch
from tasks.data.spec import load_spec
from tasks.gate.decide import Decision
from tasks.training.sequence import Calls, fixed_recipe, retrain_sequence
from tests.conftest import shipped_training

SPEC = load_spec("synthetic")
BATCH = "_batch_id"
FIRST = Decision("bootstrap", ["no champion yet"], frozenset({"bootstrap"}))
DRIFT = Decision("retrain", ["b: data drift"], frozenset({"data"}))


def history(*indexes, rows=1500):
    return pd.concat([synthetic_batch(i, rows=rows).frame.assign(**{BATCH: f"b{i}"})
                      for i in indexes], ignore_index=True)


def test_a_first_champion_is_backtested_trained_gated_and_refitted_on_every_row():
    rows, steps = history(0, 1, 2), Steps()
    gate_rows = int(0.3 * 1500)
    done = retrain_sequence(rows, SPEC, Training(), gate_rows=gate_rows, decision=FIRST,
                            champion=None, champion_until=None, batch_column=BATCH,
                            refit_if=lambda result: result.passed, steps=steps)
    assert done.blocked is None and done.result.verdict == "bootstrap"
    assert done.choice.reason and not done.choice.table.empty  # backtested, not fixed
    assert len(done.challenger.split.gate) == gate_rows
    assert done.challenger.params["refit"] is True and not done.refit_problems
    assert done.challenger.params["refit_rows"] <= len(rows)
    assert list(steps.timings) == ["recipe", "train", "gate", "estimator", "refit"]
    assert done.challenger.model.booster.num_trees() == 200  # one recipe: never light
    # the label-free estimator fitted on the gate window travels with the refit model
    assert done.challenger.model.performance and '"method": "cbpe"' in \
        done.challenger.model.performance


def test_a_challenger_on_newer_drifted_rows_must_be_beaten_and_is_not_refitted_if_unwanted():
    """Against a champion that saw only older rows and drift behind the retrain, the
    champion must prove itself (verdict refresh possible); `refit_if` False keeps the gated
    model, and a fixed recipe skips the backtest."""
    old = history(0, 1, 2)
    first = retrain_sequence(old, SPEC, Training(refit=False), gate_rows=450, decision=FIRST,
                             champion=None, champion_until=None, batch_column=BATCH,
                             refit_if=lambda result: True)
    change = SYNTHETIC_CHANGE_POINTS["covariate"]
    newer, steps = history(0, 1, 2, change), Steps()
    done = retrain_sequence(newer, SPEC, Training(half_life_days=30), gate_rows=450,
                            decision=DRIFT, champion=first.challenger.model,
                            champion_until=pd.Timestamp(first.challenger.params["train_end"]),
                            batch_column=BATCH, refit_if=lambda result: False, steps=steps)
    assert done.choice.best.half_life_days == 30 and "fixed" in done.choice.reason
    assert done.result.verdict in ("clear", "refresh", "marginal", "fail", "insufficient")
    assert done.result.champion is not None  # judged against the champion, same window
    assert done.challenger.params["refit"] is False
    # a passing challenger is judged on the champion's history (issue 31), then gets its
    # label-free estimator; no refit was wanted
    assert list(steps.timings) == ["train", "gate"] + (["history", "estimator"]
                                                       if done.result.passed else [])


def test_too_few_rows_for_a_first_champion_stop_before_the_backtest():
    calls = Calls(choose=lambda *a, **k: (_ for _ in ()).throw(AssertionError("backtested")))
    done = retrain_sequence(history(0, rows=40), SPEC, Training(), gate_rows=12,
                            decision=FIRST, champion=None, champion_until=None,
                            batch_column=BATCH, refit_if=lambda result: True, calls=calls)
    assert done.blocked and done.result is None


def test_a_recipe_is_fixed_by_the_parameters_or_left_to_the_backtest():
    assert fixed_recipe(SPEC, Training()) is None
    assert fixed_recipe(SPEC, Training(auto_recipe=False)).best.half_life_days == \
        SPEC.training.half_life_days
    assert fixed_recipe(SPEC, Training(window_days=90)).best.window_days == 90


def test_an_ensemble_challenger_is_weighted_by_the_backtest_and_gated_as_one_model():
    """The default, a leaf-refit ensemble: the backtest of the complete grid, each recipe
    also with its leaves refitted, on six folds, weights the members (never the gate
    window); the gate judges the one combined model; the refit refits every member and
    keeps the weights."""
    rows, steps = history(0, 1, 2), Steps()
    done = retrain_sequence(rows, SPEC, shipped_training(), gate_rows=450,
                            decision=FIRST, champion=None, champion_until=None,
                            batch_column=BATCH, refit_if=lambda result: result.passed,
                            steps=steps)
    weights = done.choice.weights
    assert len(weights) >= 2 and abs(sum(weights.values()) - 1) < 1e-9
    assert len(done.choice.table) == 20  # expanding, 4 windows, 5 half-lives; and refitted
    assert done.choice.table["refit_days"].notna().sum() == 10
    model = done.challenger.model
    # recipes that fit the same model (a window longer than the history) are one member
    assert len(model.members) <= len(weights)
    assert sum(w for _, w in model.members) == pytest.approx(1, abs=1e-12)
    assert len(done.members) == len(weights)
    gate = done.challenger.split.gate
    assert gate[SPEC.time_column].min() > max(m.split.train[SPEC.time_column].max()
                                              for m in done.members)
    assert done.result.verdict == "bootstrap" and done.challenger.params["refit"] is True
    assert [d["weight"] for d in done.challenger.params["members"]] == \
        [round(w, 4) for w in weights.values()]
    assert list(steps.timings) == ["recipe", "train", "gate", "estimator", "refit"]
    assert done.challenger.model.performance
    # light_refit: full members before the gate, light ones in the version served
    assert {m.model.booster.num_trees() for m in done.members} == {200}
    assert {m.booster.num_trees() for m, _ in model.members} == {50}


@pytest.mark.parametrize(("member_trees", "judged_trees"), [("light", 50), ("light_refit", 200)])
def test_light_members_are_served_with_a_quarter_of_the_trees(member_trees, judged_trees):
    """Training.member_trees light: each member a quarter of the trees at 4x the learning
    rate, before the gate and in the refit alike; light_refit: the gate and the history
    guard judge members with the model's own 200 trees, and only the refit on every row,
    the version served, is light. The version's params say what was served."""
    rows = history(0, 1, 2)
    done = retrain_sequence(rows, SPEC, shipped_training(member_trees=member_trees),
                            gate_rows=450, decision=FIRST, champion=None,
                            champion_until=None, batch_column=BATCH,
                            refit_if=lambda result: result.passed)
    assert len(done.members) >= 2 and done.challenger.params["refit"] is True
    assert {m.model.booster.num_trees() for m in done.members} == {judged_trees}
    assert {m.booster.num_trees() for m, _ in done.challenger.model.members} == {50}
    assert (done.challenger.params["n_estimators"],
            done.challenger.params["learning_rate"]) == (50, 0.2)
