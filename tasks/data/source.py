"""The source interface: what a cycle asks a source for, and how it says a batch is done.

A source hands the cycle `LandedFile`s (tasks/data/ingest.py): local files holding the
exact bytes of one batch, whose id is their content hash. The cycle reads, validates,
accepts or quarantines each one in the same way whatever the source, and then calls
`commit`, which a source obeys only once the batch's decision is in the manifest:

- the landing folder: nothing to do (accept and reject have already filed the file);
- SQL (tasks/data/sql_source.py): the watermark moves past the slice;
- a landing folder at an fsspec URL (tasks/data/remote_landing.py): the object moves to
  archive/ or quarantine/ beside that landing.

A crash before `commit` leaves the source where it was, so the next cycle is offered the
same bytes, and the content hash makes the second offer a no-op.

Which source a dataset has: `GREENLIGHT_SOURCE` (a deployment's setting: a JSON object, or
just the URL of a landing folder), else the `source` key of its spec.json. The local
`landing/` of the state dir is always read too (served predictions are harvested there).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from tasks.data.home import EXPECTATIONS_DIR, Home
from tasks.data.ingest import LandedFile, Scan
from tasks.data.remote_landing import RemoteLanding
from tasks.data.source_base import (  # noqa: F401 (the interface's names, used from here)
    LandingConfig,
    Source,
    SourceConfig,
    SqlConfig,
    decided,
    staging,
)
from tasks.data.spec import DatasetSpec
from tasks.data.sql_source import SqlSource

SOURCE_ENV = "GREENLIGHT_SOURCE"


class LandingFolder:
    """The state dir's `landing/`: the scan is `ingest.scan` (or the flow's task around it,
    so the Prefect UI keeps its "ingest" step), and filing is ingest's own work."""

    def __init__(self, path: Path, scan: Callable[[Path], Scan]) -> None:
        self.path, self._scan, self.label = path, scan, str(path)

    def take(self) -> Scan:
        return self._scan(self.path)

    def commit(self, landed: LandedFile) -> None:
        """Nothing: accept, reject and file_duplicate moved the file already."""


class _Holder(BaseModel):
    source: SourceConfig


def configured(spec: DatasetSpec) -> tuple[SqlConfig | LandingConfig | None, str]:
    """The dataset's source config and where it came from (for error lines); `None` when
    only the local landing folder feeds it."""
    raw = os.environ.get(SOURCE_ENV, "").strip()
    where = SOURCE_ENV if raw else f"{EXPECTATIONS_DIR / spec.name / 'spec.json'} source"
    if raw:
        value: Any = {"kind": "landing", "url": raw} if not raw.startswith("{") else None
        if value is None:
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"{SOURCE_ENV}: not a JSON object or a URL: {exc}") from None
    else:
        value = spec.source
    if value is None:
        return None, where
    try:
        return _Holder(source=value).source, where
    except ValidationError as exc:
        problem = exc.errors()[0]
        key = ".".join(str(p) for p in problem["loc"][2:] if p not in ("sql", "landing"))
        raise ValueError(f"{where}{'.' + key if key else ''}: {problem['msg']}") from None


def for_cycle(home: Home, spec: DatasetSpec, scan: Callable[[Path], Scan]) -> list[Source]:
    """The sources a cycle of `spec` reads, the local landing folder first; a bad config is
    a ValueError with one line naming the setting or file and the key."""
    sources: list[Source] = [_home_landing(home, scan)]
    config, where = configured(spec)
    if isinstance(config, SqlConfig):
        sources.append(SqlSource(home, spec, config, where))
    elif isinstance(config, LandingConfig):
        sources.append(RemoteLanding(home, config, where))
    return sources


def _home_landing(home: Home, scan: Callable[[Path], Scan]) -> Source:
    """The state dir's own `landing/`: a folder, or objects under the home's URL, which
    are taken exactly like a configured landing URL (settle time, nothing deleted)."""
    if not home.remote:
        return LandingFolder(home.landing, scan)
    return RemoteLanding(home, LandingConfig(kind="landing", url=str(home.landing),
                                             storage_options=home.root.storage_options),
                         "GREENLIGHT_HOME")
