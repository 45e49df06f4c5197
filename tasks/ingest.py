"""Ingest: turn files dropped in `landing/` into batches with content-hash ids.

The id is the content hash, so landing the same bytes twice is a no-op, and the raw
file is only ever moved (to `archive/` or `quarantine/`), never rewritten or deleted.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from filelock import FileLock

from tasks import lake, manifest
from tasks.home import Home
from tasks.idle import is_candidate
from tasks.spec import DatasetSpec
from tasks.validate import quote

# A batch is read whole (GX validates whole frames), so a bigger one is refused rather than
# allowed to exhaust memory. 256 MiB of CSV is about 3.5M rows of the synthetic stream.
MAX_BYTES_ENV, DEFAULT_MAX_BYTES = "GREENLIGHT_MAX_BATCH_BYTES", 256 << 20
# A file counts as complete once its size and mtime have not changed for this long.
SETTLE_ENV, DEFAULT_SETTLE_SECONDS = "GREENLIGHT_SETTLE_SECONDS", 1.0
_DELIMITERS = (";", "\t", "|")


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


def sha256(path: Path) -> str:
    """The batch id's source: the bytes, streamed, so a large file never sits in memory."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class Scan:
    """What a cycle may take from landing now, and what is still being written."""

    ready: list[LandedFile] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        raise ValueError(f"{name}={os.environ[name]!r}: not a number") from None


