"""A batch too big for one process, read, validated and written to the lake by Dask workers,
and monitored from the lake's partition by them: the flow holds per-partition results and
the monitoring sample, never the batch.

Intake (`stage`, then `file`):
1. the landed file is cut into partitions by Dask itself (`dask.bytes.read_bytes` line
   blocks of about `partition_rows` rows for CSV, the same blocks `dd.read_csv` reads;
   `dd.read_parquet` row groups for Parquet);
2. each worker reads its partition, parses the time column, runs the GX suite on it, drops
   the rows it repeats, writes what is left as `part-<i>.parquet` into a hidden staging
   directory of the lake, with its sorted row hashes beside it (`stage_partition`);
3. the partition verdicts combine into the batch's (`distributed.combine_validation`);
4. if it passed, the row hashes are read back one hash range at a time (a bucket, never
   all of them): they give the content hash exactly as `ingest.content_hash` computes it
   (sorted row hashes of the unique rows) and the rows one partition repeats of an earlier
   one, which workers then drop (`tidy_partition`);
5. rows out of time order are put in order by a stable range sort over the partitions
   (`split_partition`, `merge_bucket`): the lake keeps what `ingest.tidy` keeps, in the
   same order;
6. `file` publishes the staging directory as `lake/batch_id=<id>/` in one rename and writes
   the manifest record `ingest.accept` writes; a failed batch is quarantined as ever (the raw
   file moved, byte for byte) and its staging directory removed.

With an object-store home the staging directory is in the store too, so workers on any
machine write their parts there (one PUT each); publishing copies them under the batch's
name, and the manifest record, written after, is what makes the batch part of the lake.

Monitoring (`profile_stored`): `dd.read_parquet` of the batch's partition; each worker
attaches the late labels to its partition and returns its input metrics and its share of
the sample (`distributed.profile_partition`).

Dask is imported inside the functions that need it, so a small batch never pays for it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.files import at, is_remote, move_tree, remove_tree
from tasks.data import ingest, labels, lake
from tasks.data.home import Home
from tasks.data.spec import DatasetSpec
from tasks.data.validate import ValidationOutcome, with_time_checks
from tasks.monitoring.drift import MAX_ROWS
from tasks.monitoring.quality import InputMetrics, Ranges
from tasks.scale.distributed import (
    Counts,
    Mapper,
    PartitionProfile,
    combine_inputs,
    combine_validation,
    profile_partition,
    validate_partition,
)

QUANTILES = 32  # time quantiles a partition reports, for the cut points of a range sort
_DASK_CONFIG = {"dataframe.convert-string": False}  # object strings, as pandas reads them


class PartReader:
    """One partition of a file as Dask cuts it, read where the task runs (a worker). A plain
    class, not a dataclass: Prefect must not walk into the Dask graph it holds."""

    def __init__(self, read: Callable[[], pd.DataFrame]) -> None:
        self._read = read

    def read(self) -> pd.DataFrame:
        import dask

        with dask.config.set(_DASK_CONFIG):
            return self._read()


class _CsvBlock:
    """A block of whole lines of a CSV (a `read_bytes` delayed) with the header in front:
    pandas infers the types from the block, as it would from the whole file."""

    def __init__(self, block: Any, header: bytes, first: bool) -> None:
        self.block, self.header, self.first = block, header, first

    def __call__(self) -> pd.DataFrame:
        data = self.block.compute(scheduler="sync")
        body = data if self.first else self.header + data
        return pd.read_csv(io.BytesIO(body), encoding="utf-8-sig")


class _Delayed:
    def __init__(self, part: Any) -> None:
        self.part = part

    def __call__(self) -> pd.DataFrame:
        return self.part.compute(scheduler="sync")


def readers(path: str | Path, rows: int, partition_rows: int) -> list[PartReader]:
    """The landed file as partitions of about `partition_rows` rows (one at least). A
    gzipped CSV cannot be cut, and a Parquet row group is not cut: each is one partition."""
    import dask
    import fsspec

    path = str(path)
    blocks = max(1, math.ceil(rows / max(1, partition_rows)))
    with dask.config.set(_DASK_CONFIG):
        if path.endswith(".parquet"):
            import dask.dataframe as dd

            with fsspec.open(path, "rb") as fh:
                size = fh.size
            frame = dd.read_parquet(path, split_row_groups="infer",
                                    blocksize=max(1, size // blocks),
                                    dataset={"partitioning": None})
            return [PartReader(_Delayed(p)) for p in frame.to_delayed()]
        from dask.bytes import read_bytes

        gz = path.endswith(".gz")
        with fsspec.open(path, "rb", compression="gzip" if gz else None) as fh:
            header = fh.readline().removeprefix(b"\xef\xbb\xbf")
            size = fh.size if not gz else None
        # read_bytes makes size // blocksize blocks: floor here, so there are `blocks`
        blocksize = None if gz or blocks == 1 else max(1, size // blocks)
        _, parts = read_bytes(path, delimiter=b"\n", blocksize=blocksize, sample=False,
                              compression="gzip" if gz else None)
        return [PartReader(_CsvBlock(b, header, i == 0)) for i, b in enumerate(parts[0])]


# --- intake -------------------------------------------------------------------------------

@dataclass
class StagedPart:
    """What one worker reports of its partition: the flow combines these, never the rows."""

    index: int
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    error: str | None = None  # the read failed: one line
    bad_times: int = 0  # values of the time column that are not timestamps
    bad_examples: list[str] = field(default_factory=list)
    outcome: ValidationOutcome | None = None
    counts: Counts | None = None
    written: Written | None = None  # the tidied part, when the partition passed


@dataclass
class Written:
    """A tidied part file in the staging directory: its rows, types and time span."""

    index: int
    rows: int
    dtypes: dict[str, str]
    ordered: bool
    time_min: Any
    time_max: Any
    quantiles: list[int]


def _parts_dir(staging: str) -> Path:
    return at(staging) / "parts"


def _hashes_path(staging: str, index: int) -> Path:
    return at(staging) / "hashes" / f"{index}.npy"


def _writing(path: Path) -> Any:
    """A file opened for writing, its folder made first on a disk (a store has none)."""
    if not is_remote(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")


def _put_parquet(frame: pd.DataFrame, path: Path) -> None:
    with _writing(path) as fh:
        frame.to_parquet(fh, index=False)


def _load_hashes(path: Path) -> np.ndarray:
    """A part's sorted row hashes: mapped from a disk (only the ranges read are paged in),
    read whole from a store (8 bytes a row)."""
    if is_remote(path):
        with path.open("rb") as fh:
            return np.load(io.BytesIO(fh.read()))
    return np.load(path, mmap_mode="r")


def _part_path(staging: str, index: int) -> Path:
    return _parts_dir(staging) / f"part-{index}.parquet"


def _write(frame: pd.DataFrame, spec: DatasetSpec, staging: str, index: int) -> Written:
    """Write a tidied part and its sorted row hashes; describe it."""
    _put_parquet(frame, _part_path(staging, index))
    with _writing(_hashes_path(staging, index)) as fh:
        np.save(fh, np.sort(ingest.row_hashes(frame, spec)))
    times = frame[spec.time_column]
    known = times.dropna().astype("datetime64[ns]").astype("int64").to_numpy()
    cuts = (np.quantile(known, np.linspace(0, 1, QUANTILES + 1)).astype("int64").tolist()
            if len(known) else [])
    return Written(index, len(frame), {c: str(t) for c, t in frame.dtypes.items()},
                   bool(times.is_monotonic_increasing), times.min(), times.max(), cuts)


def stage_partition(part: PartReader, index: int, suite: dict, source: str,
                    spec: DatasetSpec, staging: str) -> StagedPart:
    """Read, parse the times, validate; if the partition passed, drop the rows it repeats and
    write it aside. Runs on a worker; returns counts and verdicts only."""
    try:
        frame = part.read()
    except UnicodeDecodeError as exc:
        return StagedPart(index, error=f"{source}: not UTF-8 text (byte "
                                       f"{exc.object[exc.start:exc.end]!r})")
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt input
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StagedPart(index, error=f"{source}: cannot be read as a table: {detail}")
    out = StagedPart(index, rows=len(frame), columns=[str(c) for c in frame.columns])
    if not len(frame) and index:  # a block with no whole line: nothing to judge or keep
        return out
    if spec.time_column in frame.columns:
        parsed, bad = ingest.coerce_times(frame[spec.time_column])
        if len(bad):
            out.bad_times = len(bad)
            out.bad_examples = [str(v) for v in bad.astype(str).unique()[:3]]
            return out
        frame[spec.time_column] = parsed
    out.outcome = validate_partition(frame, suite, source)
    out.counts = Counts.of(frame)
    if out.outcome.success and all(c in frame.columns for c in spec.columns):
        kept = frame[spec.columns].drop_duplicates(keep="first")
        out.written = _write(kept, spec, staging, index)
    return out


def tidy_partition(index: int, spec: DatasetSpec, staging: str, drop: np.ndarray,
                   dtypes: dict[str, str]) -> Written:
    """Drop the rows an earlier partition already holds (by row hash) and give columns the
    type the whole batch has (an int column that is float elsewhere); rewrite the part."""
    frame = lake.read_part(_part_path(staging, index))
    if len(drop):
        frame = frame[~np.isin(ingest.row_hashes(frame, spec), drop)]
    for col, dtype in dtypes.items():
        if str(frame[col].dtype) != dtype:
            frame[col] = frame[col].astype(dtype)
    return _write(frame, spec, staging, index)


def split_partition(index: int, spec: DatasetSpec, staging: str, cuts: list[int]) -> None:
    """A range sort's first half: the part's rows into one piece per time range (missing
    times in the last, where a sort puts them)."""
    frame = lake.read_part(_part_path(staging, index))
    times = frame[spec.time_column]
    ns = times.astype("datetime64[ns]").astype("int64").to_numpy()
    bucket = np.searchsorted(np.asarray(cuts, dtype="int64"), ns, side="right")
    bucket[times.isna().to_numpy()] = len(cuts)
    for j in np.unique(bucket):
        _put_parquet(frame[bucket == j], at(staging) / "sort" / str(int(j)) / f"{index}.parquet")


def merge_bucket(bucket: int, spec: DatasetSpec, staging: str, parts: list[int]) -> int:
    """A range sort's second half: one time range's pieces in partition order, sorted
    stably, so ties keep the order the whole batch had. Returns the rows written."""
    folder = at(staging) / "sort" / str(bucket)
    pieces = [lake.read_part(p) for i in parts if (p := folder / f"{i}.parquet").exists()]
    if not pieces:
        return 0
    frame = pd.concat(pieces, ignore_index=True).sort_values(spec.time_column, kind="stable")
    _put_parquet(frame, at(staging) / "sorted" / f"part-{bucket}.parquet")
    return len(frame)


@dataclass
class Staged:
    """A landed file as the workers left it: a read error, or the batch's validation outcome
    and, when it passed, the tidied parts in the staging directory and their summary."""

    staging: str
    rows: int = 0
    error: str | None = None
    outcome: ValidationOutcome | None = None
    tidied: ingest.Tidied | None = None


def _read_error(parts: list[StagedPart], name: str, spec: DatasetSpec) -> str | None:
    """The one line `ingest.read_batch` would give, from the partitions' reports."""
    failed = next((p.error for p in parts if p.error), None)
    if failed:
        return failed
    try:
        ingest.check_delimiter(name, parts[0].columns)
    except ingest.BatchReadError as exc:
        return str(exc)
    bad = sum(p.bad_times for p in parts)
    if bad:
        examples = list(dict.fromkeys(e for p in parts for e in p.bad_examples))
        return ingest.bad_times_reason(name, spec.time_column, bad, sum(p.rows for p in parts),
                                       examples)
    return None


