"""The heavy steps on Dask: partitions for validation and monitoring, lightgbm.dask for training.

One process is enough for most batches, and the single-process path stays the default.
Above a size threshold the same checks run per partition on a Dask cluster (any scheduler
address, else a LocalCluster sized to the machine), and the partition results are combined
here so that the verdicts are those of the whole batch:

- validation: a batch fails if any partition fails; unexpected counts are summed and the
  percentages recomputed over the whole batch's rows (or non-null values);
- monitoring: missing and out-of-range shares are combined exactly from per-partition
  counts; drift, prediction drift, adversarial validation and decay are measured on the
  whole batch through a sample drawn from every partition in proportion to its rows
  (every row when the batch is under `MAX_ROWS`, exactly as the single-process path does);
- training: the same LightGBM parameters and recency weights through `lightgbm.dask`, and
  `.to_local()` makes the model the same class the single-process path registers.

Dask, distributed and lightgbm.dask are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.data.validate import Failure, ValidationOutcome, _rank, validate_frame, with_time_checks
from tasks.monitoring.drift import MAX_ROWS
from tasks.monitoring.quality import InputMetrics, Ranges, input_metrics

ADDRESS_ENV = "GREENLIGHT_DASK_ADDRESS"
# Runs a function once per keyword set on the cluster; returns the results in call order.
# The cycle's runs each call as a Prefect task through prefect-dask (tasks/scale/dispatch.py).
Mapper = Callable[[Callable[..., Any], list[dict]], list]


# A LocalCluster's workers write to the flow's terminal: only their errors belong there.
# Their task runs' INFO lines still reach the Prefect UI (its API handler keeps every level).
QUIET_WORKERS = {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "ERROR",
                 "DASK_LOGGING__DISTRIBUTED": "error"}


@dataclass
class DaskEngine:
    """Where the heavy steps run once a step's input reaches `min_rows` rows.

    With no address (argument or GREENLIGHT_DASK_ADDRESS) a LocalCluster is started on first
    use, one single-threaded worker process per core (LightGBM and pandas want processes,
    not threads), and closed with the engine: small cycles never pay its start-up."""

    min_rows: int
    address: str | None = None
    partition_rows: int = 1_000_000
    worker_env: Callable[[], dict[str, str]] | None = None  # asked when a cluster starts
    _cluster: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.address = self.address or os.environ.get(ADDRESS_ENV) or None

    def wants(self, rows: int) -> bool:
        """Whether a step with this many input rows goes to Dask."""
        return rows >= self.min_rows

    def scheduler(self) -> str:
        """The scheduler address, starting the LocalCluster the first time it is needed."""
        if self.address:
            return self.address
        if self._cluster is None:
            from distributed import LocalCluster

            workers = max(1, os.cpu_count() or 1)
            # The scheduler and nannies log here, and their INFO lines (and warnings such as
            # "worker still alive after 4 s, killing" on close) would reach the user.
            logging.getLogger("distributed").setLevel(logging.ERROR)
            env = {**QUIET_WORKERS, **(self.worker_env() if self.worker_env else {})}
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                         processes=True, dashboard_address=":0", env=env)
            from distributed import Client

            with Client(self._cluster) as client:
                client.run(native_stdout_to_devnull)
        return self._cluster.scheduler_address

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split(frame: pd.DataFrame, partition_rows: int) -> list[pd.DataFrame]:
    """Contiguous slices of at most `partition_rows` rows (one at least), in row order, so
    concatenating them gives the frame back."""
    count = max(1, math.ceil(len(frame) / max(1, partition_rows)))
    bounds = np.linspace(0, len(frame), count + 1).astype(int)
    return [frame.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


# --- validation ---------------------------------------------------------------------------

def validate_partition(part: pd.DataFrame, suite: dict, source: str) -> ValidationOutcome:
    """GX on one partition. The suite already holds the time checks (`with_time_checks`),
    so every partition is judged against the same "now"."""
    return validate_frame(part, suite, source=source)


@dataclass(frozen=True)
class Counts:
    """What combining row-level failures needs of the whole batch: its rows and each
    column's non-null values. Workers count their partitions; the batch is never needed."""

    rows: int
    notna: dict[str, int]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Counts:
        return cls(len(frame), {str(c): int(frame[c].notna().sum()) for c in frame.columns})

    @classmethod
    def total(cls, parts: list[Counts]) -> Counts:
        notna: dict[str, int] = {}
        for part in parts:
            for col, n in part.notna.items():
                notna[col] = notna.get(col, 0) + n
        return cls(sum(p.rows for p in parts), notna)


