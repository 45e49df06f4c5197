"""Probation after a promotion, on a real MLflow store: a worse champion is rolled back by
itself and the move is recorded as `auto-rollback`; one that holds is baked after its span."""

import numpy as np
import pandas as pd
import pytest

from registry import probation, promote, register, versions
from registry.store import Registry
from tasks.data.spec import DatasetSpec
from tasks.gate.probation import judge
from tasks.training.train import fit

SPEC = DatasetSpec(name="t", time_column="ts", target="y", task="classification",
                   features=["x"], primary_metric="accuracy", positive_class=1)


def _rows(n: int, seed: int, flip: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=n, freq="h"),
                       "x": rng.normal(size=n)})
    df["y"] = ((df.x > 0) != flip).astype(int)  # flip: a model that learned it backwards
    return df


def _version(reg: Registry, rows: pd.DataFrame, batch_set: str) -> int:
    model = fit(rows, SPEC, None)
    sample = model.example(rows.head(3))
    return register.register(reg, python_model=model, input_example=sample,
                             output_example=model.predict(None, sample), reference=rows,
                             batch_set=batch_set, params={}, metrics={}, tags={},
                             experiment="t-training").version


def _promoted_pair(reg: Registry, bad: bool) -> tuple[int, int]:
    """A good champion, then a challenger promoted over it (a bad one if `bad`)."""
    good = _version(reg, _rows(600, 0), "a")
    promote.promote(reg, good, reason="first")
    new = _version(reg, _rows(600, 1, flip=bad), "b")
    promote.promote(reg, new, reason="approved", by="someone", expected_from=good)
    return good, new


def test_a_worse_champion_is_rolled_back_by_itself_and_says_why(reg):
    good, bad = _promoted_pair(reg, bad=True)
    on = probation.current(reg)
    assert on is not None and on.version == bad and on.previous == good and on.judged == []
    verdict = judge(versions.load_model(reg, bad), versions.load_model(reg, good),
                    _rows(400, 2), SPEC, min_delta=0.005, min_rows=200)
    assert verdict.action == "rollback" and "@previous is better" in verdict.reason
    record = probation.auto_rollback(reg, bad, dataset="t", reason=verdict.reason,
                                     batches=["W10"], figures=verdict.figures)
    assert versions.aliases(reg)[promote.CHAMPION] == good
    assert versions.aliases(reg)[promote.PREVIOUS] == bad
    assert record["action"] == "auto-rollback" and record["from"] == bad
    assert record["batches"] == ["W10"] and record["metrics"]["previous"] > 0.9
    assert probation.current(reg) is None  # a rollback is not put on probation
    with pytest.raises(promote.PromotionError):  # twice: the champion moved meanwhile
        probation.auto_rollback(reg, bad, dataset="t", reason="again", batches=[],
                                figures={})
    refused = probation.try_auto_rollback(reg, bad, dataset="t", reason="again", batches=[],
                                          figures={})
    assert f"champion already rolled back from v{bad} to v{good} by greenlight" in refused[
        "refused"]
    assert versions.aliases(reg)[promote.CHAMPION] == good  # a refusal moves nothing


def test_one_as_good_holds_then_is_baked_after_its_span(reg):
    good, new = _promoted_pair(reg, bad=False)
    champion, previous = versions.load_model(reg, new), versions.load_model(reg, good)
    for i, batch in enumerate(["W10", "W11"]):
        on = probation.current(reg)
        verdict = judge(champion, previous, _rows(300, 10 + i), SPEC, min_delta=0.005,
                        min_rows=200, span_over=on.over(2, None))
        assert verdict.action == "hold"
        probation.checked(reg, new, batches=[batch], reason=verdict.reason,
                          figures=verdict.figures)
    on = probation.current(reg)
    assert on.judged == ["W10", "W11"] and on.over(2, None)
    verdict = judge(champion, previous, _rows(300, 12), SPEC, min_delta=0.005,
                    min_rows=200, span_over=True)
    assert verdict.action == "baked"
    probation.bake(reg, new, batches=["W12"], reason=verdict.reason, figures=verdict.figures)
    assert probation.current(reg) is None
    assert versions.aliases(reg)[promote.CHAMPION] == new


def test_a_negative_gate_margin_never_rolls_back_a_better_champion(reg):
    """`training.min_delta=-1` lets any challenger through the gate; it must not let a
    worse @previous take the champion's place (it did: found by the races e2e test)."""
    good, bad = _promoted_pair(reg, bad=True)  # here @previous (bad) is the worse one
    promote.rollback(reg, reason="swap the roles", expected_from=bad)
    promote.promote(reg, bad, reason="and back", expected_from=good)
    promote.promote(reg, good, reason="good is champion again", expected_from=bad)
    verdict = judge(versions.load_model(reg, good), versions.load_model(reg, bad),
                    _rows(400, 2), SPEC, min_delta=-1.0, min_rows=200)
    assert verdict.action == "hold", verdict


def test_failing_served_predictions_roll_back_without_labels(reg):
    good, new = _promoted_pair(reg, bad=False)
    unlabelled = _rows(300, 20).assign(y=np.nan)
    verdict = judge(versions.load_model(reg, new), versions.load_model(reg, good), unlabelled,
                    SPEC, min_delta=0.005, min_rows=200, failed_share=0.2, max_failed=0.05)
    assert verdict.action == "rollback" and "20.0% of its served predictions failed" in \
        verdict.reason


def test_the_batches_a_promotion_was_decided_on_are_never_evidence_about_it(reg):
    """A crash after the promote step leaves its batch pending: the re-run must not judge
    the new champion on the rows it was trained and gated on."""
    from tasks.gate.probation import new_rows

    good = _version(reg, _rows(600, 0), "a")
    promote.promote(reg, good, reason="first")
    new = _version(reg, _rows(600, 1), "b")
    promote.promote(reg, new, reason="gate clear", expected_from=good, batches=["W09"])
    on = probation.current(reg)
    assert on.decided_on == ["W09"]
    frames = {"W09": _rows(300, 3), "W10": _rows(300, 4)}
    rows, _, batches = new_rows(frames, SPEC, on.judged + on.decided_on)
    assert batches == ["W10"] and len(rows) == 300


def test_a_first_champion_is_not_on_probation(reg):
    """With no champion before it there is nothing to judge it against: `status` must not
    say "judged against vNone" (found by a first cycle from a SQL table)."""
    first = _version(reg, _rows(600, 0), "a")
    promote.promote(reg, first, reason="first")
    assert probation.current(reg) is None