def _common_dtypes(written: list[Written]) -> dict[str, str]:
    """The columns whose type differs between parts, with the type pandas would have
    inferred reading the file at once: float64 for ints and floats, object otherwise."""
    out: dict[str, str] = {}
    for col in written[0].dtypes:
        kinds = {w.dtypes[col] for w in written if w.rows}
        if len(kinds) > 1:
            numeric = all(k.startswith(("int", "float")) for k in kinds)
            out[col] = str(np.result_type(*kinds)) if numeric else "object"
    return out


def _bucket_edges(count: int) -> np.ndarray:
    bits = max(0, math.ceil(math.log2(max(1, count))))
    return np.array([k << (64 - bits) for k in range(1, 1 << bits)], dtype=np.uint64)


def content_and_repeats(spec: DatasetSpec, staging: str, indexes: list[int]
                        ) -> tuple[str, int, dict[int, np.ndarray]]:
    """The content hash of the tidied batch, its unique rows, and for each part the row
    hashes an earlier part already holds. The row hashes are read one hash range at a time
    (as many ranges as parts), so this holds about one part's worth of hashes, 8 bytes a
    row; the digest is fed the ranges in ascending order, which is `ingest.content_hash`'s
    sorted whole."""
    hashes = {i: _load_hashes(_hashes_path(staging, i)) for i in indexes}
    edges = _bucket_edges(len(indexes))
    lows = {i: np.searchsorted(h, edges) for i, h in hashes.items()}
    digest, unique = ingest.content_digest(spec), 0
    repeats: dict[int, list[np.ndarray]] = {}
    for k in range(len(edges) + 1):
        pieces, owners = [], []
        for i in indexes:
            lo = 0 if k == 0 else int(lows[i][k - 1])
            hi = len(hashes[i]) if k == len(edges) else int(lows[i][k])
            pieces.append(np.asarray(hashes[i][lo:hi]))
            owners.append(np.full(hi - lo, i))
        if not pieces:
            continue
        values, owner = np.concatenate(pieces), np.concatenate(owners)
        order = np.lexsort((owner, values))  # by hash, then the earliest part first
        values, owner = values[order], owner[order]
        first = np.ones(len(values), dtype=bool)
        first[1:] = values[1:] != values[:-1]
        digest.update(values[first].tobytes())
        unique += int(first.sum())
        for i in np.unique(owner[~first]):
            repeats.setdefault(int(i), []).append(values[~first & (owner == i)])
    return (digest.hexdigest()[:32], unique,
            {i: np.concatenate(found) for i, found in repeats.items()})


