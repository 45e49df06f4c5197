"""Ingest: turn files dropped in `landing/` into batches with content-hash ids.

The id is the content hash, so landing the same bytes twice is a no-op, and the raw
file is only ever moved (to `archive/` or `quarantine/`), never rewritten or deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks import lake, manifest
from tasks.home import Home
from tasks.spec import DatasetSpec

SUFFIXES = (".csv", ".csv.gz", ".parquet")


class BatchReadError(ValueError):
    """A landed file that cannot be read as a table; its message is the one-line reason."""


@dataclass(frozen=True)
class LandedFile:
    path: Path
    sha256: str
    size: int

    @property
    def batch_id(self) -> str:
        return self.sha256[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_candidate(path: Path) -> bool:
    """Skip hidden and temporary names, which writers use while a file is still being written."""
    name = path.name
    return path.is_file() and not name.startswith((".", "~")) and name.endswith(SUFFIXES)


def scan_landing(landing: Path) -> list[LandedFile]:
    """Files waiting in landing, oldest name first (replayed batches are named in time order)."""
    files = sorted((p for p in landing.glob("*") if _is_candidate(p)), key=lambda p: p.name)
    return [LandedFile(p, _sha256(p), p.stat().st_size) for p in files]


def read_batch(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """Read a landed file; anything unreadable becomes a one-line BatchReadError."""
    if path.stat().st_size == 0:
        raise BatchReadError(f"{path.name}: empty file (0 bytes)")
    try:
        if path.name.endswith(".parquet"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, encoding="utf-8")
    except UnicodeDecodeError:
        raise BatchReadError(f"{path.name}: not UTF-8 text") from None
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt input
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BatchReadError(f"{path.name}: cannot be read as a table: {detail}") from None
    if spec.time_column in frame.columns:
        frame[spec.time_column] = pd.to_datetime(frame[spec.time_column], errors="coerce")
    return frame


def try_read(path: Path, spec: DatasetSpec) -> tuple[pd.DataFrame | None, str | None]:
    """The frame, or the one-line reason it cannot be read (a bad file is data, not a crash)."""
    try:
        return read_batch(path, spec), None
    except BatchReadError as exc:
        return None, str(exc)


def _move(src: Path, dest_dir: Path) -> Path:
    """Move without rewriting bytes; the directory is per batch, so names never collide."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    os.replace(src, dest)
    return dest


def accept(home: Home, landed: LandedFile, frame: pd.DataFrame, spec: DatasetSpec) -> str:
    """Lake partition first, then the manifest, then move the raw file: a crash in between
    leaves a file whose hash is known, which the next cycle just files away."""
    lake.write_partition(home.lake, landed.batch_id, frame[spec.columns])
    times = frame[spec.time_column]
    manifest.append(home.manifest, landed.batch_id, file=landed.path.name, sha256=landed.sha256,
                    bytes=landed.size, status="accepted", rows=len(frame),
                    time_min=times.min(), time_max=times.max())
    _move(landed.path, home.archive / landed.batch_id)
    return landed.batch_id


def reject(home: Home, landed: LandedFile, reason: str, report: dict | None = None,
           report_md: str = "", rows: int | None = None) -> str:
    """Keep the raw file in quarantine with a readable report, so a person can fix and re-land
    it."""
    dest_dir = home.quarantine / landed.batch_id
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / "report.json").write_text(
        json.dumps({"file": landed.path.name, "reason": reason, **(report or {})}, indent=2,
                   default=str))
    (dest_dir / "report.md").write_text(
        f"# Quarantined: {landed.path.name}\n\n{reason}\n\n{report_md}\n")
    manifest.append(home.manifest, landed.batch_id, file=landed.path.name, sha256=landed.sha256,
                    bytes=landed.size, status="quarantined", reason=reason,
                    decision="quarantined", rows=rows)
    _move(landed.path, dest_dir)
    return reason


def file_duplicate(home: Home, landed: LandedFile, status: str | None) -> None:
    """Same bytes as a known batch: a no-op, but the file is kept beside its twin."""
    root = home.quarantine if status == "quarantined" else home.archive
    _move(landed.path, root / landed.batch_id)
