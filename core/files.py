"""Files that appear whole or not at all, on a local disk or in an object store.

A state dir may be an object-store URL (`GREENLIGHT_HOME=s3://…`): its paths are then
`upath.UPath`s, which keep pathlib's API over fsspec. What differs is said here, once:
an object store has no rename and no append, and no OS file lock reaches across machines.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOCAL_PROTOCOLS = ("", "file", "local")
SCRATCH_ENV = "GREENLIGHT_SCRATCH"


def is_url(value: str) -> bool:
    """`s3://…`, `gs://…`, `memory://…`: a scheme other than a local file's."""
    scheme, sep, _ = value.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme not in ("file", "local")


def at(location: str | os.PathLike[str]) -> Any:
    """The path a string names: a UPath for an object-store URL, else a local Path. A Dask
    task is handed its paths as strings, which travel to workers on any machine."""
    text = str(location)
    if is_url(text):
        from upath import UPath

        return UPath(text)
    return Path(text.removeprefix("file://"))


def remove_tree(path: Any) -> None:
    """A folder and all it holds gone, if it was there; in an object store, every object
    under its prefix."""
    if is_remote(path):
        try:
            path.fs.rm(path.path, recursive=True)
        except FileNotFoundError:
            pass
        return
    shutil.rmtree(path, ignore_errors=True)


def move_tree(src: Any, dest: Any) -> None:
    """A folder to a new name that is free: one rename on a disk. An object store has no
    rename: each object is copied, then the old ones removed, so it is not whole-or-nothing
    there, and a caller commits the move elsewhere (the lake's is the manifest record)."""
    if is_remote(src):  # object by object: fsspec's recursive mv also copies the prefix
        found = src.fs.find(src.path)
        for name in found:
            src.fs.copy(name, dest.path + name[len(src.path):])
        if found:
            src.fs.rm(found)
        return
    os.replace(src, dest)


def is_remote(path: Any) -> bool:
    """Whether `path` lives in an object store (a UPath of s3://, gs://, memory://, …)."""
    protocol = getattr(path, "protocol", "")
    return (protocol if isinstance(protocol, str) else protocol[0]) not in LOCAL_PROTOCOLS


def scratch_dir(root: Any) -> Path:
    """This machine's own folder for a state dir: its OS file locks and the local copies of
    downloaded batches. A local state dir is its own scratch; an object-store one gets a
    folder in the OS temp dir named after its URL (`GREENLIGHT_SCRATCH` to choose another),
    because a lock file or a half-downloaded copy must never be shared between machines."""
    if not is_remote(root):
        return Path(root)
    base = Path(os.environ.get(SCRATCH_ENV) or Path(tempfile.gettempdir()) / "greenlight")
    path = base / hashlib.sha256(str(root).encode()).hexdigest()[:12]
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def replacing(path: Any) -> Iterator[Path]:
    """A hidden temp path beside `path`, renamed over it when the block succeeds.

    A scan of landing, a lake reader or the next cycle then sees the old file or the whole
    new one, never half of it; on failure the temp file goes and `path` is untouched. The
    name is hidden (landing scans skip dotfiles) and per process, so two writers never
    share a temp file. In an object store the temp file is local and uploaded in one PUT on
    success, which readers see whole or not at all."""
    if is_remote(path):
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=scratch_dir(path.parent))
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            path.fs.put_file(str(tmp), path.path)
        finally:
            tmp.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def move_into(src: Path, dest_dir: Any) -> Any:
    """Move a local file into `dest_dir` under its own name, bytes unchanged: a rename on
    the same disk; an upload and then the local copy's removal into an object store."""
    dest = dest_dir / src.name
    if is_remote(dest):
        dest.fs.put_file(str(src), dest.path)
        src.unlink(missing_ok=True)
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)
    return dest
