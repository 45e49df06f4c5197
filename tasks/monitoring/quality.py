"""Input and output metrics of one batch: what came in, and what the champion made of it.

Input: rows, missing share per column, and out-of-range share per column against the
ranges and value sets the dataset's GX suite declares (one source of truth for "valid").
Output: failed (null or non-finite) predictions, the score distribution, and the class
share, or the prediction mean for regression.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class Ranges:
    """Per column: numeric (min, max) bounds and allowed value sets, from the GX suite."""

    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    value_sets: dict[str, frozenset[str]] = field(default_factory=dict)


def suite_ranges(suite: dict[str, Any]) -> Ranges:
    """`expect_column_values_to_be_between` and `..._to_be_in_set` of a suite, as Ranges."""
    bounds, sets = {}, {}
    for exp in suite.get("expectations", []):
        kw = exp.get("kwargs", {})
        if exp.get("type") == "expect_column_values_to_be_between":
            bounds[kw["column"]] = (kw.get("min_value"), kw.get("max_value"))
        elif exp.get("type") == "expect_column_values_to_be_in_set":
            sets[kw["column"]] = frozenset(map(str, kw.get("value_set", [])))
    return Ranges(bounds, sets)


def load_ranges(suite_path: Path) -> Ranges:
    import json

    return suite_ranges(json.loads(Path(suite_path).read_text()))


@dataclass
class InputMetrics:
    rows: int
    missing_share: dict[str, float]
    out_of_range_share: dict[str, float]

    @property
    def max_missing(self) -> tuple[str | None, float]:
        return max(self.missing_share.items(), key=lambda kv: kv[1], default=(None, 0.0))

    @property
    def max_out_of_range(self) -> tuple[str | None, float]:
        return max(self.out_of_range_share.items(), key=lambda kv: kv[1], default=(None, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _out_of_range(s: pd.Series, col: str, ranges: Ranges) -> float | None:
    present = s.dropna()
    if col in ranges.value_sets:
        return float((~present.astype(str).isin(ranges.value_sets[col])).mean()) if len(
            present) else 0.0
    if col in ranges.bounds:
        lo, hi = ranges.bounds[col]
        x = pd.to_numeric(present, errors="coerce")
        bad = x.isna() | (x < lo if lo is not None else False) | (
            x > hi if hi is not None else False)
        return float(bad.mean()) if len(x) else 0.0
    return None


def input_metrics(batch: pd.DataFrame, spec: DatasetSpec, ranges: Ranges) -> InputMetrics:
    """Rows, missing share per feature, and the share outside the suite's declared ranges."""
    cols = [c for c in spec.features if c in batch]
    missing = {c: float(batch[c].isna().mean()) if len(batch) else 0.0 for c in cols}
    oor = {c: v for c in cols if (v := _out_of_range(batch[c], c, ranges)) is not None}
    return InputMetrics(len(batch), missing, oor)


@dataclass
class OutputMetrics:
    predictions: int
    failed_share: float  # null or non-finite scores
    score_mean: float
    score_quantiles: dict[str, float]
    positive_share: float | None  # classification: share predicted positive (score >= 0.5)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def output_metrics(scores: np.ndarray, spec: DatasetSpec) -> OutputMetrics:
    """What the champion said: how often it failed, and the shape of what it said
    (multiclass: of its confidence, the largest class probability)."""
    if np.ndim(scores) == 2:
        scores = np.max(scores, axis=1) if len(scores) else np.array([])
    s = pd.to_numeric(pd.Series(np.asarray(scores, dtype=float)), errors="coerce")
    ok = s[np.isfinite(s)]
    failed = 1.0 - len(ok) / len(s) if len(s) else 0.0
    qs = {f"p{int(q * 100):02d}": float(ok.quantile(q)) for q in QUANTILES} if len(ok) else {}
    positive = float((ok >= 0.5).mean()) if spec.task == "classification" and len(ok) else None
    return OutputMetrics(len(s), float(failed), float(ok.mean()) if len(ok) else float("nan"),
                         qs, positive)