def _combine_failure(label: str, hits: list[Failure], counts: Counts) -> Failure:
    """Sum a row-level failure over partitions; the share is over the whole batch, with the
    denominator GX uses (all rows for not-null, the non-null values otherwise)."""
    first = hits[0]
    count = sum(h.unexpected_count or 0 for h in hits)
    if first.expectation == "expect_column_values_to_not_be_null" or \
            first.column not in counts.notna:
        total = counts.rows
    else:
        total = counts.notna[first.column]
    pct = 100.0 * count / total if total else 0.0
    problem = first.text.split(": ", 1)[-1]
    examples = problem[problem.index(", e.g. "):] if ", e.g. " in problem else ""
    text = f"{label}: {count} row{'' if count == 1 else 's'} ({pct:.1f}%){examples}"
    return Failure(first.expectation, first.column, count, pct, text, list(first.missing_columns))


def combine_validation(parts: list[ValidationOutcome], frame: pd.DataFrame | Counts,
                       source: str) -> ValidationOutcome:
    """The whole batch's outcome: it fails if any partition fails. Row-level failures are
    summed; table-level ones (columns, types) are the same in every partition, kept once.
    `frame` is the batch, or on the lake path only its `Counts` (summed over partitions)."""
    counts = frame if isinstance(frame, Counts) else Counts.of(frame)
    grouped: dict[tuple, list[Failure]] = {}
    for outcome in parts:
        for f in outcome.failures:
            label = f.text.split(": ", 1)[0]
            grouped.setdefault((f.expectation, f.column, label), []).append(f)
    failures = [hits[0] if hits[0].unexpected_count is None
                else _combine_failure(key[2], hits, counts) for key, hits in grouped.items()]
    failures.sort(key=_rank)
    evaluated = max((p.evaluated for p in parts), default=0)
    return ValidationOutcome(source, all(p.success for p in parts), evaluated, failures)


def validate_partitions(frame: pd.DataFrame, suite: dict, *, source: str,
                        time_column: str | None, partition_rows: int,
                        run: Mapper) -> ValidationOutcome:
    """GX on every partition on the cluster, combined into the batch's outcome."""
    suite = with_time_checks(suite, time_column)
    outcomes = run(validate_partition, [{"part": p, "suite": suite, "source": source}
                                        for p in split(frame, partition_rows)])
    return combine_validation(outcomes, frame, source)


# --- monitoring ---------------------------------------------------------------------------

@dataclass
class PartitionProfile:
    """What one partition gives the batch's monitoring: its input metrics over every row,
    and its share of the whole batch's sample."""

    inputs: InputMetrics
    sample: pd.DataFrame


