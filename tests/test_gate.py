"""The gate promotes on evidence: noise is rejected, a real gain passes, slices and sanity hold."""

import json

import numpy as np
import pandas as pd
import pytest

from tasks.data.spec import DatasetSpec
from tasks.gate.gate import gate, paired_bootstrap
from tasks.training.evaluate import evaluate
from tasks.training.train import fit

SPEC = DatasetSpec(name="t", time_column="ts", target="y", task="classification",
                   features=["x", "c"], categorical_features=["c"], primary_metric="accuracy",
                   positive_class=1)
REG = SPEC.model_copy(update={"task": "regression", "primary_metric": "mae"})


class Fixed:
    """A stand-in model: the gate needs only `.score(frame)` and `.features`."""

    def __init__(self, column: str, features=("x", "c")):
        self.column, self.features = column, list(features)

    def score(self, frame):
        return frame[self.column].to_numpy(dtype=float)


def window(n=600, seed=0, p_old=0.8, p_new=0.8, slice_p_new=None):
    """Labels and two models' scores; each model is right on a row with its own probability
    (`slice_p_new` overrides the challenger's on some values of `c`)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    c = rng.choice(["a", "b", "c"], n, p=[0.4, 0.2, 0.4])
    p = pd.Series(c).map(slice_p_new or {}).fillna(p_new).to_numpy()
    old = np.where(rng.random(n) < p_old, y, 1 - y)
    new = np.where(rng.random(n) < p, y, 1 - y)
    ts = pd.date_range("2026-01-01", periods=n, freq="h")
    return pd.DataFrame({"ts": ts, "x": 0.0, "c": c, "y": y,
                         "old": old * 0.5 + 0.25, "new": new * 0.5 + 0.25})


def test_equal_models_are_not_promoted_in_95_percent_of_seeds():
    verdicts = [gate(Fixed("new"), Fixed("old"), window(seed=s), SPEC, min_delta=0.005,
                     seed=s).verdict for s in range(50)]
    assert sum(v == "clear" for v in verdicts) <= 2  # >= 96% not promoted
    assert "marginal" in verdicts and "fail" in verdicts  # the point estimate alone would pass


def test_a_newer_challenger_replaces_an_equal_stale_champion_but_not_a_better_one():
    """Once the champion decayed, it carries the burden of proof against a challenger on
    newer data: equal models refresh (the gate cannot tell them apart, and the champion is
    failing), a champion that is clearly better keeps its place. A champion that has not
    decayed is not stale, and equal models are not promoted (the test above)."""
    verdicts = [gate(Fixed("new"), Fixed("old"), window(seed=s), SPEC, min_delta=0.005,
                     seed=s, stale=True) for s in range(50)]
    assert sum(v.verdict == "refresh" for v in verdicts) >= 45
    assert all(v.passed for v in verdicts if v.verdict == "refresh")
    assert all(v.champion_ci_low <= 0.005 for v in verdicts if v.verdict == "refresh")
    worse = gate(Fixed("new"), Fixed("old"), window(p_old=0.9), SPEC, min_delta=0.005,
                 stale=True)
    assert worse.verdict == "fail" and not worse.passed and worse.champion_ci_low > 0.005
    assert "champion is proven better" in worse.reason
    better = gate(Fixed("new"), Fixed("old"), window(p_new=0.9), SPEC, min_delta=0.005,
                  stale=True)
    assert better.verdict == "clear"  # a proven gain is still called what it is
    slice_bad = gate(Fixed("new"), Fixed("old"), window(n=1500, p_new=0.95,
                                                        slice_p_new={"b": 0.7}),
                     SPEC, min_delta=0.005, slice_feature="c", stale=True)
    assert slice_bad.verdict == "fail"  # the slice guard holds for a refresh too


def test_clearly_better_challenger_is_clear():
    result = gate(Fixed("new"), Fixed("old"), window(p_new=0.9), SPEC,
                  min_delta=0.005, slice_feature="c")
    assert result.verdict == "clear" and result.passed
    assert result.ci_low > 0.005 and result.gain > result.ci_low
    assert result.n_resamples == 1000 and not result.sanity
    assert all(s["ok"] for s in result.slices)


def test_point_metrics_are_evaluate_and_mae_gain_is_direction_aware():
    rng = np.random.default_rng(1)
    y = rng.normal(100, 20, 500)
    df = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=500, freq="h"), "x": 0.0,
                       "c": "a", "y": y, "old": y + rng.normal(0, 12, 500),
                       "new": y + rng.normal(0, 6, 500)})
    result = gate(Fixed("new"), Fixed("old"), df, REG, min_delta=0.005)
    assert result.verdict == "clear" and result.gain > 0.3
    assert result.challenger == pytest.approx(np.mean(np.abs(df.new - df.y)))
    assert result.champion_metrics["rmse"] == pytest.approx(np.sqrt(np.mean((df.old - df.y)**2)))


def test_slice_guard_trips_although_the_overall_gain_is_positive():
    df = window(n=1500, p_new=0.95, slice_p_new={"b": 0.7})
    result = gate(Fixed("new"), Fixed("old"), df, SPEC, min_delta=0.005, slice_feature="c",
                  max_slice_drop=0.05)
    assert result.gain > 0 and result.verdict == "fail" and not result.passed
    bad = [s for s in result.slices if not s["ok"]]
    assert [s["value"] for s in bad] == ["b"] and "slice c=b" in result.reason
    # small slices are listed but not judged
    tiny = gate(Fixed("new"), Fixed("old"), df, SPEC, min_delta=0.005, slice_feature="c",
                min_slice_rows=10_000)
    assert all(s["ok"] and not s["judged"] for s in tiny.slices)


def test_seven_day_slices_of_equal_models_trip_the_guard_at_most_one_window_in_twenty():
    """The slices share the 95% (Bonferroni): two equal models on two weeks of half-hourly
    rows, sliced by day of the week as Elec2's spec does, each slice a day or two. At 95%
    a slice, the guard failed 8 of these 60 windows on noise alone."""
    def week(seed: int, n: int = 14 * 48) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, n)
        day = np.repeat(np.arange(n // 48 + 1) % 7, 48)[:n].astype(str)
        old, new = (np.where(rng.random(n) < 0.8, y, 1 - y) for _ in range(2))
        return pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=n, freq="30min"),
                             "x": 0.0, "c": day, "y": y, "old": old * 0.5 + 0.25,
                             "new": new * 0.5 + 0.25})
    results = [gate(Fixed("new"), Fixed("old"), week(s), SPEC, min_delta=0.005, seed=s,
                    stale=True, slice_feature="c") for s in range(60)]
    assert all(len([s for s in r.slices if s["judged"]]) == 7 for r in results)
    assert sum("slice" in r.reason.split(":")[1] for r in results) <= 3


def test_too_few_rows_is_not_enough_evidence():
    df = window(n=150, p_new=0.99)
    result = gate(Fixed("new"), Fixed("old"), df, SPEC, min_delta=0.005, min_rows=200)
    assert result.verdict == "insufficient" and not result.passed
    assert "not enough evidence" in result.reason
    unlabelled = window(n=400).assign(y=lambda d: d.y.astype(float).mask(d.index < 250))
    assert gate(Fixed("new"), Fixed("old"), unlabelled, SPEC,
                min_delta=0.0).verdict == "insufficient"


def test_sanity_checks_fail_constant_predictions_and_a_changed_contract():
    df = window().assign(flat=0.7)
    result = gate(Fixed("flat"), Fixed("old"), df, SPEC, min_delta=0.005)
    assert result.verdict == "fail" and any("constant" in s for s in result.sanity)
    other = gate(Fixed("new", ["x"]), Fixed("old"), df, SPEC, min_delta=0.005)
    assert other.verdict == "fail" and any("features" in s for s in other.sanity)
    assert gate(Fixed("flat"), None, df, SPEC, min_delta=0.005).verdict == "fail"


def test_first_model_is_bootstrapped():
    result = gate(Fixed("new"), None, window(), SPEC, min_delta=0.005)
    assert result.verdict == "bootstrap" and result.passed and result.champion is None
    json.dumps(result.to_dict())


def test_a_first_model_needs_sanity_not_evidence():
    """"Your own data": a yearly batch of 365 daily rows holds out 109, under min_rows, and
    no champion could ever be made. With no champion there is nothing to beat: the sanity
    checks and a defined metric decide, whatever the window's size or classes."""
    small = window(n=109, seed=2)
    result = gate(Fixed("new"), None, small, SPEC, min_delta=0.005, min_rows=200)
    assert result.verdict == "bootstrap" and result.passed and result.n_rows == 109
    one_class = window(n=60, seed=2).assign(y=1)
    assert gate(Fixed("new"), None, one_class, SPEC, min_delta=0.005).verdict == "bootstrap"
    auc = SPEC.model_copy(update={"primary_metric": "roc_auc"})
    undefined = gate(Fixed("new"), None, one_class, auc, min_delta=0.005)
    assert undefined.verdict == "fail" and "undefined" in undefined.reason
    nothing = window(n=50).assign(y=np.nan)
    empty = gate(Fixed("new"), None, nothing, SPEC, min_delta=0.005)
    assert empty.verdict == "insufficient" and "no labelled rows" in empty.reason
    flat = gate(Fixed("flat"), None, small.assign(flat=0.7), SPEC, min_delta=0.005)
    assert flat.verdict == "fail" and "constant" in flat.reason


