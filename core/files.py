"""Files that appear whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A hidden temp path beside `path`, renamed over it when the block succeeds.

    A scan of landing, a lake reader or the next cycle then sees the old file or the whole
    new one, never half of it; on failure the temp file goes and `path` is untouched. The
    name is hidden (landing scans skip dotfiles) and per process, so two writers never
    share a temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
