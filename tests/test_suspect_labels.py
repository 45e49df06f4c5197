"""Issue 31 goal 3: poisoned labels never become champion.

A batch with valid features and a plausible label share, whose labels were flipped, shifted
by one row or taken from another week's rows, is held as suspect by the real cycle
(tasks/monitoring/suspect.py), alone or beside a clean batch; a challenger that learned
such labels anyway (released by a person, or beside drifting features) is refused by the
history guard (tasks/gate/history.py). The real cycle on a copy of the session's
bootstrapped champion (v1, synthetic week 0), with the shipped suite and real MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli.views import cycle_line
from flows.cycle import cycle, registry_for
from flows.params import Training
from registry import versions
from tasks.data import manifest
from tasks.data.home import Home
from tasks.data.replay import Batch, synthetic_batch, write_batch
from tasks.data.spec import load_spec
from tasks.gate.decide import Decision
from tasks.gate.history import judged_rows
from tasks.training.recipe import Recipe, fit_recipe
from tasks.training.sequence import retrain_sequence

SPEC = load_spec("synthetic")
TARGET = SPEC.target
# The shipped defaults, spelled out: the test tiers pin the best recipe (tests/conftest.py)
DEFAULTS = Training(recipe_mode="ensemble", leaf_refit=True, backtest_folds=6,
                    ensemble_tau=0.1)


def poisoned(index: int, how: str) -> pd.DataFrame:
    """Week `index` with its labels flipped, shifted by one row, or another week's."""
    frame = synthetic_batch(index).frame
    y = frame[TARGET]
    if how == "flipped":
        return frame.assign(**{TARGET: 1 - y})
    if how == "shifted":
        return frame.assign(**{TARGET: np.roll(y.to_numpy(), 1)})
    other = synthetic_batch(index + 7).frame[TARGET].dropna().to_numpy()  # labelled rows
    return frame.assign(**{TARGET: np.where(y.isna(), np.nan, np.resize(other, len(frame)))})


def _land(home: Path, name: str, frame: pd.DataFrame) -> str:
    return write_batch(Batch(name, frame), Home(home).landing).name


def _champion(home: Path) -> int:
    return versions.aliases(registry_for(Home(home), SPEC))["champion"]


@pytest.mark.parametrize("how", ["flipped", "shifted", "foreign"])
def test_a_poisoned_batch_is_held_as_suspect(champion_home, how):
    file = _land(champion_home, f"week-01-{how}", poisoned(1, how))
    out = cycle(dataset="synthetic", policy="auto", home=str(champion_home))
    line = cycle_line(out, "synthetic")
    print(f"LINE[{how}]", line)  # for the record (pytest -s)
    (held,) = out["held"]
    assert file in held and "labels suspect" in held and "greenlight release" in held
    assert out["batches"] == [] and "promoted_version" not in out
    assert _champion(champion_home) == 1
    record = next(b for b in manifest.load(Home(champion_home).manifest).values()
                  if b.get("file") == file)
    assert record["status"] == manifest.HELD and "decision" not in record
    assert line.startswith("synthetic: nothing new to decide on; held batch"), line


def _history(how: str | None) -> pd.DataFrame:
    """Weeks 0 and 1 clean, then week 2 clean or poisoned, with their batch ids."""
    frames = [synthetic_batch(i).frame.assign(_batch_id=f"b{i}") for i in range(2)]
    newest = (synthetic_batch(2).frame if how is None else poisoned(2, how))
    history = pd.concat([*frames, newest.assign(_batch_id="b2")], ignore_index=True)
    return history[history[TARGET].notna()]


def _retrain(history: pd.DataFrame):
    """The champion learned week 0 and was judged on week 1; the challenger retrains on
    all three weeks."""
    first = history[history["_batch_id"] == "b0"]
    return retrain_sequence(
        history, SPEC, DEFAULTS, gate_rows=900,
        decision=Decision("retrain", ["decay"], frozenset({"decay"})),
        champion=fit_recipe(first, SPEC, Recipe()),
        champion_until=first[SPEC.time_column].max(), batch_column="_batch_id",
        refit_if=lambda result: False)


def test_the_history_guard_refuses_a_challenger_that_learned_flipped_labels():
    """The gate on the flipped week alone says clear by tens of percent; on week 1, which
    the champion was judged on without learning it, the champion is proven better, so the
    verdict is a fail that says why. A clean week 2 is not refused by it."""
    done = _retrain(_history("flipped"))
    assert not done.result.passed and done.result.verdict == "fail"
    assert done.result.reason.startswith("fail: history: the champion is proven better on "
                                         "the "), done.result.reason
    assert "the gate on the newest rows said clear" in done.result.reason
    assert done.result.gain > 0.2  # the gate's own figures on the new rows are kept
    clean = _retrain(_history(None))
    assert "history" not in clean.result.reason


