"""`greenlight init` infers ranges that guard (tasks/data/ranges.py): two bad rows do not
widen a range to hold them, a measured quantity gets no sign rule, and the review lines
name the sample's extreme outliers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.data.infer import init_dataset
from tasks.data.validate import read_suite, validate_frame


def _weather(days: int = 3650, seed: int = 3) -> pd.DataFrame:
    """Daily weather as the issue's file: sea-level pressure 980..1048 hPa, the daily high
    in °F (a cold winter now and then), and the rain to predict."""
    rng = np.random.default_rng(seed)
    day = np.arange(days)
    season = np.sin(2 * np.pi * day / 365.25)
    return pd.DataFrame({
        "date": pd.date_range("2000-01-01", periods=days, freq="D"),
        "pressure": np.clip(rng.normal(1014, 9, days), 980, 1048).round(1),
        "max_temp": (52 + 30 * season + rng.normal(0, 6, days)).round(0),
        "wind": rng.gamma(2.0, 4.0, days).round(1),
        "rain_mm": rng.gamma(0.6, 4.0, days).round(1),
    })


def _init(frame: pd.DataFrame, tmp_path: Path, name: str = "weather"):
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return init_dataset(name, path, target="rain_mm", time_column="date",
                        root=tmp_path / "expectations")


def _bounds(result, column: str) -> tuple[float, float]:
    suite = read_suite(result.suite_path)
    (kwargs,) = [e["kwargs"] for e in suite["expectations"]
                 if e["type"] == "expect_column_values_to_be_between"
                 and e["kwargs"]["column"] == column]
    return kwargs["min_value"], kwargs["max_value"]


def test_two_bad_pressures_do_not_widen_the_range_and_are_listed_for_review(tmp_path):
    """The whole file allowed 0..6640 hPa (observed 980..1048 plus two rows at 5503)."""
    frame = _weather()
    frame.loc[[400, 2900], "pressure"] = 5503.0
    result = _init(frame, tmp_path)
    low, high = _bounds(result, "pressure")
    assert 940 < low <= 980 and 1048 <= high < 1100, (low, high)
    (line,) = [r for r in result.inference.review if r.startswith("pressure:")]
    assert "2 extreme outlier(s)" in line and "5503" in line, line
    assert result.written and result.exit_code == 0, result.validation
    assert "less the 2 row(s)" in result.validation
    bad = frame.iloc[395:405]  # a later batch with one such row is quarantined
    suite = read_suite(result.suite_path)
    assert not validate_frame(bad, suite, source="b.csv", time_column="date").success
    good = frame.iloc[0:300]
    assert validate_frame(good, suite, source="g.csv", time_column="date").success
    lines = "\n".join(result.lines())
    assert "pressure: 2 extreme outlier(s)" in lines  # what init prints under review:


def test_a_temperature_that_stayed_above_zero_gets_no_floor_of_zero(tmp_path):
    """From five mild years, "never below 0 when nothing was negative" gave max_temp a
    floor of 0, and quarantined the ten valid years after."""
    frame = _weather(days=3650 * 3)
    first = frame.iloc[:5 * 365].copy()
    first["max_temp"] = first["max_temp"].clip(lower=4)
    assert first["max_temp"].min() > 0
    result = _init(first, tmp_path)
    low, _ = _bounds(result, "max_temp")
    assert low < 0, low
    later = frame.iloc[5 * 365:].copy()
    later.loc[later.index[100:107], "max_temp"] = -3.0  # a cold week, years later
    suite = read_suite(result.suite_path)
    cold = later.iloc[95:115]
    checked = validate_frame(cold, suite, source="cold.csv", time_column="date")
    assert "max_temp" not in (checked.reason or ""), checked.reason
    spec = json.loads(result.spec_path.read_text())
    assert spec["target"] == "rain_mm"


def test_a_count_that_reaches_zero_keeps_its_floor(tmp_path):
    """Integer values that reach 0 exactly and never below: a count or a code."""
    frame = _weather(days=800)
    frame["visitors"] = np.random.default_rng(1).poisson(3, len(frame))
    assert frame["visitors"].min() == 0
    result = _init(frame, tmp_path)
    assert _bounds(result, "visitors")[0] == 0
