"""Ingest: turn files dropped in `landing/` into batches with content-hash ids.

The id is the content hash, so landing the same bytes twice is a no-op, and the raw
file is only ever moved (to `archive/` or `quarantine/`), never rewritten or deleted.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import stat
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from core import events
from core.files import move_into
from tasks.data import lake, landing_rules, manifest
from tasks.data.home import Home
from tasks.data.idle import is_landed
from tasks.data.spec import DatasetSpec
from tasks.data.validate import quote

# A batch is read whole (GX validates whole frames), so a bigger one is refused rather than
# allowed to exhaust memory. 256 MiB of CSV is about 3.5M rows of the synthetic stream.
MAX_BYTES_ENV, DEFAULT_MAX_BYTES = "GREENLIGHT_MAX_BATCH_BYTES", 256 << 20
# A file counts as complete once its size and mtime have not changed for this long.
SETTLE_ENV, DEFAULT_SETTLE_SECONDS = "GREENLIGHT_SETTLE_SECONDS", 1.0
_DELIMITERS = (";", "\t", "|")


class BatchReadError(ValueError):
    """A landed file that cannot be read as a table; its message is the one-line reason."""


# Settled files are copied here (hashing as they are copied) and read from the copy, so the
# bytes hashed, read, validated and filed are one and the same even if the original changes.
# Hidden, so scans and the idle check never take it for a landed file.
STAGING_DIR = ".greenlight-intake"
log = logging.getLogger("greenlight.ingest")


@dataclass(frozen=True)
class LandedFile:
    """A landed file as a cycle took it: `path` holds the exact bytes hashed (a private copy
    for a file copied through), `origin` the file in landing it was copied from, with its
    size and mtime when copied (`seen`), so it is removed only while it still matches."""

    path: Path
    sha256: str
    size: int
    origin: Path | None = None
    seen: tuple[int, int] | None = None

    @property
    def batch_id(self) -> str:
        return self.sha256[:16]

    @property
    def name(self) -> str:
        return (self.origin or self.path).name


def sha256(path: Path) -> str:
    """The batch id's source: the bytes, streamed, so a large file never sits in memory."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class Scan:
    """What a cycle may take from a source now, what is still being written, and lines the
    source reports (late rows of a SQL table)."""

    ready: list[LandedFile] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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


def _open_for_writing(paths: list[Path]) -> set[Path]:
    """Those of `paths` that a process on this machine holds open for writing (Linux /proc).

    A writer that pauses longer than the settle time looks finished by size and mtime alone;
    its open handle says it is not. Elsewhere (no /proc) nothing is known and the settle
    time decides alone."""
    wanted = {os.path.realpath(p): p for p in paths}
    proc = Path("/proc")
    if not wanted or not (proc / "self" / "fdinfo").is_dir():
        return set()
    found: set[Path] = set()
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(proc / pid / "fd")
        except OSError:  # gone meanwhile, or not ours to see
            continue
        for fd in fds:
            try:
                target = os.readlink(proc / pid / "fd" / fd)
                if target not in wanted:
                    continue
                info = (proc / pid / "fdinfo" / fd).read_text()
            except OSError:
                continue
            flags = next((int(line.split()[1], 8) for line in info.splitlines()
                          if line.startswith("flags:")), 0)
            if flags & (os.O_WRONLY | os.O_RDWR):
                found.add(wanted[target])
    return found


def _copy_hashing(src: Path, dest: Path) -> str:
    """Copy `src` (through an allowed symlink to its bytes) to `dest`, hashing what was
    copied. The copy gets the source's mode, never a wider one: a 0600 file is not made
    readable by everyone in the state dir. Opened without blocking and checked to be a
    regular file once open, so a FIFO swapped in meanwhile is refused, never waited on."""
    real = Path(os.path.realpath(src)) if src.is_symlink() else src
    if src.is_symlink() and landing_rules.link_refusal(src):
        raise FileNotFoundError(src)  # retargeted since the scan: the next scan refuses it
    digest = hashlib.sha256()
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileNotFoundError(src)
        out_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(out_fd, "wb") as out:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            os.fchmod(out.fileno(), stat.S_IMODE(mode))
    return digest.hexdigest()