def test_judged_rows_are_the_batches_before_the_new_ones():
    history = _history(None)
    rows = judged_rows(history, SPEC, "_batch_id")
    assert set(rows["_batch_id"]) == {"b1"}
    assert set(judged_rows(history, SPEC, "_batch_id", ["b1", "b2"])["_batch_id"]) == {"b0"}
    first_end = history.loc[history["_batch_id"] == "b0", SPEC.time_column].max()
    assert judged_rows(history, SPEC, "_batch_id", ["b1", "b2"], after=first_end).empty


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["flipped", "shifted", "foreign"])
def test_a_poisoned_batch_beside_a_clean_one_is_held_and_the_clean_one_taken(champion_home,
                                                                             how):
    bad = _land(champion_home, f"week-01-{how}", poisoned(1, how))
    good = _land(champion_home, "week-02-clean", synthetic_batch(2).frame)
    out = cycle(dataset="synthetic", policy="auto", home=str(champion_home))
    line = cycle_line(out, "synthetic")
    print(f"LINE[{how} beside clean]", line)
    (held,) = out["held"]
    assert bad in held and "labels suspect" in held, line
    assert out["files"] == [good] and out["decision"], line
    champion = versions.by_alias(registry_for(Home(champion_home), SPEC), "champion")
    batches = manifest.load(Home(champion_home).manifest)
    (record,) = [b for b in batches.values() if b.get("file") == bad]
    assert record["status"] == manifest.HELD
    assert record["id"] not in champion.tags.get("greenlight.batch_ids", "")


@pytest.mark.e2e
def test_a_released_flipped_batch_is_refused_by_the_history_guard(champion_home):
    """Week 1 is judged clean; week 2, flipped, is held; a person releases it: the next
    cycle retrains on it, the gate on its flipped rows says clear, and the history guard
    fails the challenger on week 1; v1 stays."""
    _land(champion_home, "week-01-clean", synthetic_batch(1).frame)
    cycle(dataset="synthetic", policy="auto", home=str(champion_home))
    file = _land(champion_home, "week-02-flipped", poisoned(2, "flipped"))
    cycle(dataset="synthetic", policy="auto", home=str(champion_home))
    state = Home(champion_home)
    (held,) = [b for b in manifest.load(state.manifest).values() if b.get("file") == file]
    manifest.release(state.manifest, held["id"], by="alice", reason="looks fine to me")
    out = cycle(dataset="synthetic", policy="auto", home=str(champion_home), training=DEFAULTS)
    line = cycle_line(out, "synthetic")
    print("LINE[released flipped]", line)
    assert out["held"] == [] and out["files"] == [file], line
    assert out["verdict"] == "fail" and "history" in out["gate"]["reason"], line
    assert "gate fail" in line and "promoted_version" not in out, line
    assert _champion(champion_home) == 1


def test_the_line_never_calls_a_replaced_champion_on_probation():
    """Issue 31: "v4 on probation" on the line of the cycle that replaced v4 by v5."""
    summary = {"batches": ["b" * 64], "files": ["1990.csv"], "decision": "retrain",
               "reasons": ["decay"], "verdict": "refresh", "route": "promote",
               "promoted_version": 5, "registered_version": 5, "champion_version": 4,
               "gate": {"reason": "refresh: ...", "gain": 0.01, "ci_low": -0.01,
                        "ci_high": 0.03},
               "monitored": [{"batch_id": "b" * 64, "decay": 0.1, "drift_share": 0.0}],
               "probation": {"version": 4, "previous": 3, "action": "hold", "left":
                             "1 labelled batch", "replaced_by": 5, "reason": "holds"}}
    line = cycle_line(summary, "weather")
    assert "v5 @champion" in line and "v4 replaced by v5" in line, line
    assert "on probation" not in line, line


@pytest.mark.e2e
def test_a_cycle_that_replaces_a_champion_on_probation_says_so(two_versions_home):
    """v2 is on probation (after v1); a forced retrain promotes v3: the line names v3 as
    champion and never says that v2 is on probation."""
    from tests.approval_helpers import land

    land(two_versions_home, 16)
    out = cycle(dataset="synthetic", policy="auto", force_retrain=True,
                training=Training(min_delta=-1.0), home=str(two_versions_home))
    line = cycle_line(out, "synthetic")
    assert out.get("promoted_version") == 3, line
    assert "v2 on probation" not in line and "v2 replaced by v3" in line, line
