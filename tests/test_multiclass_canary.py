"""The canary's score guard on a multiclass model compares the probability vector (issue 34):
the largest per-class KS over the class-probability columns, the class named in the line.

Real LightGBM models trained by the loop's own `train_challenger` on the seeded ticket
stream, answers made by serving's own `Served.score`, written and read back by the
prediction log's own writer and reader, judged by `serving.canary.check`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import ks_2samp

from serving import canary, plog
from serving.models import Served
from tasks.data.lake import BATCH_COLUMN
from tasks.data.replay_multiclass import multiclass_batch
from tasks.data.spec import load_spec
from tasks.training.train import train_challenger

SPEC = load_spec("synthetic_multiclass")


def _model(swap: tuple[str, str] | None = None):
    """A multiclass model on weeks 0-2 (3 with `swap`), with `swap`'s two teams' labels
    exchanged: as sure as the champion, of the wrong team."""
    frame = pd.concat([multiclass_batch(i, rows=600).frame.assign(**{BATCH_COLUMN: str(i)})
                       for i in range(3 if swap is None else 4)], ignore_index=True)
    if swap:
        frame["team"] = frame["team"].replace({swap[0]: swap[1], swap[1]: swap[0]})
    return train_challenger(frame, SPEC, gate_rows=300, reference_rows=200,
                            batch_column=BATCH_COLUMN, lgbm={"n_estimators": 40},
                            half_life_days=None, window_days=None).model


@pytest.fixture(scope="module")
def models():
    return {"champion": _model(), "swapped": _model(("account", "technical"))}


def _served(home: Path, champion, challenger) -> list[dict]:
    """Week 4's tickets, the first 200 answered by the challenger (canary), the rest by the
    champion, as the service logs them; read back with the log's own reader."""
    rows = json.loads(multiclass_batch(4, rows=400).frame[SPEC.features].to_json(
        orient="records"))
    log = plog.PredictionLog(home)
    for variant, model, part in (("canary", challenger, rows[:200]),
                                 ("champion", champion, rows[200:])):
        outputs = Served(1, model, SPEC.features, None, "now").score(part)
        log.append([{"request_id": variant, "index": i, "prediction_id": f"{variant}-{i}",
                     "at": "2026-12-08T00:00:00.000+00:00", "model": "m", "version": 1,
                     "variant": variant, "input": row, "output": out, "needs_review": False,
                     "latency_ms": 1.0, "error": None}
                    for i, (row, out) in enumerate(zip(part, outputs, strict=True))])
    return list(plog.read(home))


def _confidence_only(records: list[dict]) -> list[dict]:
    """The same lines without the probabilities: what the guard compared before."""
    return [{**r, "output": {k: v for k, v in r["output"].items() if k != "probabilities"}}
            for r in records]


def test_a_challenger_that_swaps_two_classes_trips_on_that_class(models, tmp_path):
    """Swapping account and technical leaves every answer as confident as the champion's,
    so the confidence's KS stays small and the step went on; the per-class KS sees the
    account column move past max_ks and names it."""
    records = _served(tmp_path, models["champion"], models["swapped"])
    assert all(set(r["output"]["probabilities"]) == {"account", "billing", "shipping",
                                                     "technical"} for r in records)
    verdict, why = canary.check(records, canary.Guards())
    assert verdict == "trip", why
    assert "KS 0.55 on class 'account''s probability > 0.45" in why, why
    before, said = canary.check(_confidence_only(records), canary.Guards())
    assert before == "ok" and "score KS 0.10" in said, said


def test_a_champion_against_itself_holds_and_says_the_largest_class(models, tmp_path):
    """The champion as its own canary: different rows, same model. The step holds, and the
    line says the largest per-class KS and its class; the figures carry it as `ks`."""
    records = _served(tmp_path, models["champion"], models["champion"])
    verdict, why = canary.check(records, canary.Guards())
    assert verdict == "ok" and "class-probability KS 0.11 (largest on 'billing')" in why, why
    figures = canary.figures([r for r in records if r["variant"] == "canary"],
                             [r for r in records if r["variant"] == "champion"])
    assert figures["ks"] == pytest.approx(0.11) and all(
        isinstance(v, float | int) for v in figures.values())  # promotion metrics: floats


def test_binary_and_regression_answers_keep_the_score_ks():
    """No probabilities in the answers: the KS of the scores (or estimates), as before."""
    a = [{"variant": "canary", "latency_ms": 1.0, "output": {"score": i / 40}}
         for i in range(40)]
    b = [{"variant": "champion", "latency_ms": 1.0, "output": {"prediction": 0.5 + i / 80}}
         for i in range(40)]
    ks = ks_2samp([i / 40 for i in range(40)], [0.5 + i / 80 for i in range(40)]).statistic
    assert canary.output_ks(a, b) == (pytest.approx(ks), None)
    verdict, why = canary.check(a + b, canary.Guards())
    assert verdict == "trip" and why.endswith(f"KS {ks:.2f} > 0.45"), why