def _refused_link(path: Path) -> LandedFile:
    """A symlink that is not read through (no regular file behind it, or one outside the
    allowed directories: tasks/data/landing_rules.py): there are no bytes to keep, so the
    link itself is what gets quarantined (once), and its id comes from where it points."""
    target = os.readlink(path)
    return LandedFile(path, hashlib.sha256(f"symlink -> {target}".encode()).hexdigest(), 0)


def _tidy_staging(staging: Path, names: set[str]) -> None:
    """Drop copies left by a cycle that died: each is a copy of a file still in landing (or
    already filed), never the only one."""
    if staging.is_dir():
        for stale in staging.iterdir():
            if stale.name not in names:
                stale.unlink(missing_ok=True)
        _drop_staging(staging / "-")


def scan(landing: Path, settle_seconds: float | None = None) -> Scan:
    """Files waiting in landing, oldest name first (replayed batches are named in time order).

    A file is taken only once its size and mtime have been stable for `settle_seconds`
    (GREENLIGHT_SETTLE_SECONDS) and no process holds it open for writing: a file still being
    written is left for the next cycle instead of being quarantined as truncated. Old files
    cost no wait; for young ones the scan waits out the rest of the window once.

    A settled file is copied aside while it is hashed, and the copy is what is read, filed
    and archived: the archive holds exactly the bytes that were hashed and ingested, whatever
    the original does later. A file that changes while it is copied is left. A symlink is
    read through to its bytes only when they are a regular file under an allowed
    directory; any other link is refused without a byte read behind it (read_batch says
    why). A FIFO, a socket, a device or a directory named like a batch is never opened:
    it is reported once in the scan's notes and left where it is (tasks/data/landing_rules.py).
    Writers that write to a hidden name and rename are never caught half-way.
    """
    settle = _env_number(SETTLE_ENV, DEFAULT_SETTLE_SECONDS) if settle_seconds is None \
        else settle_seconds
    paths = sorted((p for p in landing.glob("*") if is_landed(p)), key=lambda p: p.name)
    staging = landing / STAGING_DIR
    _tidy_staging(staging, {p.name for p in paths})
    out = Scan(notes=landing_rules.report_once(landing))
    refused = [p for p in paths if p.is_symlink() and landing_rules.link_refusal(p)]
    out.ready.extend(_refused_link(p) for p in refused)
    paths = [p for p in paths if p not in refused]
    before = {p: _fingerprint(p) for p in paths}
    ages = [time.time() - fp[1] / 1e9 for fp in before.values() if fp is not None]
    youngest = min(ages, default=settle)
    if youngest < settle:
        time.sleep(min(settle, settle - max(youngest, 0.0)))
    writing = _open_for_writing(paths)
    for path in paths:
        seen = _fingerprint(path)
        if seen is None:
            continue
        if seen != before[path] or path in writing:
            out.busy.append(path.name)
            continue
        staging.mkdir(exist_ok=True)
        copy = staging / path.name
        try:
            digest = _copy_hashing(path, copy)
        except FileNotFoundError:  # taken meanwhile
            copy.unlink(missing_ok=True)
            _drop_staging(copy)
            continue
        if _fingerprint(path) != seen or copy.stat().st_size != seen[0]:
            copy.unlink(missing_ok=True)
            _drop_staging(copy)
            out.busy.append(path.name)
            continue
        out.ready.append(LandedFile(copy, digest, seen[0], origin=path, seen=seen))
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
    """Read a landed file; anything unreadable becomes a one-line BatchReadError. A
    symlink here is one the scan refused: nothing behind it is read."""
    if path.is_symlink() or not path.is_file():
        raise BatchReadError(_not_a_file(path))
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


def _not_a_file(path: Path) -> str:
    """Why there are no bytes to read: a symlink the scan refused (dangling, to something
    not a file, or outside the allowed directories), or not a regular file."""
    if not path.is_symlink():
        return f"{path.name}: not a regular file"
    return landing_rules.link_refusal(path) or f"{path.name}: a symlink; land the file itself"