def test_the_bootstrap_blocker_names_what_the_data_lacks():
    from tasks.gate.gate import MIN_FIT_ROWS, bootstrap_blocker

    rows = window(n=365, seed=3)
    assert bootstrap_blocker(rows, SPEC, gate_rows=109) is None
    few = bootstrap_blocker(rows.head(60), SPEC, gate_rows=18)
    assert few.startswith("no first champion") and f"at least {MIN_FIT_ROWS}" in few
    assert "\n" not in few
    single = bootstrap_blocker(rows.assign(y=0), SPEC, gate_rows=109)
    assert "all 256 training rows have y=0" in single and "both classes" in single
    assert bootstrap_blocker(rows.assign(y=0.0), REG, gate_rows=109) is None  # no classes


def test_result_serialises_for_tags_and_table_artifacts():
    result = gate(Fixed("new"), Fixed("old"), window(), SPEC, min_delta=0.005, slice_feature="c")
    json.dumps(result.to_dict())
    rows = result.to_rows()
    assert rows[0]["scope"] == "overall" and rows[0]["metric"] == "accuracy"
    assert {r["scope"] for r in rows} >= {"c=a", "c=b", "c=c"}


def test_block_bootstrap_widens_the_interval_on_autocorrelated_rows():
    rng = np.random.default_rng(3)
    n, rho = 2000, 0.95
    shared = np.zeros(n)  # the challenger's error advantage drifts slowly (AR(1))
    for i in range(1, n):
        shared[i] = rho * shared[i - 1] + rng.normal(0, 1)
    y = rng.normal(100, 10, n)
    old = y + 5 + rng.normal(0, 1, n)
    new = y + 5 + shared + rng.normal(0, 1, n)
    iid = paired_bootstrap(y, old, new, REG, block_rows=1)
    block = paired_bootstrap(y, old, new, REG)
    assert block.block_rows > 1 and iid.gain == block.gain
    assert (block.ci_high - block.ci_low) > 1.5 * (iid.ci_high - iid.ci_low)
    indep = paired_bootstrap(y, old, y + 5 + rng.normal(0, 1, n), REG)
    assert indep.block_rows == 1  # no autocorrelation: the plain bootstrap


