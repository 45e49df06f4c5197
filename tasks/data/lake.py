"""The parquet lake: one partition per accepted batch, so history is rebuilt from batches."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.files import is_remote, replacing

BATCH_COLUMN = "_batch_id"


def partition_path(lake: Path, batch_id: str) -> Path:
    return lake / f"batch_id={batch_id}" / "part-0.parquet"


def write_partition(lake: Path, batch_id: str, frame: pd.DataFrame) -> Path:
    """Write via a temp name and rename, so a reader never sees half a partition."""
    path = partition_path(lake, batch_id)
    with replacing(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


def read_partition(path: Path) -> pd.DataFrame:
    """One partition file, from a local disk or an object store (pandas takes a local path;
    a store's object is read through its fsspec file, which pyarrow reads in ranges)."""
    if is_remote(path):
        with path.open("rb") as fh:
            return pd.read_parquet(fh)
    return pd.read_parquet(path)


def read_batches(lake: Path, batch_ids: list[str]) -> pd.DataFrame:
    """The named batches as one frame, tagged with their batch id."""
    frames = [
        read_partition(partition_path(lake, b)).assign(**{BATCH_COLUMN: b}) for b in batch_ids
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