def coerce_times(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Timestamps as datetimes, and the values that are there but are not dates (after
    parsing they would only look missing). Intake and `greenlight init` read times alike."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": the caller counts instead
        parsed = pd.to_datetime(raw, errors="coerce")
    return parsed, raw[parsed.isna() & raw.notna()]


def _parse_times(path: Path, raw: pd.Series) -> pd.Series:
    """Timestamps as datetimes; values that are not dates fail the batch here, where the
    reason can say so."""
    parsed, bad = coerce_times(raw)
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

    An OS file lock, so the kernel drops it when its holder dies. For an object-store home
    it guards this machine only; the cycle's claim (registry/locks.py) spans machines."""
    return FileLock(str(home.lock("intake.lock")), timeout=timeout_s)


def _move(src: Path, dest_dir: Path) -> Path:
    """Move without rewriting bytes; the directory is per batch, so names never collide."""
    return move_into(src, dest_dir)


def _changed(landed: LandedFile) -> str | None:
    """Why the original in landing no longer matches the bytes taken from it, if it does not:
    a writer that paused past the settle time and went on writing."""
    if landed.origin is None:
        return None
    now = _fingerprint(landed.origin)
    if now is None or now == landed.seen:
        return None
    return (f"{landed.name}: changed after it was taken ({landed.size:,} bytes then, "
            f"{now[0]:,} now)")


def _drop_staging(copy: Path) -> None:
    """Remove the staging dir once its last copy is filed: landing holds only what landed."""
    try:
        copy.parent.rmdir()
    except OSError:  # other copies still wait there
        pass


def _release(landed: LandedFile) -> None:
    """Remove the original from landing once its exact bytes are filed (a symlink: the link
    only). One that changed meanwhile holds bytes nobody has kept, so it stays, and says so."""
    if landed.origin is None:
        return
    _drop_staging(landed.path)
    changed = _changed(landed)
    if changed:
        log.warning("%s; the file is left in landing and the next cycle takes it as it is",
                    changed)
        return
    landed.origin.unlink(missing_ok=True)


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


def content_hash(frame: pd.DataFrame, spec: DatasetSpec) -> str:
    """The rows themselves, whatever bytes carried them: a hash of the spec's columns (in the
    spec's order) with every row hashed and the row hashes sorted. `frame` is tidied (see
    `tidy`: exact repeats dropped), as the lake keeps it.

    A re-export with the columns or rows in another order, repeated rows, another format or
    other number formatting holds the same rows and gets the same hash, so it is not trained
    on twice. Numbers compare as float64 and times as UTC nanoseconds, because a CSV and a
    Parquet file of the same rows read back with different dtypes."""
    digest = content_digest(spec)
    digest.update(np.sort(row_hashes(frame, spec)).tobytes())
    return digest.hexdigest()[:32]


def content_digest(spec: DatasetSpec) -> hashlib._Hash:
    """The content hash before its rows: fed the sorted row hashes (`row_hashes`) in one
    piece or in ascending runs, it gives `content_hash` (Dask feeds it bucket by bucket)."""
    return hashlib.sha256("\x1f".join(spec.columns).encode())


def row_hashes(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """One uint64 per row of the spec's columns, as `content_hash` sees the row: numbers as
    float64, times as naive UTC nanoseconds, the rest as strings."""
    columns = {}
    for name in spec.columns:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            if getattr(col.dt, "tz", None) is not None:
                col = col.dt.tz_convert("UTC").dt.tz_localize(None)
            col = col.astype("datetime64[ns]")
        elif pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            col = col.astype("float64")
        else:
            col = col.astype("string")
        columns[name] = col.reset_index(drop=True)
    return pd.util.hash_pandas_object(pd.DataFrame(columns), index=False).to_numpy()


def _same_rows(home: Home, content: str, rows: int, spec: DatasetSpec) -> dict | None:
    """The accepted batch holding exactly these rows, if one is in the lake.

    A batch recorded before content hashes were kept is hashed from its partition when its
    row count matches (a duplicate has the same number of unique rows), and the hash is
    appended to the manifest, so that is paid once per batch."""
    for batch in manifest.load(home.manifest).values():
        if batch.get("status") != "accepted":
            continue
        known = batch.get("content")
        path = lake.partition_path(home.lake, batch["id"])
        if known is None and batch.get("rows") == rows and path.exists():
            known = content_hash(lake.read_partition(home.lake, batch["id"]), spec)
            manifest.append(home.manifest, batch["id"], content=known)
        if known == content:
            return batch
    return None


def accept(home: Home, landed: LandedFile, frame: pd.DataFrame, spec: DatasetSpec) -> str:
    """Lake partition first, then the manifest, then file the raw bytes: a crash in between
    leaves a file whose hash is known, which the next cycle just files away.

    Two refusals come first. A file that changed in landing after it was taken is left there
    for the next cycle (what was read is not what the file now says). A file whose rows are
    already in the lake under other bytes is quarantined with a line naming the batch it
    repeats, so the same rows are never trained and gated on twice."""
    changed = _changed(landed)
    if changed:
        landed.path.unlink(missing_ok=True)  # the private copy; the original stays
        _drop_staging(landed.path)
        log.warning("%s: still being written; left in landing for the next cycle", changed)
        return landed.batch_id
    kept, changes = tidy(frame, spec)
    content = content_hash(kept, spec)
    twin = _same_rows(home, content, len(kept), spec)
    if twin is not None:
        reason = (f"{landed.name}: the same {len(kept):,} rows as batch {twin['id']} "
                  f"({quote(twin.get('file'), marks=False)}), already in the lake; only the "
                  "bytes differ (column order, row order, repeated rows or format), so it is "
                  "not trained on twice")
        log.warning("quarantined %s", reason)
        reject(home, landed, reason, {"duplicate_of": twin["id"], "content": content},
               rows=len(kept), dataset=spec.name)
        return landed.batch_id
    lake.write_partition(home.lake, landed.batch_id, kept)
    times = kept[spec.time_column]
    manifest.append(home.manifest, landed.batch_id, file=landed.name, sha256=landed.sha256,
                    bytes=landed.size, status="accepted", rows=len(kept),
                    time_min=times.min(), time_max=times.max(), content=content,
                    **{k: v for k, v in changes.items() if v})
    _move(landed.path, home.archive / landed.batch_id)
    _release(landed)
    return landed.batch_id


def reject(home: Home, landed: LandedFile, reason: str, report: dict | None = None,
           report_md: str = "", rows: int | None = None, dataset: str | None = None) -> str:
    """Keep the raw file in quarantine with a readable report, so a person can fix and re-land
    it. The bytes kept are the ones judged; an original that changed meanwhile stays in
    landing (see `_release`). With `dataset`, the quarantine event tells people."""
    dest_dir = home.quarantine / landed.batch_id
    if not home.remote:  # an object store has no modes
        dest_dir.mkdir(parents=True, exist_ok=True)
        _no_wider(landed.path, [dest_dir / "report.json", dest_dir / "report.md"])
    (dest_dir / "report.json").write_text(
        json.dumps({"file": landed.name, "reason": reason, **(report or {})}, indent=2,
                   default=str))
    (dest_dir / "report.md").write_text(
        f"# Quarantined: {landed.name}\n\n{reason}\n\n{report_md}\n")
    manifest.append(home.manifest, landed.batch_id, file=landed.name, sha256=landed.sha256,
                    bytes=landed.size, status="quarantined", reason=reason,
                    decision="quarantined", rows=rows)
    _move(landed.path, dest_dir)
    _release(landed)
    if dataset is not None:
        events.emit(events.QUARANTINE_EVENT, dataset, {
            "file": landed.name, "batch_id": landed.batch_id, "reason": reason,
            "kept": str(dest_dir / landed.name), "link": events.run_link(), "version": None})
    return reason


def _no_wider(source: Path, reports: list[Path]) -> None:
    """Create the reports, before a byte is written to them, no more readable than the
    file they describe (they quote its values): a 0600 batch gets 0600 reports. A link's
    reports keep the default (the link has no bytes)."""
    try:
        st = os.lstat(source)
    except (OSError, TypeError):
        return
    if not stat.S_ISREG(st.st_mode):
        return
    for path in reports:
        path.touch(mode=0o600)
        os.chmod(path, 0o600 | (stat.S_IMODE(st.st_mode) & 0o044))  # read for whom it may


def file_duplicate(home: Home, landed: LandedFile, status: str | None) -> None:
    """Same bytes as a known batch: a no-op, but the file is kept beside its twin."""
    root = home.quarantine if status == "quarantined" else home.archive
    _move(landed.path, root / landed.batch_id)
    _release(landed)


# --- a batch too big for one process (Dask: tasks/scale/landed.py) -------------------------

def landed_rows(path: Path) -> int | None:
    """Rows in a landed file without reading it into memory: the Parquet footer, else the
    CSV's line ends counted in chunks, less the header. None when the file cannot tell (not
    a file, corrupt, empty) or is gzipped: the single-process read then takes it, under its
    size cap, and says why if it refuses.

    A gzipped CSV is one stream that no worker can cut, so Dask would gain nothing on it,
    and counting its lines would mean inflating a gzip bomb to the end (2 GiB from a few
    MiB): the cap's bounded check refuses that instead. This only decides where the batch is
    read (`scale.dask_min_rows`); a quoted line break inside a CSV field counts one row too
    many, which is harmless there."""
    try:
        if (path.is_symlink() or not path.is_file() or path.stat().st_size == 0
                or path.name.endswith(".gz")):
            return None
        if path.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        lines, last = 0, b"\n"
        with path.open("rb") as fh:
            while chunk := fh.read(8 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        lines += last != b"\n"  # a last line without its line end is still a row
        return max(0, lines - 1)
    except (OSError, EOFError, zlib.error, ValueError):
        return None


def check_landed(path: Path) -> None:
    """What `read_batch` checks of the file itself before reading rows, for a reader that
    reads it in partitions: a regular, non-empty file, a CSV not cut off mid-row."""
    if path.is_symlink() or not path.is_file():
        raise BatchReadError(_not_a_file(path))
    if path.stat().st_size == 0:
        raise BatchReadError(f"{path.name}: empty file (0 bytes)")
    _check_last_line(path)


def bad_times_reason(name: str, column: str, bad: int, rows: int, examples: list[str]) -> str:
    """The one line `read_batch` gives for values that are not timestamps, from counts
    gathered over partitions."""
    shown = ", ".join(quote(v) for v in examples[:3])
    return (f"{name}: {bad} of {rows} values in column {column} are not timestamps, "
            f"e.g. {shown}")


def check_delimiter(name: str, columns: list[str]) -> None:
    """`read_batch`'s delimiter check on a header alone."""
    _check_delimiter(Path(name), pd.DataFrame(columns=columns))


@dataclass(frozen=True)
class Tidied:
    """What `accept` learns from a tidied batch, gathered over partitions when workers
    tidied and wrote it: unique rows, content hash, time span, and what tidying changed."""

    rows: int
    content: str
    time_min: object
    time_max: object
    changes: dict[str, int]


def accept_tidied(home: Home, landed: LandedFile, spec: DatasetSpec, tidied: Tidied,
                  publish: Callable[[], object], discard: Callable[[], object]) -> str:
    """`accept` for a batch whose tidied parts are already written aside (by Dask workers):
    the same refusals, manifest record and filing; `publish` moves the parts into the lake
    (one rename), `discard` drops them when the batch is refused."""
    changed = _changed(landed)
    if changed:
        discard()
        landed.path.unlink(missing_ok=True)  # the private copy; the original stays
        _drop_staging(landed.path)
        log.warning("%s: still being written; left in landing for the next cycle", changed)
        return landed.batch_id
    twin = _same_rows(home, tidied.content, tidied.rows, spec)
    if twin is not None:
        discard()
        reason = (f"{landed.name}: the same {tidied.rows:,} rows as batch {twin['id']} "
                  f"({quote(twin.get('file'), marks=False)}), already in the lake; only the "
                  "bytes differ (column order, row order, repeated rows or format), so it is "
                  "not trained on twice")
        log.warning("quarantined %s", reason)
        reject(home, landed, reason, {"duplicate_of": twin["id"], "content": tidied.content},
               rows=tidied.rows, dataset=spec.name)
        return landed.batch_id
    publish()
    manifest.append(home.manifest, landed.batch_id, file=landed.name, sha256=landed.sha256,
                    bytes=landed.size, status="accepted", rows=tidied.rows,
                    time_min=tidied.time_min, time_max=tidied.time_max, content=tidied.content,
                    **{k: v for k, v in tidied.changes.items() if v})
    _move(landed.path, home.archive / landed.batch_id)
    _release(landed)
    return landed.batch_id