def test_bootstrap_is_seeded_and_rejects_roc_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000).astype(float)
    a, b = rng.random(5000), rng.random(5000)
    first = paired_bootstrap(y, a, b, SPEC, n_resamples=1000, block_rows=1)
    assert first == paired_bootstrap(y, a, b, SPEC, n_resamples=1000, block_rows=1)
    with pytest.raises(ValueError, match="roc_auc"):
        paired_bootstrap(y, a, b, SPEC.model_copy(update={"primary_metric": "roc_auc"}))


def stream(n, seed, flip=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = rng.choice(["a", "b"], size=n)
    y = ((x + rng.normal(0, 0.3, n) > 0) ^ flip).astype(int)
    return pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=n, freq="h"), "x": x,
                         "c": c, "y": y})


def test_with_real_models_a_retrain_on_the_same_concept_is_not_promoted():
    fast = {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 4, "n_jobs": 1}
    recent = stream(800, 9, flip=True)
    old = fit(stream(3000, 1), SPEC, None, fast)
    same = fit(stream(3000, 2), SPEC, None, fast)
    better = fit(stream(3000, 3, flip=True), SPEC, None, fast)
    assert gate(same, old, stream(800, 9), SPEC, min_delta=0.005).verdict in ("fail", "marginal")
    result = gate(better, old, recent, SPEC, min_delta=0.005, slice_feature="c")
    assert result.verdict == "clear"
    assert result.challenger == pytest.approx(evaluate(better, recent, SPEC)["accuracy"])