def _in_order(written: list[Written]) -> bool:
    """The batch's rows (parts in order) are in time order: each part is, and no part
    starts before the one before it ends."""
    parts = [w for w in written if w.rows]
    if not all(w.ordered for w in parts):
        return False
    return all(a.time_max <= b.time_min for a, b in zip(parts, parts[1:], strict=False))


def _cuts(written: list[Written], count: int) -> list[int]:
    """`count - 1` time cut points from the parts' quantiles, weighted by their rows."""
    values = np.concatenate([np.repeat(w.quantiles, max(1, w.rows // QUANTILES))
                             for w in written if w.quantiles])
    return sorted(set(np.quantile(values, np.linspace(0, 1, count + 1)[1:-1])
                      .astype("int64").tolist()))


def _sort(run: Mapper, spec: DatasetSpec, staging: str, written: list[Written]) -> None:
    """A stable range sort of the staged parts, on the workers; the sorted parts replace
    the staged ones (numbered by time range)."""
    indexes = [w.index for w in written if w.rows]
    cuts = _cuts(written, len(indexes))
    run(split_partition, [{"index": i, "spec": spec, "staging": staging, "cuts": cuts}
                          for i in indexes])
    run(merge_bucket, [{"bucket": j, "spec": spec, "staging": staging, "parts": indexes}
                       for j in range(len(cuts) + 1)])
    remove_tree(_parts_dir(staging))
    move_tree(at(staging) / "sorted", _parts_dir(staging))


def stage(path: Path, rows: int, suite: dict, spec: DatasetSpec, lake_root: Path,
          batch_id: str, *, partition_rows: int, run: Mapper) -> Staged:
    """The landed file read, validated and (if it passed) tidied into part files by the
    workers, in a hidden staging directory of the lake. Nothing enters the lake here."""
    staging = lake.staging_dir(lake_root, batch_id)
    remove_tree(staging)  # left by a cycle that died
    if not is_remote(staging):
        staging.mkdir(parents=True)
    out = Staged(str(staging), rows=rows)
    try:
        ingest.check_landed(path)
    except ingest.BatchReadError as exc:
        out.error = str(exc)
        return out
    try:
        found = readers(path, rows, partition_rows)
    except Exception as exc:  # pyarrow/fsspec raise many types for a corrupt file
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        out.error = f"{path.name}: cannot be read as a table: {detail}"
        return out
    suite = with_time_checks(suite, spec.time_column)
    parts = run(stage_partition, [{"part": r, "index": i, "suite": suite, "source": path.name,
                                   "spec": spec, "staging": out.staging}
                                  for i, r in enumerate(found)])
    out.rows = sum(p.rows for p in parts)
    out.error = _read_error(parts, path.name, spec)
    if out.error:
        return out
    judged = [p for p in parts if p.outcome is not None]
    out.outcome = combine_validation([p.outcome for p in judged],
                                     Counts.total([p.counts for p in judged]), path.name)
    if out.outcome.success:
        written = [p.written for p in judged if p.written is not None]
        out.tidied = _tidy(run, spec, out.staging, written, out.rows)
    return out


def _tidy(run: Mapper, spec: DatasetSpec, staging: str, written: list[Written],
          rows: int) -> ingest.Tidied:
    """What `ingest.tidy` does to the whole batch, done to its parts: repeated rows once
    (across parts too), rows in time order; and the content hash of the result."""
    content, unique, repeats = content_and_repeats(spec, staging, [w.index for w in written])
    dtypes = _common_dtypes(written)
    redo = sorted(set(repeats) | ({w.index for w in written} if dtypes else set()))
    if redo:
        fixed = run(tidy_partition, [{"index": i, "spec": spec, "staging": staging,
                                      "drop": repeats.get(i, np.array([], dtype=np.uint64)),
                                      "dtypes": dtypes} for i in redo])
        by_index = {w.index: w for w in written} | {w.index: w for w in fixed}
        written = [by_index[i] for i in sorted(by_index)]
    resorted = not _in_order(written)
    if resorted:
        _sort(run, spec, staging, written)
    span = pd.Series([t for w in written if w.rows for t in (w.time_min, w.time_max)])
    remove_tree(at(staging) / "hashes")
    remove_tree(at(staging) / "sort")
    return ingest.Tidied(unique, content, span.min(), span.max(),
                         {"duplicates_dropped": rows - unique, "resorted": int(resorted)})


def file(home: Home, landed: ingest.LandedFile, spec: DatasetSpec, staged: Staged) -> str | None:
    """File the batch as `ingest.accept` / `ingest.reject` do: the staged parts into the lake
    in one rename, or the raw file into quarantine. Returns the quarantine reason, if any."""
    discard = lambda: remove_tree(at(staged.staging))  # noqa: E731
    try:
        if staged.error:
            return ingest.reject(home, landed, staged.error, dataset=spec.name)
        outcome = staged.outcome
        if not outcome.success:
            return ingest.reject(home, landed, outcome.reason, outcome.to_dict(),
                                 outcome.to_markdown(), rows=staged.rows, dataset=spec.name)
        parts = _parts_dir(staged.staging)
        ingest.accept_tidied(home, landed, spec, staged.tidied,
                             publish=lambda: lake.publish_parts(home.lake, landed.batch_id,
                                                                parts),
                             discard=discard)
        return None
    finally:
        discard()


# --- monitoring ---------------------------------------------------------------------------

def profile_stored_partition(part: PartReader, home: Home, spec: DatasetSpec, batch_id: str,
                             ranges: Ranges, total: int, max_rows: int,
                             seed: int) -> PartitionProfile:
    """One lake partition with its late labels: input metrics over its rows and its share of
    the batch's sample (`distributed.sample_sizes`, from its own rows and the batch's)."""
    frame = labels.attach(part.read().assign(**{lake.BATCH_COLUMN: batch_id}), home, spec)
    n = len(frame) if total <= max_rows else int(max_rows * len(frame) // total)
    return profile_partition(frame, spec, ranges, n, seed)


def profile_stored(home: Home, spec: DatasetSpec, batch_id: str, ranges: Ranges, *,
                   run: Mapper, max_rows: int = MAX_ROWS) -> tuple[pd.DataFrame, InputMetrics]:
    """A lake batch's sample and input metrics, its partition read by `dd.read_parquet` on
    the workers. The row count comes from the part files' footers."""
    import dask
    import dask.dataframe as dd

    total = lake.partition_rows(home.lake, batch_id)
    with dask.config.set(_DASK_CONFIG):
        frame = dd.read_parquet(str(lake.batch_dir(home.lake, batch_id)),
                                dataset={"partitioning": None})
        parts = [PartReader(_Delayed(p)) for p in frame.to_delayed()]
    profiles = run(profile_stored_partition,
                   [{"part": p, "home": home, "spec": spec, "batch_id": batch_id,
                     "ranges": ranges, "total": total, "max_rows": max_rows, "seed": i}
                    for i, p in enumerate(parts)])
    return (pd.concat([p.sample for p in profiles]),
            combine_inputs([p.inputs for p in profiles]))
