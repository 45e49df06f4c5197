"""The parquet lake: one partition per accepted batch, so history is rebuilt from batches.

A batch's partition is `batch_id=<id>/` holding `part-0.parquet`, or, when Dask wrote it,
`part-0.parquet` … `part-<n>.parquet` in row order (one per Dask partition)."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import pandas as pd

from core.files import is_remote, move_tree, remove_tree, replacing

BATCH_COLUMN = "_batch_id"


def partition_path(lake: Path, batch_id: str) -> Path:
    return lake / f"batch_id={batch_id}" / "part-0.parquet"


def write_partition(lake: Path, batch_id: str, frame: pd.DataFrame) -> Path:
    """Write via a temp name and rename, so a reader never sees half a partition."""
    path = partition_path(lake, batch_id)
    with replacing(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def read_part(path: Path) -> pd.DataFrame:
    """One part file, from a local disk or an object store (pandas takes a local path;
    a store's object is read through its fsspec file, which pyarrow reads in ranges)."""
    if is_remote(path):
        with path.open("rb") as fh:
            return pd.read_parquet(fh)
    return pd.read_parquet(path)


def read_batches(lake: Path, batch_ids: list[str]) -> pd.DataFrame:
    """The named batches as one frame, tagged with their batch id."""
    frames = [read_partition(lake, b).assign(**{BATCH_COLUMN: b}) for b in batch_ids]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --- partitions of several part files (written by Dask workers) ---------------------------

_PART = re.compile(r"part-(\d+)\.parquet")


def batch_dir(lake: Path, batch_id: str) -> Path:
    """The batch's partition directory (what `dask.dataframe.read_parquet` is pointed at)."""
    return lake / f"batch_id={batch_id}"


def part_paths(lake: Path, batch_id: str) -> list[Path]:
    """The batch's part files in row order: `part-10` comes after `part-9`, so the order is
    numeric, not by name. Hidden and other files are not parts."""
    folder = batch_dir(lake, batch_id)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _PART.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def read_partition(lake: Path, batch_id: str) -> pd.DataFrame:
    """One batch as one frame, from one part file or several (in row order)."""
    parts = part_paths(lake, batch_id) or [partition_path(lake, batch_id)]
    frames = [read_part(p) for p in parts]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def partition_rows(lake: Path, batch_id: str) -> int:
    """The batch's row count from the part files' footers, without reading any rows: what
    decides whether its monitoring runs on Dask."""
    import pyarrow.parquet as pq

    def rows(path: Path) -> int:
        if is_remote(path):  # pyarrow reads the footer through the store's file
            with path.open("rb") as fh:
                return pq.ParquetFile(fh).metadata.num_rows
        return pq.ParquetFile(path).metadata.num_rows
    return sum(rows(p) for p in part_paths(lake, batch_id))


def staging_dir(lake: Path, batch_id: str) -> Path:
    """Where workers write a batch's parts before it enters the lake: hidden, so no reader
    or scan of the lake ever takes it for a batch."""
    return lake / f".staging-{batch_id}"


def publish_parts(lake: Path, batch_id: str, parts: Path) -> Path:
    """Move a directory of finished part files into place as the batch's partition, whole or
    not at all: one rename. A partition already there (a re-run after a crash before the
    manifest said so) is moved aside first and removed after. An object store has no rename:
    the parts are copied under the batch's name, and only the manifest record, written after,
    makes them part of the lake."""
    dest = batch_dir(lake, batch_id)
    if is_remote(dest):  # no rename: copied under its name; the manifest record commits it
        remove_tree(dest)
        move_tree(parts, dest)
        return dest
    old = None
    if dest.exists():
        old = lake / f".replaced-{batch_id}-{uuid.uuid4().hex[:8]}"
        os.replace(dest, old)
    os.replace(parts, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest
