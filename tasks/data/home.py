"""The state dir (`GREENLIGHT_HOME`, default `./.greenlight`): one place for everything a run keeps.

Keeping every path here means a user can copy, back up or inspect one folder and see
the whole history: landed files, the lake, quarantine, reports and the MLflow store.

`GREENLIGHT_HOME` may also be an object-store URL (`s3://bucket/greenlight`, any fsspec
URL), shared by workers on several machines. The paths are then `upath.UPath`s: the same
pathlib API, so the code that files, reads and appends is the same (core/files.py and
core/jsonl.py say what an object store needs). What belongs to one machine stays local,
in `scratch`: OS file locks, downloaded copies, the embedded Prefect database, the
Evidently workspace a local UI serves, and which servers `greenlight up` runs here. The
MLflow store cannot be a file in a bucket: such a home needs `MLFLOW_TRACKING_URI`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.files import is_remote, is_url, scratch_dir

# What `greenlight up` writes into the state dir while it runs: the URLs of its servers.
SERVERS_FILE = "servers.json"
# The settings that file can supply; each is used only while its server answers.
SERVER_SETTINGS = ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "GREENLIGHT_EVIDENTLY_URL")
SERVER_PROBE_SECONDS = 2.0

# The dataset specs and Great Expectations suites shipped with greenlight (one folder each).
EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"


@dataclass(frozen=True)
class Home:
    root: Any  # a local Path, or an upath.UPath in an object store

    @classmethod
    def from_env(cls, root: str | Path | None = None) -> Home:
        """Resolve the state dir: explicit argument, else `GREENLIGHT_HOME`, else ./.greenlight.
        An object-store URL stays a URL (a UPath); `file://` is a local folder."""
        value = str(root or os.environ.get("GREENLIGHT_HOME") or ".greenlight")
        if is_url(value):
            from upath import UPath

            return cls(UPath(value.rstrip("/")))
        return cls(Path(value.removeprefix("file://")).expanduser().resolve())

    @property
    def remote(self) -> bool:
        """Whether the state dir is in an object store, shared by workers."""
        return is_remote(self.root)

    @property
    def scratch(self) -> Path:
        """This machine's own folder for the state dir (the state dir itself when local)."""
        return scratch_dir(self.root)

    def lock(self, name: str) -> Path:
        """An OS file lock's path: always local, since no file lock spans machines (an
        object-store home's cross-machine locks are Prefect's: registry/locks.py)."""
        return self.scratch / name

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def archive(self) -> Path:
        """Accepted raw files, byte for byte, once their batch is in the lake."""
        return self.root / "archive"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def labels(self) -> Path:
        """The late-labels feed: files of (key, target) that land after their batch."""
        return self.root / "labels"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def reports(self) -> Path:
        """Where a run writes its reports: a local folder, since MLflow and Evidently log
        files from a disk; `keep` copies them into an object-store home afterwards."""
        return self.scratch / "reports"

    def keep(self, written: Path) -> None:
        """Copy a file or folder written under scratch into an object-store home, at the
        same place under its root, so the store holds the reports beside the lake. A local
        home wrote them in place already."""
        if not self.remote or not written.exists():
            return
        files = [written] if written.is_file() else [p for p in written.rglob("*") if p.is_file()]
        for path in files:
            dest = self.root / path.relative_to(self.scratch).as_posix()
            self.root.fs.put_file(str(path), dest.path)

    @property
    def evidently(self) -> Path:
        """The Evidently workspace the Evidently UI (`greenlight up`) serves: a local folder
        (Evidently's workspace is files on a disk), in scratch for an object-store home."""
        return self.scratch / "evidently"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def prefect(self) -> Path:
        return self.scratch / "prefect"

    @property
    def servers_file(self) -> Path:
        """Where `greenlight up` says which servers it runs over this state dir (per machine)."""
        return self.scratch / SERVERS_FILE

    @property
    def tracking_uri(self) -> str:
        """`MLFLOW_TRACKING_URI` when set, else the MLflow server `greenlight up` runs on
        this state dir, else SQLite inside it.

        Versions registered through the server carry `mlflow-artifacts:` URIs, which load
        only through an http tracking URI: a reader beside `up` must use the server too."""
        found = (os.environ.get("MLFLOW_TRACKING_URI")
                 or self.running_servers().get("MLFLOW_TRACKING_URI"))
        if found:
            return found
        if self.remote:
            raise ValueError(f"GREENLIGHT_HOME={self.root} is an object store, which cannot hold "
                             "MLflow's database: set MLFLOW_TRACKING_URI to an MLflow server "
                             "(artifacts in the same store: docs/scale.md)")
        return f"sqlite:///{self.mlflow_db}"

    def record_servers(self, settings: Mapping[str, str], health: Mapping[str, str]) -> Path:
        """Write the servers this process (`greenlight up`) runs: setting -> URL, and the URL
        that answers when that server is up. Whole or not at all (see `core.files`)."""
        from core.files import replacing

        body = {"pid": os.getpid(), "settings": dict(settings), "health": dict(health)}
        with replacing(self.servers_file) as tmp:
            tmp.write_text(json.dumps(body, indent=2) + "\n")
        return self.servers_file

    def forget_servers(self) -> None:
        """Remove the servers file on a clean stop, if this process wrote it (a second `up`
        on other ports may have written its own since)."""
        if _read_servers(self.servers_file).get("pid") == os.getpid():
            self.servers_file.unlink(missing_ok=True)

    def running_servers(self) -> dict[str, str]:
        """The settings of the servers `greenlight up` runs here, for those that answer now.

        A stale file (its process gone, after a kill -9 or a crash; or a server that does
        not answer) gives nothing, so commands fall back to the embedded defaults."""
        found = _read_servers(self.servers_file)
        if not found or not _process_alive(found.get("pid")):
            return {}
        settings, health = found.get("settings") or {}, found.get("health") or {}
        return {key: str(url) for key, url in settings.items()
                if key in SERVER_SETTINGS and url and _answers(str(health.get(key) or url))}

    def ensure(self) -> Home:
        """Create the folders a run writes into; an object store has no folders to make."""
        if self.remote:
            return self
        for path in (self.landing, self.archive, self.quarantine, self.lake, self.reports):
            path.mkdir(parents=True, exist_ok=True)
        return self


def adopt_servers(root: Path, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Point this process at the servers `greenlight up` runs on `root`, with nothing
    exported by hand: each setting that is unset. Explicit settings always win.

    Call it before Prefect or MLflow are imported: both read their settings at import."""
    adopted = {key: url for key, url in Home(Path(root)).running_servers().items()
               if not environ.get(key)}
    environ.update(adopted)
    return adopted


def _read_servers(path: Path) -> dict:
    """The servers file as a dict; {} when missing or unreadable (never an error: the file is
    only a hint, and a command without it runs embedded)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _process_alive(pid: object) -> bool:
    """Whether `pid` runs (a zombie does not): the writer of the servers file still lives."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc here: the signal check above is all there is
    return state not in ("Z", "X")


def _answers(url: str) -> bool:
    """Whether a server answers at `url` at all: any HTTP status counts (a server with
    authentication on answers 401 to a stranger, and is still the one to use)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=SERVER_PROBE_SECONDS):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False
