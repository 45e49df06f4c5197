"""Sources: the synthetic drifts sit where documented, the suites hold on real data and
reject corruption, and batches cut and land the way a live feed would deliver them."""

from __future__ import annotations

import json
import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from tasks.data import replay as sources
from tasks.data.replay import SYNTHETIC_CHANGE_POINTS as CP
from tasks.data.replay import SYNTHETIC_MALFORMED
from tasks.data.spec import load_spec, suite_path
from tasks.monitoring.drift import CLASSIFICATION_LABEL_THRESHOLD
from tests.conftest import shared_file

DATASETS = ("synthetic", "elec2", "bike_sharing")


# --- helpers --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stream() -> list[sources.Batch]:
    return sources.synthetic_stream(seed=7)


@pytest.fixture(scope="module")
def gx_validate():
    """Validate with GX directly, so these tests do not depend on tasks/data/validate.py."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        batch_definition = (context.data_sources.add_pandas("tests")
                            .add_dataframe_asset("frame").add_batch_definition_whole_dataframe("all"))
    suites = {n: context.suites.add(gx.ExpectationSuite(**json.loads(suite_path(n).read_text())))
              for n in DATASETS}

    def run(name: str, frame: pd.DataFrame) -> set[str]:
        """The failed expectations as 'type(column)'; empty means the frame passed."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(suites[name])
        return {f"{r.expectation_config.type}({r.expectation_config.kwargs.get('column', '')})"
                for r in result.results if not r.success}

    return run


def _real(name: str) -> pd.DataFrame:
    directory, file = sources.DATA_FILES[name]
    return sources.load_dataset(name, shared_file(directory, file))


def _encode(frame: pd.DataFrame) -> pd.DataFrame:
    spec = load_spec("synthetic")
    X = frame[spec.features].copy()
    for col, cats in {"market": sources.MARKETS, "channel": sources.CHANNELS}.items():
        X[col] = pd.Categorical(X[col], categories=list(cats)).codes
    return X


def _fit(batches: list[sources.Batch]) -> lgb.LGBMClassifier:
    train = pd.concat([b.frame for b in batches])
    model = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, random_state=0, n_jobs=1,
                               verbose=-1)
    return model.fit(_encode(train), train["converted"], categorical_feature=["market", "channel"])


def _accuracy(model: lgb.LGBMClassifier, frame: pd.DataFrame) -> float:
    return float(np.mean(model.predict(_encode(frame)) == frame["converted"].to_numpy()))


def _psi(p: float, q: float) -> float:
    """PSI of a binary label, the statistic a label-drift check would use."""
    a, b = np.array([1 - p, p]), np.array([1 - q, q])
    return float(np.sum((b - a) * np.log(b / a)))


def _rate(batches: list[sources.Batch]) -> float:
    return float(np.mean([b.frame["converted"].mean() for b in batches]))


# --- specs and suites -----------------------------------------------------------------------
@pytest.mark.parametrize("name", DATASETS)
def test_suite_checks_exactly_the_spec_columns(name):
    spec = load_spec(name)
    suite = json.loads(suite_path(name).read_text())
    first = suite["expectations"][0]
    assert first["type"] == "expect_table_columns_to_match_set"
    assert first["kwargs"] == {"column_set": spec.columns, "exact_match": True}
    not_null = {e["kwargs"]["column"] for e in suite["expectations"]
                if e["type"] == "expect_column_values_to_not_be_null"}
    assert not_null == set(spec.columns)


# --- the synthetic stream -------------------------------------------------------------------
def test_stream_is_deterministic_weekly_and_in_time_order(stream):
    again = sources.synthetic_stream(seed=7)
    for a, b in zip(stream, again, strict=True):
        assert a.label == b.label
        pd.testing.assert_frame_equal(a.frame, b.frame)
    other = sources.synthetic_stream(seed=8, n_batches=1)[0]
    assert not other.frame.equals(stream[0].frame)
    assert [b.label for b in stream[:2]] == ["2026-W02", "2026-W03"]
    assert [b.label for b in stream] == sorted(b.label for b in stream)
    spec = load_spec("synthetic")
    for i, batch in enumerate(stream):
        times = batch.frame["timestamp"]
        assert list(batch.frame.columns) == spec.columns and len(batch.frame) == 3000
        assert times.is_monotonic_increasing
        start = sources.SYNTHETIC_START + pd.Timedelta(weeks=i)
        assert times.min() >= start and times.max() < start + pd.Timedelta(weeks=1)


