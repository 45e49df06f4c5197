"""Training respects time and recency; the gate compares in the metric's own direction."""

import numpy as np
import pandas as pd
import pytest

from tasks.data.spec import DatasetSpec
from tasks.training.evaluate import evaluate, relative_gain
from tasks.training.train import fit, recency_weights, split_gate_window, train_challenger

SPEC = DatasetSpec(name="t", time_column="ts", target="y", task="classification",
                   features=["x", "c"], categorical_features=["c"], primary_metric="accuracy",
                   positive_class=1)


def frame(n=2000, seed=0, flip=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = rng.choice(["a", "b"], size=n)
    y = ((x > 0) ^ flip).astype(int)
    ts = pd.date_range("2026-01-01", periods=n, freq="h")
    return pd.DataFrame({"ts": ts, "x": x, "c": c, "y": y})


def test_half_life_halves_the_weight():
    times = pd.Series(pd.to_datetime(["2026-01-01", "2026-01-31", "2026-03-02"]))
    w = recency_weights(times, 30)
    assert w[-1] == 1.0
    assert w[1] == pytest.approx(0.5, rel=0.02)
    assert w[0] == pytest.approx(0.25, rel=0.02)
    assert (recency_weights(times, None) == 1).all()


def test_gate_window_is_newest_and_never_trained_on():
    df = frame().sample(frac=1, random_state=1)  # shuffled on purpose
    split = split_gate_window(df, SPEC, gate_rows=300, window_days=30)
    assert len(split.gate) == 300
    assert split.train["ts"].max() < split.gate["ts"].min()
    assert split.train["ts"].max() - split.train["ts"].min() <= pd.Timedelta(days=30)


def test_recency_weights_let_the_model_follow_a_concept_flip():
    old, new = frame(3000, 1), frame(600, 2, flip=True)
    new["ts"] = new["ts"] + pd.Timedelta(days=200)
    both = pd.concat([old, new], ignore_index=True)
    recent = frame(500, 3, flip=True)
    flat = evaluate(fit(both, SPEC, None), recent, SPEC)["accuracy"]
    weighted = evaluate(fit(both, SPEC, 7), recent, SPEC)["accuracy"]
    assert weighted > 0.9 > flat


def test_unseen_category_scores_instead_of_failing():
    model = fit(frame(), SPEC, None)
    odd = frame(50, 9).assign(c="zzz")
    assert len(model.predict(None, odd)) == 50


def test_relative_gain_follows_the_metric_direction():
    assert relative_gain(9.0, 10.0, higher_is_better=False) == pytest.approx(0.1)
    assert relative_gain(0.88, 0.80, higher_is_better=True) == pytest.approx(0.1)
    assert relative_gain(0.72, 0.80, higher_is_better=True) == pytest.approx(-0.1)


def test_same_batches_same_batch_set():
    df = frame().assign(_b=lambda d: np.where(d.index < 1000, "b1", "b2"))
    kw = dict(gate_rows=300, half_life_days=7, window_days=None, reference_rows=500,
              batch_column="_b")
    a, b = train_challenger(df, SPEC, **kw), train_challenger(df, SPEC, **kw)
    assert a.batch_set == b.batch_set
    # the reference is the newest training batch (b2 minus the gate window), never the gate
    assert len(a.reference) == 700
    assert a.reference["ts"].min() == df.loc[df._b == "b2", "ts"].min()
    assert a.reference["ts"].max() < a.split.gate["ts"].min()
    small = train_challenger(df, SPEC, **{**kw, "reference_rows": 1200})
    assert len(small.reference) == 1200  # padded back into b1 to reach the minimum


def test_fit_scores_are_the_scores_of_separate_fits():
    """One binned Dataset for several half-lives gives each the model `fit` gives, bit for
    bit: unweighted first, weights swapped in between, and for a regression too."""
    from tasks.training.train import fit_scores

    rng = np.random.default_rng(3)
    n = 600
    frame = pd.DataFrame({"ts": pd.date_range("2025-01-01", periods=n, freq="6h"),
                          "x": rng.normal(size=n), "c": rng.choice(list("abc"), n)})
    frame["y"] = ((frame["x"] + (frame["c"] == "b") + rng.normal(0, 0.5, n)) > 0.5).astype(int)
    frame["v"] = frame["x"] * 3 + rng.normal(size=n)
    params = {"n_estimators": 20, "learning_rate": 0.2}
    train, gate = frame.iloc[:450], frame.iloc[450:]
    lives = [30, None, 7, 30]
    for spec in (DatasetSpec(name="c", time_column="ts", target="y", task="classification",
                             features=["x", "c"], categorical_features=["c"],
                             primary_metric="accuracy", positive_class=1),
                 DatasetSpec(name="r", time_column="ts", target="v", task="regression",
                             features=["x", "c"], categorical_features=["c"],
                             primary_metric="mae")):
        scores = fit_scores(train, gate, spec, lives, params)
        assert list(scores) == [30, None, 7]
        for h in lives:
            assert np.array_equal(scores[h], fit(train, spec, h, params).score(gate)), (spec, h)
