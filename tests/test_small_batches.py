"""Issue 31: with small batches the defaults still decide, and the champion follows the data.

Weekly synthetic batches of 100 rows: 30% of a batch is 30 rows, far under the gate's 200,
and before issue 31 every retrain was "not enough evidence" and the first champion served
for good, with nothing said. Real cycles (Prefect, MLflow, Evidently, LightGBM) with the
shipped defaults."""

from __future__ import annotations

import pytest

from cli.views import cycle_line
from flows.cycle import cycle, registry_for
from registry import versions
from tasks.data.replay import SYNTHETIC_CHANGE_POINTS, synthetic_batch, write_batch
from tasks.data.spec import load_spec
from tests.conftest import shipped_training

ROWS = 100


def _champion(home) -> int | None:
    return versions.aliases(registry_for(home, load_spec("synthetic"))).get("champion")


@pytest.mark.e2e
def test_with_100_row_batches_the_champion_moves_when_the_concept_moves(home):
    """A first champion from weeks 11-12 (after the covariate and prior changes), then one
    cycle a week up to two weeks past the concept change (week 15). Every retrain gets a
    verdict in words, and a challenger that learned the new concept becomes champion."""
    training = shipped_training()
    concept = SYNTHETIC_CHANGE_POINTS["concept"]
    for week in (11, 12):
        write_batch(synthetic_batch(week, rows=ROWS), home.landing)
    first = cycle(dataset="synthetic", policy="auto", training=training, home=str(home.root))
    assert first["verdict"] == "bootstrap" and first["promoted_version"] == 1, first
    before_concept, lines, insufficient = None, [], []
    for week in range(13, concept + 3):
        write_batch(synthetic_batch(week, rows=ROWS), home.landing)
        out = cycle(dataset="synthetic", policy="auto", training=training,
                    home=str(home.root))
        lines.append(cycle_line(out, "synthetic"))
        if out["decision"] == "retrain":  # a decision on every retrain, said in words
            assert out["gate"]["n_rows"] == 50, out["gate"]  # grown from 30 to half the batch
            if out["verdict"] == "insufficient":  # only a window that cannot judge at all:
                # after the prior shift a week of 100 offers may convert 6 times in all
                assert "too few to judge even a stale champion" in lines[-1], lines[-1]
                insufficient.append(week)
        if out.get("verdict") == "refresh":
            assert "small window (50 labelled rows < 200)" in out["gate"]["reason"], out
            assert "gate refresh" in lines[-1], lines[-1]
        if week == concept - 1:
            before_concept = _champion(home)
    assert _champion(home) != before_concept, "\n".join(lines)
    assert len(insufficient) <= 1, "\n".join(lines)  # before issue 31: every retrain