def _fingerprint(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:  # taken meanwhile (by a writer's rename or another cycle)
        return None
    return st.st_size, st.st_mtime_ns


def scan(landing: Path, settle_seconds: float | None = None) -> Scan:
    """Files waiting in landing, oldest name first (replayed batches are named in time order).

    A file is taken only once its size and mtime have been stable for `settle_seconds`
    (GREENLIGHT_SETTLE_SECONDS): a file still being written is left for the next cycle
    instead of being quarantined as truncated. Old files cost no wait; for young ones the
    scan waits out the rest of the window once, and a file that changes while it is hashed
    is also left. Writers that write to a hidden name and rename are never caught half-way.
    """
    settle = _env_number(SETTLE_ENV, DEFAULT_SETTLE_SECONDS) if settle_seconds is None \
        else settle_seconds
    paths = sorted((p for p in landing.glob("*") if is_candidate(p)), key=lambda p: p.name)
    before = {p: _fingerprint(p) for p in paths}
    ages = [time.time() - fp[1] / 1e9 for fp in before.values() if fp is not None]
    youngest = min(ages, default=settle)
    if youngest < settle:
        time.sleep(min(settle, settle - max(youngest, 0.0)))
    out = Scan()
    for path in paths:
        seen = _fingerprint(path)
        if seen is None:
            continue
        if seen != before[path]:
            out.busy.append(path.name)
            continue
        digest = sha256(path)
        if _fingerprint(path) != seen:
            out.busy.append(path.name)
            continue
        out.ready.append(LandedFile(path, digest, seen[0]))
    return out


def scan_landing(landing: Path) -> list[LandedFile]:
    """The files a cycle may take now (see `scan`)."""
    return scan(landing).ready


def max_batch_bytes() -> int:
    return int(_env_number(MAX_BYTES_ENV, DEFAULT_MAX_BYTES))


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _gunzipped_size(path: Path, limit: int) -> int:
    """Decompressed size, counted in chunks and stopped past `limit` (a gzip bomb is cheap
    to land and expensive to read)."""
    total = 0
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            total += len(chunk)
            if total > limit:
                break
    return total


def _parquet_size(path: Path) -> int:
    """Uncompressed size from the footer, without reading any data."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def check_size(path: Path) -> None:
    """Refuse, before reading, a batch too big to hold in memory, and say how to raise the cap."""
    limit = max_batch_bytes()
    try:
        if path.name.endswith(".gz"):
            size, what = _gunzipped_size(path, limit), "uncompressed"
        elif path.name.endswith(".parquet"):
            size, what = _parquet_size(path), "uncompressed"
        else:
            size, what = path.stat().st_size, "on disk"
    except (OSError, EOFError, zlib.error, ValueError) as exc:  # pyarrow's ArrowInvalid too
        kind = "gzip" if path.name.endswith(".gz") else "Parquet"
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BatchReadError(f"{path.name}: truncated or corrupt {kind}: {detail}") from None
    if size > limit:
        shown = f"over {_mib(limit)}" if path.name.endswith(".gz") else _mib(size)
        raise BatchReadError(f"{path.name}: too large to read at once ({shown} {what}, the limit "
                             f"is {_mib(limit)}; split the batch or raise {MAX_BYTES_ENV})")


def read_batch(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """Read a landed file; anything unreadable becomes a one-line BatchReadError."""
    if path.stat().st_size == 0:
        raise BatchReadError(f"{path.name}: empty file (0 bytes)")
    check_size(path)
    try:
        if path.name.endswith(".parquet"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchReadError(f"{path.name}: not UTF-8 text (byte {exc.object[exc.start:exc.end]!r}"
                             f" at offset {exc.start})") from None
    except pd.errors.EmptyDataError:
        raise BatchReadError(f"{path.name}: no header and no rows (blank file)") from None
    except Exception as exc:  # pandas/pyarrow raise many types for corrupt input
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BatchReadError(f"{path.name}: cannot be read as a table: {detail}") from None
    _check_delimiter(path, frame)
    _check_last_line(path)
    if spec.time_column in frame.columns:
        frame[spec.time_column] = _parse_times(path, frame[spec.time_column])
    return frame


def _parse_times(path: Path, raw: pd.Series) -> pd.Series:
    """Timestamps as datetimes; values that are there but are not dates fail the batch here,
    where the reason can say so (after parsing they would only look missing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": the count below says more
        parsed = pd.to_datetime(raw, errors="coerce")
    bad = raw[parsed.isna() & raw.notna()]
    if len(bad):
        examples = ", ".join(quote(v) for v in bad.astype(str).unique()[:3])
        raise BatchReadError(f"{path.name}: {len(bad)} of {len(raw)} values in column "
                             f"{raw.name} are not timestamps, e.g. {examples}")
    return parsed


def _check_last_line(path: Path) -> None:
    """A CSV cut off mid-row (a copy that died, a full disk): say so, not 'nulls in a column'."""
    if not path.name.endswith(".csv"):
        return
    with path.open("rb") as fh:
        header = fh.readline()
        fh.seek(max(0, path.stat().st_size - (64 << 10)))
        tail = fh.read()
    if tail.endswith(b"\n") or b"\n" not in tail:
        return
    last = tail.rsplit(b"\n", 1)[1]
    have, want = last.count(b",") + 1, header.count(b",") + 1
    if have < want:
        raise BatchReadError(f"{path.name}: truncated: the last line has {have} of {want} fields "
                             "and no line end")


def _check_delimiter(path: Path, frame: pd.DataFrame) -> None:
    """One column whose name holds another delimiter: the file is not comma-separated."""
    if len(frame.columns) != 1:
        return
    header = str(frame.columns[0])
    for sep in _DELIMITERS:
        if sep in header:
            raise BatchReadError(f"{path.name}: one column {quote(header)}: looks "
                                 f"{sep!r}-delimited, expected ','")


def try_read(path: Path, spec: DatasetSpec) -> tuple[pd.DataFrame | None, str | None]:
    """The frame, or the one-line reason it cannot be read (a bad file is data, not a crash)."""
    try:
        return read_batch(path, spec), None
    except BatchReadError as exc:
        return None, str(exc)


def intake_lock(home: Home, timeout_s: float = 600) -> FileLock:
    """One intake at a time per state dir: two cycles must not file the same landed file.

    An OS file lock, so the kernel drops it when its holder dies."""
    return FileLock(str(home.root / "intake.lock"), timeout=timeout_s)


def _move(src: Path, dest_dir: Path) -> Path:
    """Move without rewriting bytes; the directory is per batch, so names never collide."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    os.replace(src, dest)
    return dest


def tidy(frame: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, dict[str, int]]:
    """What the lake keeps: rows in time order, exact duplicate rows once.

    An export that repeats rows or writes them out of order is still good data; training and
    the gate split by time, and a repeated row would count twice. The raw file keeps the
    original bytes, and the manifest says what was changed."""
    columns = frame[spec.columns]
    unique = columns.drop_duplicates(keep="first")
    times = unique[spec.time_column]
    resorted = int(not times.is_monotonic_increasing)
    ordered = unique.sort_values(spec.time_column, kind="stable") if resorted else unique
    return (ordered.reset_index(drop=True),
            {"duplicates_dropped": len(columns) - len(unique), "resorted": resorted})


def accept(home: Home, landed: LandedFile, frame: pd.DataFrame, spec: DatasetSpec) -> str:
    """Lake partition first, then the manifest, then move the raw file: a crash in between
    leaves a file whose hash is known, which the next cycle just files away."""
    kept, changes = tidy(frame, spec)
    lake.write_partition(home.lake, landed.batch_id, kept)
    times = kept[spec.time_column]
    manifest.append(home.manifest, landed.batch_id, file=landed.path.name, sha256=landed.sha256,
                    bytes=landed.size, status="accepted", rows=len(kept),
                    time_min=times.min(), time_max=times.max(),
                    **{k: v for k, v in changes.items() if v})
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
