"""Wide batches: `wide.py` gives every column the verdict Evidently gives it, on real data.

Elec2 (read from ../shared/data) widened with synthetic columns: shifts of a real column by
0 to 1 reference std (some close to the 0.1 cut), categories with and without a change, a
column with missing values, constant columns, few-valued and binary columns, infinities and
a column missing on one side. Each is judged by Evidently itself (`measure_drift` under
WIDE_FEATURES runs its DataDriftPreset on every column) and by `wide.column_drift`, with
more than 1000 reference rows (distances) and fewer (p-values)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.data.spec import DatasetSpec
from tasks.monitoring import drift, wide
from tasks.monitoring.drift import StatTests, measure_drift, save_report
from tests.conftest import shared_file

REAL = ["date", "period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
SHIFTS = [0.0, 0.03, 0.08, 0.095, 0.105, 0.12, 0.3, 1.0]  # in reference stds
CATEGORICAL = ["day", "day_str", "day_moved", "code_float", "code_cat", "new_category"]


@pytest.fixture(scope="module")
def elec2() -> pd.DataFrame:
    data = pd.read_csv(shared_file("elec2", "elec2.csv.gz"), parse_dates=["timestamp"])
    return data.assign(month=data["timestamp"].dt.to_period("M"))


def widened(part: pd.DataFrame, base: pd.Series, seed: int, *, current: bool) -> pd.DataFrame:
    """Elec2's real columns plus synthetic ones built from them; `current` applies the shifts.
    `base` is the reference's nswdemand: shifted columns resample it, so a shift of 0 is no
    drift and a shift of s moves the normed Wasserstein distance by about s."""
    rng = np.random.default_rng(seed)
    n = len(part)
    out = part[REAL + ["day", "class"]].reset_index(drop=True)
    sd = float(base.std(ddof=0))
    for s in SHIFTS:
        out[f"shift_{s}"] = rng.choice(base.to_numpy(), n) + (s * sd if current else 0.0)
    out["float32"] = (rng.choice(base.to_numpy(), n) + (0.2 * sd if current else 0)).astype(
        np.float32)
    out["day_str"] = out["day"].map(lambda d: f"d{d}")
    moved = rng.choice(7, n, p=[0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1] if current else None)
    out["day_moved"] = pd.Series(moved).map(lambda d: f"m{d}")
    # integer codes read as floats on one side and ints on the other: the same categories
    codes = rng.integers(0, 4, n)
    out["code_float"] = codes.astype(float) if current else codes
    out["code_cat"] = pd.Categorical(rng.choice(["x", "y", "z"], n),
                                     categories=["x", "y", "z", "w"])  # "w" never occurs
    out["new_category"] = np.where(rng.random(n) < (0.15 if current else 0.0), "new",
                                   rng.choice(["a", "b"], n))
    with_missing = out["nswprice"].copy()
    with_missing[rng.random(n) < (0.3 if current else 0.1)] = np.nan
    out["missing"] = with_missing
    out["constant"] = 0.5
    out["constant_then_not"] = 0.5 if not current else rng.uniform(0, 1, n)
    out["few_values"] = rng.choice([1.0, 2.0, 3.0, 4.0], n, p=[0.4, 0.3, 0.2, 0.1] if current
                                   else [0.25, 0.25, 0.25, 0.25])
    out["binary"] = rng.choice([0, 1], n, p=[0.5, 0.5] if current else [0.6, 0.4])
    out["int_many"] = rng.integers(0, 50, n) + (3 if current else 0)
    with_inf = out["transfer"].copy()
    with_inf[rng.random(n) < 0.05] = np.inf
    out["with_inf"] = with_inf
    out["empty_in_current"] = np.nan if current else rng.normal(size=n)
    out["empty_both"] = np.nan
    return out


def frames(elec2: pd.DataFrame, *, small: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    ref_part = elec2[elec2["month"].isin([pd.Period("1997-03", "M"), pd.Period("1997-04", "M")])]
    cur_part = elec2[elec2["month"] == pd.Period("1997-06", "M")]
    if small:  # under Evidently's 1000 reference rows: K-S, chi-square and z
        ref_part = ref_part.sample(700, random_state=1)
        cur_part = cur_part.sample(500, random_state=2)
    base = ref_part["nswdemand"].reset_index(drop=True)
    return (widened(ref_part, base, 11, current=False), widened(cur_part, base, 12, current=True))


def spec_of(frame: pd.DataFrame) -> DatasetSpec:
    features = [c for c in frame if c != "class"]
    return DatasetSpec(name="elec2-wide", time_column="timestamp", target="class",
                       task="classification", features=features,
                       categorical_features=CATEGORICAL, primary_metric="accuracy")


def compare(exhaustive: dict[str, drift._Verdict] | drift.DriftResult,
            fast: dict[str, wide.ColumnDrift]) -> None:
    """Same verdict and method on every column, scores equal up to float rounding."""
    assert set(fast) == set(exhaustive.feature_scores)
    for column, verdict in fast.items():
        score = exhaustive.feature_scores[column]
        assert verdict.drifted == (column in exhaustive.drifted_features), column
        assert verdict.method == exhaustive.feature_methods[column], column
        if math.isinf(score) or math.isinf(verdict.score):
            assert verdict.score == score, column
        else:
            assert verdict.score == pytest.approx(score, rel=1e-7, abs=1e-12), column


@pytest.mark.parametrize("small", [False, True], ids=["distances", "p-values"])
def test_every_column_gets_evidentlys_verdict(elec2: pd.DataFrame, small: bool) -> None:
    reference, current = frames(elec2, small=small)
    spec = spec_of(reference)
    exhaustive = measure_drift(reference, current, spec)  # Evidently on every column
    fast = wide.column_drift(reference, current, spec.numerical_features, CATEGORICAL)
    compare(exhaustive, fast)
    methods = set(exhaustive.feature_methods.values())
    if small:
        assert {"K-S p_value", "chi-square p_value", "Z-test p_value"} <= methods
    else:
        assert {"Wasserstein distance (normed)", "Jensen-Shannon distance"} <= methods
        # the shifts straddle the cut: both verdicts occur among them, in order
        shifted = [exhaustive.feature_scores[f"shift_{s}"] >= 0.1 for s in SHIFTS]
        assert shifted == sorted(shifted) and any(shifted) and not all(shifted)
    assert {"all values missing in current", "all values missing in both"} <= methods
    drifted = set(exhaustive.drifted_features)
    assert {"constant_then_not", "new_category", "date", "empty_in_current"} <= drifted
    assert not {"constant", "shift_0.0", "code_cat", "empty_both"} & drifted
    # float codes on one side and int codes on the other are the same categories
    assert exhaustive.feature_scores["code_float"] < (1.0 if small else 0.02)


def test_named_methods_and_threshold_match_evidently(elec2: pd.DataFrame) -> None:
    """Methods named in StatTests, including the binned ones on many-valued columns."""
    reference, current = frames(elec2, small=False)
    keep = ["nswdemand", "shift_0.08", "shift_0.3", "missing", "few_values", "int_many",
            "day_moved", "new_category", "day", "code_cat", "class"]
    reference, current = reference[keep], current[keep]
    spec = spec_of(reference).model_copy(update={"categorical_features": [
        "day_moved", "new_category", "day", "code_cat"]})
    tests = StatTests(num_method="ks", cat_method="psi",
                      per_column={"shift_0.3": "jensenshannon", "int_many": "psi",
                                  "missing": "wasserstein", "day": "chisquare", "code_cat": "z"})
    exhaustive = measure_drift(reference, current, spec, tests=tests)
    methods = {c: tests.method_for(c, c in spec.categorical_features) for c in spec.features}
    fast = wide.column_drift(reference, current, spec.numerical_features,
                             spec.categorical_features, methods=methods)
    compare(exhaustive, fast)
    strict = StatTests(threshold=0.2)
    exhaustive = measure_drift(reference, current, spec, tests=strict)
    compare(exhaustive, wide.column_drift(reference, current, spec.numerical_features,
                                          spec.categorical_features, threshold=0.2))


@pytest.mark.parametrize("sizes", [(500, 500), (300, 900), (900, 300), (700, 500), (1, 4)])
def test_wasserstein_is_scipys(sizes: tuple[int, int]) -> None:
    """Equal sizes, one a multiple of the other, neither: the same distance as scipy's."""
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(sum(sizes))
    u = np.sort(rng.normal(size=(3, sizes[0])).astype(np.float32), axis=1)
    v = np.sort(rng.lognormal(size=(3, sizes[1])), axis=1)
    expected = [wasserstein_distance(a, b) for a, b in zip(u, v, strict=True)]
    assert wide._wasserstein(u, v) == pytest.approx(expected, rel=1e-12)


def test_a_method_wide_py_lacks_is_left_to_evidently(elec2: pd.DataFrame) -> None:
    reference, current = frames(elec2, small=False)
    fast = wide.column_drift(reference, current, ["nswdemand", "period"], ["day"],
                             methods={"period": "anderson"})
    assert set(fast) == {"nswdemand", "day"}


def test_wide_batches_take_the_vectorised_path_with_the_same_result(
        elec2: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Above WIDE_FEATURES, measure_drift judges features with wide.py and Evidently draws
    the REPORT_COLUMNS furthest past their cut; the result is the exhaustive one."""
    reference, current = frames(elec2, small=False)
    reference["score"] = np.random.default_rng(1).beta(2, 5, len(reference))
    current["score"] = np.random.default_rng(2).beta(2, 3, len(current))
    spec = spec_of(reference.drop(columns="score"))
    exhaustive = measure_drift(reference, current, spec, prediction_column="score",
                               drift_share=0.3, title="batch x")
    monkeypatch.setattr(drift, "WIDE_FEATURES", 10)
    monkeypatch.setattr(drift, "REPORT_COLUMNS", 5)
    result = measure_drift(reference, current, spec, prediction_column="score",
                           drift_share=0.3, title="batch x")
    for name in ("drift_share", "drifted_features", "feature_methods", "label_score",
                 "label_method", "label_drifted", "prediction_score", "prediction_drifted"):
        assert getattr(result, name) == getattr(exhaustive, name), name
    assert result.feature_scores == pytest.approx(exhaustive.feature_scores, rel=1e-7)
    drawn = [m["config"]["column"] for m in result.snapshot.dict()["metrics"]
             if m["config"]["type"].endswith(":ValueDrift")]
    assert len(drawn) == 5 + 2 and {"class", "score"} <= set(drawn)
    assert drawn[:2] == ["constant_then_not", "transfer"]  # the furthest past their cut
    assert "empty_in_current" not in drawn  # nothing to draw: its verdict is in the summary
    paths = save_report(result, tmp_path)
    summary = json.loads(paths["summary"].read_text())
    assert len(summary["feature_scores"]) == len(spec.features)
    assert "Dataset Drift is" not in paths["html"].read_text(encoding="utf-8")
