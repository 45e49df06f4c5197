"""Append-only JSON-lines files that survive a crash mid-write: written and read here only.

A crash (kill -9, a power cut) can leave the last line torn. Readers skip a line that is
not JSON, so a torn line costs that one record and never the file; writers start a new
line after a torn one, since a record glued to it would be unreadable too. Each append is
one `write` on a file opened with O_APPEND, so lines from several threads or processes
never interleave.

An object store has no append, and a read-modify-write of one object would lose a record
whenever two workers append at once. There a log is a folder (`<name>.d/`) holding one
object per append, named by its time in nanoseconds plus a random suffix: writers never
touch the same key, S3's listings are strongly consistent, and a reader takes the objects
in name order. Two machines' clocks may disagree by a little; a log's records are read as
an unordered set of facts except per batch, and one batch is written by one cycle.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.files import is_remote


def encode(record: Any) -> bytes:
    """One record as a line's text (no newline); `str` for anything that is not JSON."""
    return json.dumps(record, default=str).encode()


def append_lines(path: Path, lines: list[bytes], *, durable: bool = True) -> None:
    """Append already-encoded lines in one write; `durable` fsyncs, so a recorded decision
    survives a power cut (the prediction log skips it: it costs a request's latency)."""
    if is_remote(path):
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.jsonl"
        (_records(path) / name).write_bytes(b"".join(line + b"\n" for line in lines))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        # The torn-line check and the write as one step: another process's write in flight
        # shows a size in the middle of its record, which read as torn added a blank line.
        fcntl.flock(fd, fcntl.LOCK_EX)  # released with the descriptor
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        data = (b"\n" if torn else b"") + b"".join(line + b"\n" for line in lines)
        while data:  # a regular file takes it in one write; loop only on a short write
            data = data[os.write(fd, data):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def append(path: Path, record: Any, *, durable: bool = True) -> None:
    """Append one record as a JSON line (see `append_lines`)."""
    append_lines(path, [encode(record)], durable=durable)


def read(path: Path) -> Iterator[Any]:
    """The records of a JSON-lines file, oldest first; a torn or blank line is skipped and
    a missing file has none."""
    try:
        text = (_read_remote(path) if is_remote(path)
                else path.read_text(encoding="utf-8", errors="replace"))  # a torn character too
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line from a crash; the next write starts after it


def _records(path: Any) -> Any:
    """The folder of one-object-per-append records that stands for `path` in a store."""
    return path.with_name(path.name + ".d")


def _read_remote(path: Any) -> str:
    """A store's log as one text: its record objects fetched together, in name order."""
    folder, fs = _records(path), path.fs
    fs.invalidate_cache(folder.path)  # another worker may have appended since the last listing
    names = sorted(n for n in fs.ls(folder.path, detail=False) if n.endswith(".jsonl"))
    if not names:
        return ""
    found = fs.cat(names)
    return "".join(found[n].decode("utf-8", errors="replace") for n in names)
