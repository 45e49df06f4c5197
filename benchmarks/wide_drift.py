"""Drift on a wide batch (1,000,000 rows x 1,000 columns): time, memory and verdicts.

Goal (issue 18): drift on 1M rows x 1,000 columns in at most 60 s on this machine, with the
verdicts Evidently gives when it judges every column on the same sample. Evidently's users
report hours for this (evidently#1526: 6 h for 3M x 1k); `measure_drift` judges a batch of
more than `WIDE_FEATURES` features with `tasks/monitoring/wide.py` instead.

The data is generated, seeded: mostly numerical columns (normal, lognormal, uniform,
integer-valued, few-valued), some categorical ones (pandas `category`), a tenth of them
shifted by 0.05 to 0.5 reference std or in their category shares (some close to the 0.1
cut), a few with missing values and a few constant. Numbers are float32: 1M x 1,000 is 4 GB.
It prints:
1. `measure_drift` end to end as the flow runs it (label and prediction drift, the report;
   frames above MAX_ROWS sampled), and on every row (`max_rows` above the batch);
2. on a row sample small enough for Evidently (`--check-rows`), each feature's verdict from
   wide.py against Evidently's DataDriftPreset on every column, and both times;
3. peak RSS and the load average.

    uv run python benchmarks/wide_drift.py                      # 1M x 1,000, 20k-row check
    uv run python benchmarks/wide_drift.py --rows 100000 --columns 300 --check-rows 5000
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.monitoring import drift, wide
from tasks.monitoring.drift import MAX_ROWS, measure_drift

GOAL_SECONDS = 60.0
SHIFTS = [0.05, 0.09, 0.11, 0.2, 0.5]  # in reference stds, cycled over the shifted columns


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def numeric_column(rng: np.random.Generator, i: int, n: int, shift: float) -> np.ndarray:
    """Column i's values (float32), its kind by i; `shift` in reference stds (reference 0)."""
    kind = i % 5
    if kind == 0:
        values, sd = rng.standard_normal(n, dtype=np.float32) * 2.0 + 10.0, 2.0
    elif kind == 1:
        values = np.exp(rng.standard_normal(n, dtype=np.float32) * 0.5)
        sd = float(np.sqrt((np.e ** 0.25 - 1) * np.e ** 0.25))
    elif kind == 2:
        values, sd = rng.random(n, dtype=np.float32) * 100.0, 100.0 / np.sqrt(12.0)
    elif kind == 3:
        values, sd = rng.integers(0, 100, n).astype(np.float32), 100.0 / np.sqrt(12.0)
    else:  # few values: Jensen-Shannon on the counts
        values, sd = rng.integers(0, 4, n).astype(np.float32), 1.1
    if shift:
        values += np.float32(shift * sd)
    return values


