"""Per-row contributions (tasks/monitoring/attribution.py) on real LightGBM models of the
synthetic stream: they add up to the model's raw score, single or ensemble, and the
champion's attribution drift is quiet on a week like its reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.data.replay import synthetic_batch
from tasks.data.spec import load_spec
from tasks.monitoring import attribution
from tasks.training.model import GreenlightModel
from tasks.training.train import fit

SPEC = load_spec("synthetic")


@pytest.fixture(scope="module")
def models() -> dict[str, GreenlightModel]:
    weeks = [synthetic_batch(i).frame for i in range(5)]
    long = fit(pd.concat(weeks), SPEC, 7.0)
    short = fit(pd.concat(weeks[2:]), SPEC, 3.0)
    return {"single": long, "short": short,
            "ensemble": GreenlightModel.ensemble([long, short], [3.0, 1.0])}


def test_contributions_add_up_to_the_raw_score_of_a_single_model_and_an_ensemble(models):
    rows = synthetic_batch(5).frame.head(300)  # west appears: unseen categories too
    single = attribution.contributions(models["single"], rows)
    raw = models["single"].booster.predict(models["single"].encode(rows), raw_score=True)
    assert single.space == "raw"
    np.testing.assert_allclose(single.total(), raw, atol=1e-9)
    # in score space the same model adds up to its probability
    np.testing.assert_allclose(attribution.contributions(models["single"], rows, "score")
                               .total(), models["single"].score(rows), atol=1e-9)
    ensemble = attribution.contributions(models["ensemble"], rows)
    assert ensemble.space == "score"  # where the ensemble combines its members
    np.testing.assert_allclose(ensemble.total(), models["ensemble"].score(rows), atol=1e-9)
    np.testing.assert_allclose(attribution.raw_score(models["ensemble"], rows),
                               models["ensemble"].score(rows))
    assert ensemble.values.shape == (300, len(SPEC.features))


def test_attribution_drift_is_quiet_on_a_like_week_and_sees_prices_rise(models):
    """Against the champion's reference (its newest week), a week of the same world moves
    no feature's reliance by more than sampling does (~0.05); inflation (W12) moves price's."""
    champion, reference = models["single"], synthetic_batch(4).frame
    quiet = attribution.batch_shift(champion, reference, synthetic_batch(3).frame)
    assert set(quiet) == set(SPEC.features)
    assert max(abs(v) for v in quiet.values()) < 0.07, quiet
    inflated = attribution.batch_shift(champion, reference, synthetic_batch(12).frame)
    assert attribution.largest_shift(inflated)[0] == "price", inflated
    assert inflated["price"] > 0.15
    # the reference is attributed once per champion and reference
    assert attribution.reference_attribution(champion, reference) is \
        attribution.reference_attribution(champion, reference)


def test_a_wide_batch_is_attributed_on_a_sample(models):
    rows = synthetic_batch(3).frame
    assert len(attribution.sample_for(models["single"], rows)) == attribution.ATTRIBUTION_ROWS
    # an ensemble's members share the budget
    assert len(attribution.sample_for(models["ensemble"], rows)) == \
        attribution.ATTRIBUTION_ROWS // 2
    with pytest.raises(ValueError, match="attribution space"):
        attribution.contributions(models["single"], rows.head(5), "logit")
