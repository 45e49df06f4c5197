"""Append-only JSON-lines files that survive a crash mid-write: written and read here only.

A crash (kill -9, a power cut) can leave the last line torn. Readers skip a line that is
not JSON, so a torn line costs that one record and never the file; writers start a new
line after a torn one, since a record glued to it would be unreadable too. Each append is
one `write` on a file opened with O_APPEND, so lines from several threads or processes
never interleave.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def encode(record: Any) -> bytes:
    """One record as a line's text (no newline); `str` for anything that is not JSON."""
    return json.dumps(record, default=str).encode()


def append_lines(path: Path, lines: list[bytes], *, durable: bool = True) -> None:
    """Append already-encoded lines in one write; `durable` fsyncs, so a recorded decision
    survives a power cut (the prediction log skips it: it costs a request's latency)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
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
        text = path.read_text(encoding="utf-8", errors="replace")  # a torn character too
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line from a crash; the next write starts after it