def generate(rows: int, columns: int, categorical: int, seed: int, *, current: bool,
             ) -> pd.DataFrame:
    """The seeded wide frame; `current` applies the shifts (same columns, same kinds)."""
    rng = np.random.default_rng([seed, int(current)])
    n_num = columns - categorical
    names = [f"x{i:04d}" for i in range(n_num)]
    block = np.empty((n_num, rows), dtype=np.float32)  # pandas keeps this as its one block
    for i in range(n_num):
        shift = SHIFTS[(i // 10) % len(SHIFTS)] if current and i % 10 == 9 else 0.0
        block[i] = numeric_column(rng, i, rows, shift)
        if i % 50 == 7:  # missing values, more of them in the current batch
            block[i, rng.random(rows) < (0.10 if current else 0.05)] = np.nan
        if i % 250 == 3:  # constant
            block[i] = 1.0
    numbers = pd.DataFrame(block.T, columns=names, copy=False)
    cats: dict[str, pd.Categorical] = {}
    for j in range(categorical):
        levels = [f"c{j}_{k}" for k in range(3 + j % 18)]
        p = np.full(len(levels), 1 / len(levels))
        if current and j % 5 == 4:  # a moved share
            p = np.roll(np.linspace(1, 2 + j % 3, len(levels)), j)
            p /= p.sum()
        codes = rng.choice(len(levels), rows, p=p).astype(np.int8)
        if current and j == categorical - 1:  # a new category
            levels = [*levels, "new"]
            codes[rng.random(rows) < 0.1] = len(levels) - 1
        cats[f"k{j:03d}"] = pd.Categorical.from_codes(codes, levels)
    # the score is float64: a float32 column would be consolidated with the numbers' block
    # by `concat`, copying all 4 GB of it
    labels = pd.DataFrame({**cats, "y": (rng.random(rows) < (0.3 if current else 0.35)
                                         ).astype(np.int8),
                           "score": rng.beta(2, 5, rows)})
    return pd.concat([numbers, labels], axis=1, copy=False)


def spec_for(frame: pd.DataFrame) -> DatasetSpec:
    features = [c for c in frame if c not in ("y", "score")]
    return DatasetSpec(name="wide-bench", time_column="t", target="y", task="classification",
                       features=features, categorical_features=[c for c in features
                                                                if c.startswith("k")],
                       primary_metric="roc_auc")


def exhaustive(reference: pd.DataFrame, current: pd.DataFrame,
               spec: DatasetSpec) -> drift.DriftResult:
    """Evidently on every column: measure_drift with the wide path switched off."""
    saved = drift.WIDE_FEATURES
    drift.WIDE_FEATURES = 10**9
    try:
        return measure_drift(reference, current, spec, prediction_column="score",
                             max_rows=10**9)
    finally:
        drift.WIDE_FEATURES = saved


def agreement(spec: DatasetSpec, fast: dict[str, wide.ColumnDrift],
              full: drift.DriftResult) -> tuple[int, list[str], float]:
    """Columns with the same verdict, those without, and the largest relative score gap."""
    same, differ, gap = 0, [], 0.0
    drifted = set(full.drifted_features)
    for c in spec.features:
        v, score = fast[c], full.feature_scores[c]
        if v.drifted == (c in drifted):
            same += 1
        else:
            differ.append(c)
        if np.isfinite(score) and np.isfinite(v.score):
            gap = max(gap, abs(v.score - score) / max(abs(score), 1e-12))
    return same, differ, gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="current batch rows")
    parser.add_argument("--reference-rows", type=int, default=200_000,
                        help="the champion's reference sample")
    parser.add_argument("--columns", type=int, default=1000)
    parser.add_argument("--categorical", type=int, default=50)
    parser.add_argument("--check-rows", type=int, default=20_000,
                        help="rows a side for the comparison with Evidently (0: skip it)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    (reference, current), t_gen = timed(lambda: (
        generate(args.reference_rows, args.columns, args.categorical, args.seed, current=False),
        generate(args.rows, args.columns, args.categorical, args.seed, current=True)))
    spec = spec_for(current)
    print(f"generated: current {args.rows:,} x {len(spec.features):,} features "
          f"({len(spec.categorical_features)} categorical), reference {args.reference_rows:,} "
          f"rows, in {t_gen:.1f} s; peak RSS {peak_rss_gb():.2f} GB")
    tiny = spec.model_copy(update={"features": spec.features[:3], "categorical_features": []})
    measure_drift(reference.head(2000), current.head(2000), tiny)  # imports Evidently (~9 s)

    flow, t_flow = timed(measure_drift, reference, current, spec, prediction_column="score")
    print(f"measure_drift as the flow runs it (max_rows={MAX_ROWS:,}: "
          f"{flow.reference_rows:,} x {flow.current_rows:,} rows): {t_flow:.1f} s "
          f"(goal {GOAL_SECONDS:.0f} s); {len(flow.drifted_features)} drifted, "
          f"share {flow.drift_share:.3f}; peak RSS {peak_rss_gb():.2f} GB")
    every, t_every = timed(measure_drift, reference, current, spec, prediction_column="score",
                           max_rows=10**9)
    moved = [c for c in spec.features
             if (c in flow.drifted_features) != (c in every.drifted_features)]
    print(f"measure_drift on every row ({every.reference_rows:,} x {every.current_rows:,}): "
          f"{t_every:.1f} s (goal {GOAL_SECONDS:.0f} s); {len(every.drifted_features)} "
          f"drifted; the flow's sample gives another verdict on {len(moved)} of "
          f"{len(spec.features)}{': ' + ', '.join(moved[:8]) if moved else ''}; "
          f"peak RSS {peak_rss_gb():.2f} GB")
    _, t_alone = timed(wide.column_drift, reference, current, spec.numerical_features,
                       spec.categorical_features)
    print(f"  of which wide.column_drift (every feature, every row): {t_alone:.1f} s; "
          f"Evidently (label, prediction and the report's {drift.REPORT_COLUMNS} features on "
          f"every row): the other {t_every - t_alone:.1f} s")

    if args.check_rows:
        ref = reference.sample(n=min(args.check_rows, len(reference)), random_state=1)
        cur = current.sample(n=min(args.check_rows, len(current)), random_state=2)
        del reference, current, flow, every
        gc.collect()
        numerical, categorical = spec.numerical_features, spec.categorical_features
        fast, t_fast = timed(wide.column_drift, ref, cur, numerical, categorical)
        _, t_wide = timed(measure_drift, ref, cur, spec, prediction_column="score")
        full, t_full = timed(exhaustive, ref, cur, spec)
        same, differ, gap = agreement(spec, fast, full)
        print(f"check on the same sample, {len(ref):,} x {len(cur):,} rows x "
              f"{len(spec.features):,} features:")
        print(f"  Evidently, every column: {t_full:.1f} s; measure_drift (wide): "
              f"{t_wide:.1f} s ({t_full / t_wide:.0f}x); wide.column_drift alone: "
              f"{t_fast:.2f} s ({t_full / t_fast:.0f}x)")
        listed = f"; differ: {', '.join(differ)}" if differ else ""
        print(f"  same verdict on {same} of {len(spec.features)} features "
              f"({len(full.drifted_features)} drifted by Evidently){listed}; "
              f"largest relative score gap {gap:.1e}")
    print(f"peak RSS {peak_rss_gb():.2f} GB; load average at the end "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
