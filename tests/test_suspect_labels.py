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
from tasks.data.sources import Batch, synthetic_batch, write_batch
from tasks.data.spec import load_spec
from tasks.gate.decide import Decision
from tasks.gate.history import judged_rows
from tasks.training.recipe import Recipe, fit_recipe
from tasks.training.sequence import retrain_sequence

SPEC = load_spec("synthetic")
TARGET = SPEC.target


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
    (held,) = out["held"]
    assert file in held and "labels suspect" in held and "greenlight release" in held
    assert out["batches"] == [] and "promoted_version" not in out
    assert _champion(champion_home) == 1
    record = next(b for b in manifest.load(Home(champion_home).manifest).values()
                  if b.get("file") == file)
    assert record["status"] == manifest.HELD and "decision" not in record
    assert line.startswith("synthetic: nothing new to decide on; held batch"), line


def _history(how: str | None) -> pd.DataFrame:
    """Week 0 clean, then week 1 clean or poisoned, with their batch ids."""
    newest = (synthetic_batch(1).frame if how is None else poisoned(1, how))
    history = pd.concat([synthetic_batch(0).frame.assign(_batch_id="b0"),
                         newest.assign(_batch_id="b1")], ignore_index=True)
    return history[history[TARGET].notna()]


def _retrain(history: pd.DataFrame):
    champion = fit_recipe(history[history["_batch_id"] == "b0"], SPEC, Recipe())
    return retrain_sequence(
        history, SPEC, Training(), gate_rows=900,
        decision=Decision("retrain", ["decay"], frozenset({"decay"})), champion=champion,
        champion_until=history[SPEC.time_column].min(), batch_column="_batch_id",
        refit_if=lambda result: False)


def test_the_history_guard_refuses_a_challenger_that_learned_flipped_labels():
    """The gate on the flipped week alone says clear by tens of percent; on week 0, which
    the champion was judged on, the champion is proven better, so the verdict is a fail
    that says why. A clean week 1 is not refused by it."""
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
    assert set(rows["_batch_id"]) == {"b0"}
    assert judged_rows(history, SPEC, "_batch_id", new_batches=["b0", "b1"]).empty
    three = pd.concat([history, synthetic_batch(2).frame.assign(_batch_id="b2")])
    assert set(judged_rows(three, SPEC, "_batch_id")["_batch_id"]) == {"b1"}