def test_covariate_shift_west_arrives_and_an_unaware_model_fails_on_it(stream):
    west = [float((b.frame["market"] == "west").mean()) for b in stream]
    assert max(west[: CP["covariate"]]) == 0
    assert min(west[CP["covariate"]:]) > 0.55
    before, after = stream[CP["covariate"] - 1].frame, stream[CP["covariate"]].frame
    assert after["income"].median() > 1.2 * before["income"].median()
    # The same west rows, scored by a model that never saw west and by one that did.
    holdout = stream[CP["prior"] - 1].frame
    holdout = holdout[holdout["market"] == "west"]
    unaware = _accuracy(_fit(stream[CP["covariate"] - 3: CP["covariate"]]), holdout)
    aware = _accuracy(_fit(stream[CP["covariate"]: SYNTHETIC_MALFORMED]), holdout)
    assert aware - unaware > 0.02, (aware, unaware)


def test_prior_shift_prices_rise_and_the_label_rate_falls(stream):
    cp = CP["prior"]
    before, after = stream[CP["covariate"]: cp], stream[cp: CP["concept"]]
    price = [b.frame["price"].mean() for b in (stream[cp - 1], stream[cp])]
    assert 1.3 < price[1] / price[0] < 1.7
    assert 0.25 < _rate(before) < 0.35 and 0.12 < _rate(after) < 0.2
    rates = [b.frame["converted"].mean() for b in (stream[cp - 1], stream[cp])]
    assert _psi(*rates) > 1.5 * CLASSIFICATION_LABEL_THRESHOLD, rates  # well past the flow's cut


def test_concept_drift_changes_p_y_given_x_only(stream):
    cp = CP["concept"]
    old, new = stream[cp - 1].frame, stream[cp].frame
    for col in ("income", "age", "price", "discount", "tenure_months"):
        assert abs(new[col].median() / old[col].median() - 1) < 0.05, col
    for col in ("market", "channel"):
        shares = pd.concat([old[col].value_counts(normalize=True),
                            new[col].value_counts(normalize=True)], axis=1).fillna(0)
        assert (shares.iloc[:, 0] - shares.iloc[:, 1]).abs().max() < 0.03, col
    assert _psi(old["converted"].mean(), new["converted"].mean()) < 0.05  # label barely moves
    model = _fit(stream[cp - 5: cp - 1])  # batches 10..13: after the prior shift
    before, after = _accuracy(model, old), _accuracy(model, new)
    assert after < 0.96 * before, (before, after)


def test_stable_stretches_do_not_drift(stream):
    cuts = [0, *sorted(CP.values()), len(stream)]
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        clean = [b for i, b in enumerate(stream[lo:hi], lo) if i != SYNTHETIC_MALFORMED]
        rates = [b.frame["converted"].mean() for b in clean]
        assert _psi(min(rates), max(rates)) < 0.01, (lo, hi, rates)
        prices = [b.frame["price"].median() for b in clean]
        assert max(prices) / min(prices) < 1.05, (lo, hi, prices)


def test_suites_pass_synthetic_batches_except_the_malformed_one(stream, gx_validate):
    assert gx_validate("synthetic", stream[SYNTHETIC_MALFORMED].frame) == {
        "expect_column_values_to_not_be_null(converted)",
        "expect_column_values_to_be_between(price)",
    }
    # Every expectation is per row or per column set/dtype, which the batches share, so one
    # validation of all clean rows stands for one per batch at a third of the cost.
    clean = [b.frame for i, b in enumerate(stream) if i != SYNTHETIC_MALFORMED]
    assert gx_validate("synthetic", pd.concat(clean, ignore_index=True)) == set()
    assert gx_validate("synthetic", clean[0]) == set()