def test_a_big_window_gets_the_same_verdicts_from_super_blocks(monkeypatch):
    """Above tasks.gate.bootstrap.MAX_ROWS rows (50k) the gate resamples super-blocks, not rows:
    the row index matrix would take gigabytes. Shrunk here (20k rows, 1000 super-blocks of
    20) so the row bootstrap it is checked against stays cheap: same verdict, same point
    gain, same slice verdicts, interval ends within 2e-3."""
    import tasks.gate.gate as gate_module
    from tasks.gate import bootstrap

    rows = window(n=20_000, seed=3, p_old=0.80, p_new=0.82)
    exact = gate(Fixed("new"), Fixed("old"), rows, SPEC, min_delta=0.0, slice_feature="c")
    monkeypatch.setattr(bootstrap, "MAX_ROWS", 5_000)
    monkeypatch.setattr(gate_module, "MAX_ROWS", 5_000)
    monkeypatch.setattr(bootstrap, "SUPER_BLOCKS", 1_000)
    blocks = gate(Fixed("new"), Fixed("old"), rows, SPEC, min_delta=0.0, slice_feature="c")
    assert blocks.verdict == exact.verdict == "clear"
    assert blocks.gain == exact.gain and blocks.block_rows == 20
    assert abs(blocks.ci_low - exact.ci_low) < 2e-3
    assert abs(blocks.ci_high - exact.ci_high) < 2e-3
    assert [s["ok"] for s in blocks.slices] == [s["ok"] for s in exact.slices]


def test_the_bootstrap_gains_are_relative_gain_draw_by_draw():
    """The vectorised gains of the draws are `relative_gain` itself on every draw, its edge
    cases too (a zero or missing baseline), in both metric directions."""
    from tasks.gate.bootstrap import _gains
    from tasks.training.evaluate import relative_gain

    rng = np.random.default_rng(0)
    new, old = rng.random((200, 3)), rng.random((200, 3)) - 0.2
    old[0, 0] = old[1, 1] = new[1, 1] = 0.0
    new[2, 2], old[3, 0] = np.nan, np.nan
    for higher in (True, False):
        expected = [[relative_gain(a, b, higher) for a, b in zip(r, s, strict=True)]
                    for r, s in zip(new, old, strict=True)]
        assert np.array_equal(_gains(new, old, higher), np.array(expected), equal_nan=True)


