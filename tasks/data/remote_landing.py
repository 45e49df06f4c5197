"""A landing folder at any fsspec URL (`s3://bucket/landing/`, `gs://…`, `file://…`).

The rules of the local folder hold: hidden and `~` names are ignored, an object is taken
only once its size and stamp (ETag or mtime) have not changed for the settle time, and
nothing that landed is ever deleted. A settled object is downloaded (hashed as it comes)
to the state dir, and that copy is what ingest reads and files in the local archive/ or
quarantine/, exactly as for a local file. On `commit`, once the decision is in the
manifest, the object itself moves to `archive/<batch>/` or `quarantine/<batch>/` beside the
landing folder (under the same URL root), so the bucket keeps its bytes too, and a person
looking there sees which were refused.

A crash before the move leaves the object in landing: the next cycle downloads the same
bytes, finds their batch id in the manifest, and only moves it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from core.secrets import mask_text, mask_url
from tasks.data import source_base
from tasks.data.home import Home
from tasks.data.idle import SUFFIXES
from tasks.data.ingest import DEFAULT_SETTLE_SECONDS, SETTLE_ENV, LandedFile, Scan, _env_number

log = logging.getLogger("greenlight.sources")
Stamp = tuple[int, str]


def _age(info: dict[str, Any]) -> float | None:
    """Seconds since the object was last written, when the filesystem says (S3:
    LastModified; local and most others: mtime or created)."""
    when = info.get("LastModified") or info.get("mtime") or info.get("created")
    if isinstance(when, datetime):
        when = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return time.time() - float(when) if isinstance(when, (int, float)) else None


def _is_landed(info: dict[str, Any]) -> bool:
    name = info["name"].rstrip("/").rsplit("/", 1)[-1]
    return (info.get("type") == "file" and not name.startswith((".", "~"))
            and name.endswith(SUFFIXES))


class RemoteLanding:
    """Objects under one URL prefix, taken like the files of `landing/`."""

    def __init__(self, home: Home, config: source_base.LandingConfig, where: str) -> None:
        import fsspec

        try:
            self.fs, root = fsspec.core.url_to_fs(config.url, **config.storage_options)
        except (ValueError, ImportError, TypeError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else repr(exc)
            raise ValueError(f"{where}.url: cannot open {mask_url(config.url)!r}: "
                             f"{mask_text(detail)}") from None
        # Named in logs without the credentials a URL can carry (core/secrets.py).
        self.home, self.root, self.label = home, root.rstrip("/"), mask_url(config.url)
        self.settle = (config.settle_seconds if config.settle_seconds is not None
                       else _env_number(SETTLE_ENV, DEFAULT_SETTLE_SECONDS))
        parent = self.root.rsplit("/", 1)[0] if "/" in self.root else self.root
        self.filed = parent  # archive/ and quarantine/ go beside landing
        self.owner = "remote-" + hashlib.sha256(config.url.encode()).hexdigest()[:12]
        self._taken: dict[str, str] = {}

    def _listing(self) -> dict[str, tuple[Stamp, float | None]]:
        """Landed objects now: path -> ((size, stamp), age in seconds)."""
        self.fs.invalidate_cache(self.root)
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return {}
        return {e["name"]: ((int(e.get("size") or 0),
                             str(e.get("ETag") or e.get("mtime") or e.get("LastModified"))),
                            _age(e))
                for e in entries if _is_landed(e)}

    def take(self) -> Scan:
        """Settled objects, downloaded and hashed; those still changing are named busy.

        A store that does not answer is a warning and nothing taken: the objects stay and
        the next cycle tries again."""
        try:
            return self._take()
        except Exception as exc:  # fsspec raises OSError; an unreachable S3 a botocore error
            line = mask_text((str(exc).strip().splitlines() or [""])[0])
            return Scan(notes=[f"{self.label}: cannot read ({type(exc).__name__}): {line}; "
                               "nothing taken"])

    def _take(self) -> Scan:
        first = self._listing()
        ages = [a for _, a in first.values() if a is not None]
        if first and (len(ages) < len(first) or min(ages) < self.settle):
            young = max(min(ages), 0.0) if len(ages) == len(first) else 0.0
            time.sleep(self.settle - young)
        second, out = self._listing(), Scan()
        for path in sorted(second, key=lambda p: p.rsplit("/", 1)[-1]):
            name = path.rsplit("/", 1)[-1]
            if first.get(path, (None,))[0] != second[path][0]:
                out.busy.append(name)
                continue
            landed = self._download(path, name, second[path][0])
            if landed is None:
                out.busy.append(name)
                continue
            self._taken[landed.batch_id] = path
            out.ready.append(landed)
        return out

    def _download(self, path: str, name: str, seen: Stamp) -> LandedFile | None:
        """The object's bytes to the state dir, hashed as they come; None if it changed."""
        copy = source_base.staging(self.home, self.owner, "landing") / name
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as fh, copy.open("wb") as out:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if copy.stat().st_size != seen[0]:
            copy.unlink(missing_ok=True)
            return None
        return LandedFile(copy, digest.hexdigest(), seen[0])

    def _holds(self, dest: str, size: int) -> bool:
        """Whether `dest` already holds an object of `size` bytes (the same batch's bytes:
        its name is under the batch's content-hash folder)."""
        self.fs.invalidate_cache(dest.rsplit("/", 1)[0])
        try:
            return self.fs.info(dest).get("size") == size
        except FileNotFoundError:
            return False

    def commit(self, landed: LandedFile) -> None:
        """Move the object beside landing, into archive/ or quarantine/ by its decision."""
        status = source_base.decided(self.home, landed.batch_id)
        path = self._taken.pop(landed.batch_id, None)
        if status is None or path is None:
            return
        kind = "quarantine" if status == "quarantined" else "archive"
        dest = f"{self.filed}/{kind}/{landed.batch_id}/{landed.name}"
        if not self._holds(dest, landed.size):  # a home in this store: ingest filed it there
            self.fs.copy(path, dest)
        if self.fs.info(dest).get("size") == landed.size:
            self.fs.rm(path)  # the copy holds the same bytes: the object moved, not lost
        log.info("%s: %s moved to %s", self.label, landed.name, dest)