# --- real data ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["elec2", "bike_sharing"])
def test_suites_pass_on_the_whole_real_dataset_and_monthly_slices(name, gx_validate):
    frame = _real(name)
    assert list(frame.columns) == load_spec(name).columns
    assert frame["timestamp"].is_monotonic_increasing
    assert gx_validate(name, frame) == set()
    months = sources.cut_batches(frame, load_spec(name), "M")
    for batch in (months[0], months[len(months) // 2], months[-1]):
        assert gx_validate(name, batch.frame) == set(), batch.label


@pytest.mark.parametrize(("name", "corrupt", "expected"), [
    ("elec2", lambda f: f.drop(columns="transfer"),
     "expect_table_columns_to_match_set()"),
    ("elec2", lambda f: f.assign(**{"class": f["class"].where(f.index % 50 > 0, "SIDEWAYS")}),
     "expect_column_values_to_be_in_set(class)"),
    ("elec2", lambda f: f.assign(nswdemand=f["nswdemand"] * 100),
     "expect_column_values_to_be_between(nswdemand)"),
    ("bike_sharing", lambda f: f.assign(hum=f["hum"].where(f.index % 97 > 0)),
     "expect_column_values_to_not_be_null(hum)"),
    ("bike_sharing", lambda f: f.assign(hr=f["hr"] + 1),
     "expect_column_values_to_be_between(hr)"),
    ("bike_sharing", lambda f: f.assign(cnt=f["cnt"].astype(str)),
     "expect_column_values_to_be_in_type_list(cnt)"),
])
def test_suites_reject_obvious_corruption(name, corrupt, expected, gx_validate):
    assert expected in gx_validate(name, corrupt(_real(name)))


def test_cut_elec2_monthly_gives_32_batches_in_time_order():
    frame = _real("elec2")
    batches = sources.cut_batches(frame, load_spec("elec2"), "M")
    assert len(batches) == 32
    assert (batches[0].label, batches[-1].label) == ("1996-05", "1998-12")
    assert [b.label for b in batches] == sorted(b.label for b in batches)
    assert sum(len(b.frame) for b in batches) == len(frame)
    for a, b in zip(batches, batches[1:], strict=False):
        assert a.frame["timestamp"].max() < b.frame["timestamp"].min()


def test_cut_batches_skips_empty_periods_and_labels_weeks_and_days():
    spec = load_spec("synthetic")
    frame = pd.concat([sources.synthetic_batch(0, rows=50).frame,
                       sources.synthetic_batch(3, rows=50).frame])
    weeks = sources.cut_batches(frame, spec, "W")
    assert [b.label for b in weeks] == ["2026-W02", "2026-W05"]
    assert sources.cut_batches(frame, spec, "D")[0].label == "2026-01-05"
    with pytest.raises(ValueError, match="freq 'X': use a calendar unit"):
        sources.cut_batches(frame, spec, "X")


def test_load_dataset_names_the_file_when_it_is_missing(tmp_path):
    missing = tmp_path / "nope.csv.gz"
    with pytest.raises(ValueError, match="nope.csv.gz: no such file"):
        sources.load_dataset("elec2", missing)
    assert sources.default_data_path("synthetic") is None


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_batch_round_trips_atomically(fmt, tmp_path, stream):
    batch = stream[SYNTHETIC_MALFORMED]  # nulls and negatives must survive the trip too
    path = sources.write_batch(batch, tmp_path / "landing", fmt)
    assert path.name == f"{batch.label}.{fmt}"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    if fmt == "csv":
        assert "2026-03-02T" in path.read_text().splitlines()[1]  # ISO timestamps
        back = pd.read_csv(path, parse_dates=["timestamp"])
    else:
        back = pd.read_parquet(path)
    assert back["timestamp"].dtype == "datetime64[ns]"
    pd.testing.assert_frame_equal(back, batch.frame, check_dtype=False)
    with pytest.raises(ValueError, match="format"):
        sources.write_batch(batch, tmp_path, "xlsx")


@pytest.mark.parametrize(("freq", "labels"), [
    ("Y", ["2011", "2012"]), ("Q", ["2011-Q1", "2011-Q2"]), ("3M", ["2011-01", "2011-04"]),
    ("2W", ["2010-W52", "2011-W02"]), ("6h", ["2011-01-01T00", "2011-01-01T06"]),
    ("YE", ["2011", "2012"]), ("ME", ["2011-01", "2011-02"])])
def test_any_calendar_cadence_cuts_every_row_once_in_time_order(freq, labels):
    """Bike Sharing's hourly rows by year, quarter, three months, two weeks or six hours."""
    frame = sources.load_dataset("bike_sharing", shared_file("bike_sharing", "hour.csv"))
    batches = sources.cut_batches(frame, load_spec("bike_sharing"), freq)
    assert [b.label for b in batches[:2]] == labels
    assert [b.label for b in batches] == sorted(b.label for b in batches)  # land in order
    assert sum(len(b.frame) for b in batches) == len(frame)
    for a, b in zip(batches, batches[1:], strict=False):
        assert a.frame["timestamp"].max() < b.frame["timestamp"].min()


def test_rows_cuts_batches_of_a_count_with_unique_sorted_names():
    spec = load_spec("synthetic")
    frame = sources.synthetic_batch(0, rows=1000).frame
    batches = sources.cut_rows(frame, spec, 300)
    assert [len(b.frame) for b in batches] == [300, 300, 300, 100]
    assert len({b.label for b in batches}) == 4
    assert [b.label for b in batches] == sorted(b.label for b in batches)
    with pytest.raises(ValueError, match="--rows 0"):
        sources.cut_rows(frame, spec, 0)
