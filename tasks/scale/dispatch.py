"""Dispatching the heavy steps to Dask, through prefect-dask's task runner: every partition
is a Prefect task run of the cycle, executed on a Dask worker. How a batch is split and how
partition results combine into the batch's verdicts is in `distributed`.

The cycle asks `engine.wants(rows)` and calls these instead of the in-process step; they
are work, not ordering, so they live here rather than in flows/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from prefect import get_client, task

from tasks.data.home import Home
from tasks.data.ingest import LandedFile
from tasks.data.spec import DatasetSpec
from tasks.data.validate import ValidationOutcome
from tasks.monitoring.quality import InputMetrics, Ranges
from tasks.scale import distributed, landed

_TASKS = {distributed.validate_partition: task(distributed.validate_partition,
                                               name="validate-partition"),
          distributed.profile_partition: task(distributed.profile_partition,
                                              name="profile-partition"),
          # the lake path (tasks/scale/landed.py): workers read, validate and write
          landed.stage_partition: task(landed.stage_partition, name="validate-partition"),
          landed.tidy_partition: task(landed.tidy_partition, name="tidy-partition"),
          landed.split_partition: task(landed.split_partition, name="split-partition"),
          landed.merge_bucket: task(landed.merge_bucket, name="sort-partition"),
          landed.profile_stored_partition: task(landed.profile_stored_partition,
                                                name="profile-partition")}


def engine(*, dask_min_rows: int, dask_address: str | None,
           partition_rows: int) -> distributed.DaskEngine:
    """The cycle's Dask engine (the fields of flows.params.Scale). A LocalCluster's workers
    report their task runs to this run's Prefect API, even the temporary one of embedded
    mode (else each worker would start a server of its own)."""
    def worker_env() -> dict[str, str]:
        api_url = str(get_client(sync_client=True).api_url or "")
        return {"PREFECT_API_URL": api_url} if api_url else {}
    return distributed.DaskEngine(dask_min_rows, dask_address, partition_rows,
                                  worker_env=worker_env)


def _on_dask(engine: distributed.DaskEngine) -> distributed.Mapper:
    """Each call as a Prefect task run on the cluster, through prefect-dask's task runner."""
    from prefect_dask import DaskTaskRunner  # imports distributed: only when a step needs it

    def run(fn: Callable[..., Any], calls: list[dict]) -> list:
        with DaskTaskRunner(address=engine.scheduler()) as runner:
            futures = [runner.submit(_TASKS[fn], call) for call in calls]
            return [future.result() for future in futures]
    return run


def validate(engine: distributed.DaskEngine, frame: pd.DataFrame, suite: dict, *, source: str,
             time_column: str | None) -> ValidationOutcome:
    """GX per partition, combined into the batch's outcome."""
    return distributed.validate_partitions(frame, suite, source=source, time_column=time_column,
                                           partition_rows=engine.partition_rows,
                                           run=_on_dask(engine))


def profile(engine: distributed.DaskEngine, frame: pd.DataFrame, spec: DatasetSpec,
            ranges: Ranges) -> tuple[pd.DataFrame, InputMetrics]:
    """The batch's sample and input metrics, from its partitions (monitor runs on them)."""
    return distributed.profile_partitions(frame, spec, ranges,
                                          partition_rows=engine.partition_rows,
                                          run=_on_dask(engine))


def stage(engine: distributed.DaskEngine, home: Home, file: LandedFile, spec: DatasetSpec,
          suite: dict, rows: int) -> landed.Staged:
    """A landed file too big for this process, read, validated and tidied into part files
    by the workers (`landed.stage`); `landed.file` then files it."""
    return landed.stage(file.path, rows, suite, spec, home.lake, file.batch_id,
                        partition_rows=engine.partition_rows, run=_on_dask(engine))


def file(home: Home, file: LandedFile, spec: DatasetSpec, staged: landed.Staged) -> str | None:
    """The staged batch into the lake (one rename) or its raw file into quarantine, with the
    manifest record the single-process path writes; returns the quarantine reason, if any."""
    return landed.file(home, file, spec, staged)


def profile_stored(engine: distributed.DaskEngine, home: Home, spec: DatasetSpec,
                   batch_id: str, ranges: Ranges) -> tuple[pd.DataFrame, InputMetrics]:
    """A lake batch's sample and input metrics, its partition read by the workers."""
    return landed.profile_stored(home, spec, batch_id, ranges, run=_on_dask(engine))


def fitter(engine: distributed.DaskEngine, rows: int) -> distributed.DaskFitter | None:
    """lightgbm.dask on the cluster for a training set of `rows` rows, or None (in process)."""
    return distributed.DaskFitter(engine.scheduler()) if engine.wants(rows) else None