def test_a_window_of_one_class_is_not_enough_evidence():
    """Issue 21.1: the gate window was a batch labelled all 1, so a challenger that learned
    to say 1 looked +90% better and was promoted. Each class needs MIN_CLASS_ROWS rows."""
    from tasks.gate.gate import MIN_CLASS_ROWS

    one_class = window(seed=1).assign(y=1)
    # the champion still says "unlikely"; the challenger learned to say 1
    one_class["old"] = np.linspace(0.1, 0.4, len(one_class))
    one_class["new"] = np.linspace(0.6, 0.95, len(one_class))
    result = gate(Fixed("new"), Fixed("old"), one_class, SPEC, min_delta=0.005)
    assert result.verdict == "insufficient" and not result.passed
    assert result.reason.startswith("not enough evidence") and "0 negative" in result.reason
    few = window(seed=1)
    few.loc[few.index[MIN_CLASS_ROWS - 1:], "y"] = 1  # one negative short of the minimum
    few.loc[few.index[:MIN_CLASS_ROWS - 1], "y"] = 0
    assert gate(Fixed("new"), Fixed("old"), few, SPEC, min_delta=0.005).verdict == "insufficient"
    enough = window(seed=1)
    enough.loc[enough.index[MIN_CLASS_ROWS:], "y"] = 1
    enough.loc[enough.index[:MIN_CLASS_ROWS], "y"] = 0
    assert gate(Fixed("new"), Fixed("old"), enough, SPEC, min_delta=0.005).verdict != \
        "insufficient"
    # regression has no classes: judged as before
    assert gate(Fixed("new"), Fixed("old"), one_class, REG, min_delta=0.005).verdict != \
        "insufficient"


@pytest.mark.parametrize("block_rows", [1, 7])
def test_accuracy_draws_from_cell_counts_are_the_binned_sums_bit_for_bit(
        monkeypatch, block_rows):
    """Accuracy's 0/1 losses: counting each resample's (slice, champion right, challenger
    right) cells gives every draw, overall and per slice (a rare slice left out of some
    draws included), exactly as binning each model's losses does."""
    from tasks.gate import bootstrap

    rows = window(n=500, seed=9, p_old=0.75, p_new=0.8)
    rows.loc[rows.sample(2, random_state=1).index, "c"] = "rare"  # absent from ~1 draw in 7
    y = rows["y"].to_numpy(dtype=float)
    old, new = rows["old"].to_numpy(), rows["new"].to_numpy()
    idx = bootstrap.resample_index(len(rows), block_rows, 300, seed=4)
    fast = [bootstrap.paired_draws(y, old, new, SPEC, idx, groups=g) for g in (None, rows["c"])]
    monkeypatch.setattr(bootstrap, "BINARY", ())
    binned = [bootstrap.paired_draws(y, old, new, SPEC, idx, groups=g)
              for g in (None, rows["c"])]
    for ours, theirs in zip(fast, binned, strict=True):
        assert ours["values"] == theirs["values"]
        for key in ("rows", "champion", "challenger", "gain", "ci_low", "ci_high"):
            assert np.array_equal(ours[key], theirs[key], equal_nan=True), key
    verdicts = []
    for whole in (("accuracy",), ()):
        monkeypatch.setattr(bootstrap, "BINARY", whole)
        verdicts.append(gate(Fixed("new"), Fixed("old"), rows, SPEC, min_delta=0.0,
                             slice_feature="c", stale=True).to_dict())
    assert verdicts[0] == verdicts[1]


def test_a_small_window_still_decides_for_a_stale_champion():
    """Issue 31: yearly batches of 365 rows gave a window of 109 rows, under min_rows 200, and
    every year was "not enough evidence": the champion froze for 45 years. A window too small
    to prove a gain still decides once monitoring saw drift or decay: a newer challenger is
    promoted as a refresh unless the champion is proven better on the rows there are, and
    the reason says the window was small. Without drift or decay the champion stays."""
    equal = window(n=109, seed=3)
    stale = gate(Fixed("new"), Fixed("old"), equal, SPEC, min_delta=0.005, min_rows=200,
                 stale=True)
    assert stale.verdict == "refresh" and stale.passed, stale.reason
    assert "small window (109 labelled rows < 200)" in stale.reason
    assert stale.champion_ci_low is not None and stale.n_rows == 109
    kept = gate(Fixed("new"), Fixed("old"), equal, SPEC, min_delta=0.005, min_rows=200)
    assert kept.verdict == "insufficient" and not kept.passed
    assert "not stale" in kept.reason and "109 labelled rows < 200" in kept.reason
    # a champion that is clearly better keeps its place, small window or not
    better = window(n=109, seed=3, p_old=0.97, p_new=0.55)
    worse = gate(Fixed("new"), Fixed("old"), better, SPEC, min_delta=0.005, min_rows=200,
                 stale=True)
    assert worse.verdict == "fail" and "proven better" in worse.reason
    # a clearly better challenger on a small window is a refresh, never "clear": a small
    # window's interval is not trusted to prove a gain
    gain = gate(Fixed("new"), Fixed("old"), window(n=109, seed=3, p_old=0.55, p_new=0.97),
                SPEC, min_delta=0.005, min_rows=200, stale=True)
    assert gain.verdict == "refresh" and gain.passed


