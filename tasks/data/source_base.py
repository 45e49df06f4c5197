"""What every source shares, in one module that imports no source: the `Source` protocol,
the typed configs, and the two rules a source obeys (`decided`, `staging`).

`source.py` picks a dataset's sources and imports each one (`sql_source.py`,
`remote_landing.py`); they import only this module, so the import graph has no circle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, Field

from tasks.data.home import Home
from tasks.data.ingest import LandedFile, Scan


class Source(Protocol):
    """What a cycle asks of a source: the batches ready now, and a commit per decided one."""

    label: str  # how logs name it; never holds a credential

    def take(self) -> Scan:
        """Batches ready now (each a local file of exact bytes), names still being written,
        and lines to report (late rows)."""
        ...

    def commit(self, landed: LandedFile) -> None:
        """The cycle has decided on `landed`: advance past it, if the manifest says so."""
        ...


class SqlConfig(BaseModel, extra="forbid"):
    """A table or a query read by time slices. The URL comes from `url_env` (the name of an
    environment variable: the way to keep a password out of the repo) or `url`."""

    kind: Literal["sql"]
    url: str | None = None
    url_env: str | None = None
    table: str | None = None
    query: str | None = None
    time_column: str | None = Field(None, description="Default: the spec's time column.")


class LandingConfig(BaseModel, extra="forbid"):
    """A landing folder at an fsspec URL; `storage_options` go to the filesystem
    (an `endpoint_url`, a profile); credentials come from the environment."""

    kind: Literal["landing"]
    url: str
    storage_options: dict[str, Any] = {}
    settle_seconds: float | None = None


SourceConfig = Annotated[SqlConfig | LandingConfig, Field(discriminator="kind")]


def decided(home: Home, batch_id: str) -> str | None:
    """The batch's status once its decision is in the manifest (accepted, quarantined,
    held), else None: the one condition under which a source may move on."""
    from tasks.data import manifest

    return (manifest.load(home.manifest).get(batch_id) or {}).get("status")


def staging(home: Home, owner: str, kind: str) -> Path:
    """Where a source puts the local copy of a batch's bytes until ingest files them in
    archive/ or quarantine/ (outside landing/, which is not its to tidy)."""
    path = home.scratch / "sources" / owner / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
