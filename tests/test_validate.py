"""GX validation: every kind of bad batch fails with one line naming the file and the check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.data.validate import read_suite, validate_frame

SOURCE = "batch-08.csv"
SUITE = {
    "name": "toy",
    "meta": {},
    "expectations": [
        {"type": "expect_table_columns_to_match_set",
         "kwargs": {"column_set": ["ts", "price", "cat", "y"], "exact_match": True}},
        {"type": "expect_column_to_exist", "kwargs": {"column": "price"}},
        {"type": "expect_column_values_to_be_in_type_list",
         "kwargs": {"column": "price", "type_list": ["float64", "int64"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "price"}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "price", "min_value": 0, "max_value": 100}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "cat", "value_set": ["a", "b", "c"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "y"}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "y", "value_set": [0, 1]}},
    ],
}


def good_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "ts": pd.date_range("2024-01-01", periods=n, freq="h"),
        "price": rng.uniform(0, 100, n),
        "cat": rng.choice(["a", "b", "c"], n),
        "y": rng.integers(0, 2, n),
    })


def test_good_frame_passes() -> None:
    outcome = validate_frame(good_frame(), SUITE, source=SOURCE)
    assert outcome.success, outcome.reason
    assert outcome.failures == []
    assert outcome.evaluated == len(SUITE["expectations"])
    assert outcome.reason == f"{SOURCE}: all 8 expectations passed"


def _null_target(f: pd.DataFrame) -> pd.DataFrame:
    f["y"] = f["y"].astype(float)
    f.loc[:9, "y"] = np.nan
    return f


def _wrong_dtype(f: pd.DataFrame) -> pd.DataFrame:
    f["price"] = f["price"].map(lambda v: f"{v:.2f} EUR")
    return f


def _out_of_range(f: pd.DataFrame) -> pd.DataFrame:
    f.loc[:14, "price"] = 1000.0
    return f


def _unseen_category(f: pd.DataFrame) -> pd.DataFrame:
    f.loc[:2, "cat"] = "zz"
    return f


@pytest.mark.parametrize(("breaks", "expected"), [
    (_null_target, "expect_column_values_to_not_be_null(y): 10 rows (5.0%)"),
    (lambda f: f.drop(columns="price"), "column price is missing"),
    (lambda f: f.assign(extra=1), "expect_table_columns_to_match_set: unexpected: extra"),
    (_wrong_dtype, "expect_column_values_to_be_in_type_list(price)"),
    (_out_of_range, "expect_column_values_to_be_between(price): 15 rows (7.5%)"),
    (_unseen_category, "expect_column_values_to_be_in_set(cat): 3 rows (1.5%), e.g. 'zz'"),
], ids=["null-target", "missing-column", "extra-column", "wrong-dtype", "out-of-range",
        "unseen-category"])
def test_bad_frames_fail_with_one_line_reason(breaks, expected: str) -> None:
    outcome = validate_frame(breaks(good_frame()), SUITE, source=SOURCE)
    assert not outcome.success
    assert outcome.failures
    reason = outcome.reason
    assert reason.startswith(f"{SOURCE}: ")
    assert expected in reason
    assert "\n" not in reason
    json.dumps(outcome.to_dict())  # must be serialisable for the quarantine report
    assert "| expectation |" in outcome.to_markdown()


def test_missing_column_is_a_failure_not_an_exception() -> None:
    outcome = validate_frame(good_frame().drop(columns="price"), SUITE, source=SOURCE)
    missing = [f for f in outcome.failures if f.missing_columns == ["price"]]
    assert {f.expectation for f in missing} >= {
        "expect_column_to_exist", "expect_column_values_to_be_between"}
    assert all("column price is missing" in f.text for f in missing)
    # one entry for the column in the reason, not one per expectation on it
    assert outcome.reason.count("column price is missing") == 1
    assert "expect_column_to_exist(price)" in outcome.reason


def test_failure_fields_and_report() -> None:
    outcome = validate_frame(_out_of_range(good_frame()), SUITE, source=SOURCE)
    (failure,) = outcome.failures
    assert failure.expectation == "expect_column_values_to_be_between"
    assert failure.column == "price"
    assert failure.unexpected_count == 15
    assert failure.unexpected_percent == pytest.approx(7.5)
    report = outcome.to_dict()
    assert report["failed"] == 1 and report["source"] == SOURCE
    assert report["failures"][0]["unexpected_count"] == 15
    assert "| 15 |" in outcome.to_markdown()


def test_context_is_cached_between_calls() -> None:
    """One GX context per process (its set-up is not free): the second batch reuses it.
    Checked by identity, not by a timer (speed is for benchmarks/, not for tests)."""
    from tasks.data import validate

    validate_frame(good_frame(), SUITE, source=SOURCE)
    context = validate._gx()[0]
    outcome = validate_frame(_null_target(good_frame()), SUITE, source="batch-09.csv")
    assert validate._gx()[0] is context
    assert outcome.reason.startswith("batch-09.csv: ")


def test_read_suite(tmp_path: Path) -> None:
    good = tmp_path / "suite.json"
    good.write_text(json.dumps(SUITE))
    assert read_suite(good) == SUITE
    bad = tmp_path / "broken.json"
    bad.write_text('{"name": "x", "expectations": [')
    with pytest.raises(ValueError, match="broken.json") as err:
        read_suite(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="nope.json"):
        read_suite(tmp_path / "nope.json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text("[1, 2]")
    with pytest.raises(ValueError, match="wrong.json: not an expectation suite"):
        read_suite(wrong)


def test_unknown_expectation_is_refused_not_dropped() -> None:
    # GX alone would log the error and validate without the check
    typo = {"type": "expect_column_values_to_be_nul", "kwargs": {"column": "y"}}
    suite = {**SUITE, "name": "typo", "expectations": [*SUITE["expectations"], typo]}
    with pytest.raises(ValueError, match="suite typo: unknown or invalid expectation: "
                                         "expect_column_values_to_be_nul"):
        validate_frame(good_frame(), suite, source=SOURCE)


@pytest.mark.parametrize("dataset", ["synthetic", "elec2", "bike_sharing"])
def test_shipped_suites_bound_the_label_and_hold_rather_than_quarantine(dataset):
    """Issue 21.1: every shipped suite carries a check on its target's distribution; the
    cycle splits it off the intake suite (a failure holds the batch, tasks/data/labels.py)."""
    from tasks.data.spec import load_spec, suite_path
    from tasks.data.validate import LABEL_SHARE_CHECKS, split_label_checks

    spec, suite = load_spec(dataset), read_suite(suite_path(dataset))
    intake, labels = split_label_checks(suite, spec.target)
    assert labels["expectations"], "no label-share check in the suite"
    assert all(e["type"] in LABEL_SHARE_CHECKS and e["kwargs"]["column"] == spec.target
               for e in labels["expectations"])
    assert len(intake["expectations"]) + len(labels["expectations"]) == len(
        suite["expectations"])


@pytest.mark.parametrize("dataset", ["synthetic", "elec2", "bike_sharing"])
def test_real_batches_pass_the_label_check_and_constant_targets_are_held(dataset):
    """On real data (weekly batches of the shipped streams) the label check holds nothing;
    the same rows with one target value are held with a reason naming the file. Below
    Thresholds.min_rows labelled rows nothing is judged."""
    from flows.params import Thresholds
    from tasks.data import labels
    from tasks.data import replay as sources
    from tasks.data.spec import load_spec, suite_path
    from tasks.data.validate import split_label_checks
    from tests.conftest import shared_file

    spec = load_spec(dataset)
    _, label_suite = split_label_checks(read_suite(suite_path(dataset)), spec.target)
    min_rows = Thresholds().min_rows
    if dataset == "synthetic":
        weeks = [b.frame for b in sources.synthetic_stream(seed=7)]
    else:
        data = sources.load_dataset(dataset, shared_file(*sources.DATA_FILES[dataset]))
        weeks = [b.frame for b in sources.cut_batches(data, spec, "W")][:60]
    held = [i for i, w in enumerate(weeks)
            if labels.implausible(w, spec, label_suite, min_rows=min_rows, source="w.csv")]
    assert held == []
    constant = weeks[3].assign(**{spec.target: weeks[3][spec.target].iloc[0]})
    reason = labels.implausible(constant, spec, label_suite, min_rows=min_rows,
                                source="constant.csv")
    assert reason and reason.startswith("constant.csv: labels implausible") and "\n" not in reason
    assert labels.implausible(constant.head(min_rows - 1), spec, label_suite,
                              min_rows=min_rows, source="tiny.csv") is None