def sample_sizes(rows: list[int], max_rows: int = MAX_ROWS) -> list[int]:
    """Rows each partition contributes: all of them up to `max_rows` in total, else a share
    proportional to the partition's size (rounded down, so the sample stays under max_rows)."""
    total = sum(rows)
    if total <= max_rows:
        return list(rows)
    return [int(max_rows * r // total) for r in rows]


def profile_partition(part: pd.DataFrame, spec: DatasetSpec, ranges: Ranges, sample_n: int,
                      seed: int) -> PartitionProfile:
    """Input metrics of every row of the partition and a seeded sample of `sample_n` rows."""
    sample = part if sample_n >= len(part) else part.sample(n=sample_n, random_state=seed)
    return PartitionProfile(input_metrics(part, spec, ranges), sample)


def combine_inputs(parts: list[InputMetrics]) -> InputMetrics:
    """Exact whole-batch shares from the partitions' shares and sizes: missing is over rows,
    out of range over the present (non-missing) values, as `quality.input_metrics` does."""
    rows = sum(p.rows for p in parts)
    missing: dict[str, float] = {}
    oor: dict[str, float] = {}
    for col in parts[0].missing_share if parts else []:
        miss = [p.missing_share[col] * p.rows for p in parts]
        missing[col] = float(sum(miss) / rows) if rows else 0.0
        if col in parts[0].out_of_range_share:
            present = [p.rows - m for p, m in zip(parts, miss, strict=True)]
            bad = sum(p.out_of_range_share[col] * n for p, n in zip(parts, present, strict=True))
            oor[col] = float(bad / sum(present)) if sum(present) else 0.0
    return InputMetrics(rows, missing, oor)


def profile_partitions(frame: pd.DataFrame, spec: DatasetSpec, ranges: Ranges, *,
                       partition_rows: int, run: Mapper, max_rows: int = MAX_ROWS
                       ) -> tuple[pd.DataFrame, InputMetrics]:
    """The batch's sample (drift, adversarial validation and decay are measured on it, as
    `monitor_batch` does on one process) and its input metrics over every row."""
    parts = split(frame, partition_rows)
    sizes = sample_sizes([len(p) for p in parts], max_rows)
    profiles = run(profile_partition,
                   [{"part": p, "spec": spec, "ranges": ranges, "sample_n": n, "seed": i}
                    for i, (p, n) in enumerate(zip(parts, sizes, strict=True))])
    return (pd.concat([p.sample for p in profiles]),
            combine_inputs([p.inputs for p in profiles]))


def client_mapper(client: Any) -> Mapper:
    """A Mapper on a plain `distributed.Client`, without Prefect (benchmarks, tests)."""
    def run(fn: Callable[..., Any], calls: list[dict]) -> list:
        return client.gather([client.submit(fn, pure=False, **call) for call in calls])
    return run


# --- training -----------------------------------------------------------------------------

class DaskFitter:
    """Fits with lightgbm.dask on the cluster at `address`: one partition per worker, the
    same parameters and sample weights as the single-process fit, returned as the plain
    LightGBM estimator (`to_local`), so it is registered and served like any other."""

    engine = "lightgbm.dask"

    def __init__(self, address: str) -> None:
        self.address = address

    def __call__(self, task: str, params: dict, X: pd.DataFrame, y: np.ndarray,
                 weights: np.ndarray, categorical: list[str] | str) -> Any:
        import dask.dataframe as dd
        import lightgbm.dask as lgb_dask
        from distributed import Client

        # lightgbm.dask sets each worker's threads from Dask; n_jobs would be ignored (and warn).
        params = {k: v for k, v in params.items() if k != "n_jobs"}
        # Rows in a seeded random order: distributed LightGBM builds each feature's histogram
        # bins from one worker's rows, and time-ordered partitions gave one worker only the
        # oldest rows (on Elec2, gate accuracy 0.83 instead of 0.87). Order means nothing to
        # the trees; recency lives in the weights.
        order = np.random.default_rng(0).permutation(len(X))
        X = X.iloc[order].reset_index(drop=True)
        y, weights = np.asarray(y)[order], np.asarray(weights)[order]
        with Client(self.address) as client:
            n = max(1, min(len(client.scheduler_info()["workers"]), len(X)))
            Xd = dd.from_pandas(X, npartitions=n, sort=False)
            yd = dd.from_pandas(pd.Series(y), npartitions=n, sort=False)
            wd = dd.from_pandas(pd.Series(weights), npartitions=n, sort=False)
            cls = (lgb_dask.DaskLGBMClassifier if task == "classification"
                   else lgb_dask.DaskLGBMRegressor)
            model = cls(client=client, **params)
            with warnings.catch_warnings():
                # The estimator hands its own n_jobs (None) to lightgbm.dask's training, which
                # then warns that it ignores it: a warning about nothing the user set.
                warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
                model.fit(Xd, yd, sample_weight=wd, categorical_feature=categorical)
            return model.to_local()


def native_stdout_to_devnull() -> None:
    """On a LocalCluster's worker: its stdout (inherited from the flow's terminal) to
    /dev/null. lightgbm.dask's native "[LightGBM] [Info] Trying to bind port ..." lines are
    printed by C from the task's thread, where LightGBM's log level and Python callback
    (both per thread) were never set, so neither verbose=-1 nor a logger reaches them. The
    workers' logs go to stderr, and their errors come back to the flow as exceptions."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