def test_a_small_window_of_almost_one_class_is_never_judged():
    """The floor under the small-window rule is derived from the window (class_floor): 10%
    of it of each class, 5 rows at least, MIN_WINDOW_ROWS rows in all; a window of one class
    (issue 21) stays "not enough evidence" even against a stale champion, and the minimum
    of each class to prove a gain is a setting (`min_class_rows`)."""
    from tasks.gate.gate import MIN_WINDOW_ROWS, class_floor

    assert class_floor(30) == 5 and class_floor(109) == 11 and class_floor(1000) == 30
    assert class_floor(1000, 12) == 12
    one_class = window(n=109, seed=4).assign(y=1)
    held = gate(Fixed("new"), Fixed("old"), one_class, SPEC, min_delta=0.005, stale=True)
    assert held.verdict == "insufficient" and "0 negative" in held.reason
    assert "even a stale champion" in held.reason
    rare = window(n=109, seed=4)
    rare["y"] = (np.arange(109) < 10).astype(int)  # 10 positives < 11
    assert gate(Fixed("new"), Fixed("old"), rare, SPEC, min_delta=0.005,
                stale=True).verdict == "insufficient"
    rare["y"] = (np.arange(109) < 11).astype(int)
    assert gate(Fixed("new"), Fixed("old"), rare, SPEC, min_delta=0.005,
                stale=True).verdict in ("refresh", "fail")
    tiny = window(n=MIN_WINDOW_ROWS - 1, seed=4)
    assert gate(Fixed("new"), Fixed("old"), tiny, SPEC, min_delta=0.005, min_rows=10,
                stale=True).verdict == "insufficient"
    # min_class_rows is the setting: 20 of each class proves a gain on 600 rows
    few = window(seed=1)
    few.loc[few.index[20:], "y"] = 1
    few.loc[few.index[:20], "y"] = 0
    assert gate(Fixed("new"), Fixed("old"), few, SPEC, min_delta=0.005).verdict == \
        "insufficient"
    assert gate(Fixed("new"), Fixed("old"), few, SPEC, min_delta=0.005,
                min_class_rows=20).verdict != "insufficient"


def test_the_gate_window_grows_toward_enough_rows_within_the_batch():
    """30% of a 100-row batch is 30 rows; with the defaults the window grows toward
    gate_window_min_rows (100), up to half the batch, so the rest still trains a challenger
    newer than the champion. Batches whose 30% is enough keep it."""
    from flows.params import Training
    from tasks.training.train import gate_window_rows

    t = Training()
    size = lambda rows, **kw: gate_window_rows(  # noqa: E731
        rows, kw.get("fraction", t.gate_fraction), kw.get("min_rows", t.gate_window_min_rows),
        kw.get("max_fraction", t.gate_max_fraction))
    assert size(100) == 50 and size(91) == 45 and size(300) == 100
    assert size(365) == 109 and size(336) == 100 and size(3000) == 900
    assert size(365, min_rows=200) == 182  # toward 200, within half the batch
    assert size(100, max_fraction=0.3) == 30  # max_fraction at gate_fraction: as before
    assert size(365, fraction=0.6) == 219  # a larger gate_fraction is kept


def test_the_first_model_reason_says_bootstrap_once():
    """The promotion's reason is "<decision>: <gate reason>": the bootstrap read
    "bootstrap: bootstrap: no champion" (issue 31)."""
    result = gate(Fixed("new"), None, window(), SPEC, min_delta=0.005)
    assert f"bootstrap: {result.reason}".count("bootstrap") == 1
    assert result.reason.startswith("first model, no champion to beat: accuracy")
