"""Where the registry lives: one MLflow tracking store plus greenlight's lock and audit log.

This package must not import `tasks`; callers pass plain paths and URIs, so serving and
flows can both use it.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from core.files import is_remote, scratch_dir

# MLflow's own HTTP retries default to 7 with backoff factor 2 and a 120 s timeout: against
# a server that is down, one call retries for minutes, and the flow's task retries multiply
# that. Bounded, a refused connection fails one call in about 15 s, and the register and
# promote tasks retry it twice more (flows/cycle.py). Values the user sets win.
HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
                       "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


def bound_http_retries() -> None:
    """Set greenlight's bounds on MLflow's HTTP retries, unless the user chose their own."""
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)


# What a store answers for a model or alias that does not exist (yet). Anything else (a
# server that is down, a 401, a 500) is not "nothing there" and must not be read as such:
# an unreachable server taken for "no champion" would misreport a promotion as a race.
ABSENT_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def absent(exc: MlflowException) -> bool:
    """Whether an MLflow error means "no such model or alias", rather than a failure."""
    return exc.error_code in ABSENT_CODES


ARTIFACTS = "mlartifacts"  # a local store's artifacts, inside the state dir
# Every column where MLflow 3.17's SQL store keeps an artifact location, as an absolute URI.
LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                    ("logged_models", "artifact_location"),
                    ("model_versions", "storage_location"), ("model_versions", "source"))


def _store_db(tracking_uri: str, state_dir: Path) -> Path | None:
    """The SQLite file of a store kept in the state dir itself, or None (a server, or a
    database elsewhere that the user pointed at: not ours to re-root)."""
    if not tracking_uri.startswith("sqlite:///") or is_remote(state_dir):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
    return db if db.parent == state_dir.resolve() and db.exists() else None


def reroot(tracking_uri: str, state_dir: Path) -> Path | None:
    """Point a moved or copied state dir's MLflow store at its own artifacts; returns the
    root it was moved from, or None when nothing had to change.

    MLflow stores artifact locations as absolute URIs (a relative one is resolved against
    the working directory when written) and has no call that changes them afterwards
    (mlflow/mlflow#3144, #2577, #8226 are open requests). So a `cp -a` copy would keep
    writing into, and reading from, the original's `mlartifacts/`, and a moved one would
    lose its models. The state dir is self-contained (the store and `mlartifacts/` sit side
    by side), so the fix is to replace the old root's artifact prefix in the location
    columns, in one transaction; nothing else in MLflow's tables is touched."""
    db = _store_db(tracking_uri, state_dir)
    if db is None:
        return None
    here = (state_dir.resolve() / ARTIFACTS).as_uri()
    conn = sqlite3.connect(db, timeout=60)
    try:
        found = conn.execute("SELECT DISTINCT artifact_location FROM experiments WHERE "
                             "artifact_location LIKE ?", (f"file://%/{ARTIFACTS}",)).fetchall()
        olds = [loc for (loc,) in found if loc != here]
        if not olds:
            return None
        with conn:  # one transaction: all locations move, or none
            for old in olds:
                for table, column in LOCATION_COLUMNS:
                    conn.execute(f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                                 f'WHERE "{column}" = ? OR substr("{column}", 1, ?) = ?',
                                 (here, len(old) + 1, old, len(old) + 1, old + "/"))
    finally:
        conn.close()
    return Path(unquote(olds[0].removeprefix("file://"))).parent


MODEL_PREFIX = "greenlight-"  # a dataset's registered model is greenlight-<dataset>


@dataclass(frozen=True)
class Registry:
    """A registered model in one tracking store, with the state dir holding its lock and log."""

    tracking_uri: str
    model_name: str
    state_dir: Path

    def __post_init__(self) -> None:
        if not self.local_store:
            bound_http_retries()  # MLflow reads them per request

    @cached_property
    def client(self) -> MlflowClient:
        moved_from = reroot(self.tracking_uri, self.state_dir)
        if moved_from:
            sys.stderr.write(f"{self.state_dir}: moved or copied from {moved_from}; its MLflow "
                             f"store now points at its own artifacts "
                             f"({self.state_dir / ARTIFACTS})\n")
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    @property
    def dataset(self) -> str:
        """The dataset whose model this is (`model_name` is `greenlight-<dataset>`)."""
        return self.model_name.removeprefix(MODEL_PREFIX)

    @property
    def lock_path(self) -> Path:
        """The OS file lock of every move: this machine's (see `core.files.scratch_dir`);
        across machines the Prefect slot of `registry.locks.promotion_lock` serialises."""
        return scratch_dir(self.state_dir) / f"registry-{self.model_name}.lock"

    @property
    def promotions_path(self) -> Path:
        return self.state_dir / "promotions.jsonl"

    @property
    def local_store(self) -> bool:
        return not self.tracking_uri.startswith(("http://", "https://", "databricks"))

    def experiment_id(self, name: str) -> str:
        """Get or create an experiment; with a local store its artifacts stay in the state dir."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = (self.state_dir / ARTIFACTS).as_uri() if self.local_store else None
        return self.client.create_experiment(name, artifact_location=location)


def model_name(dataset: str) -> str:
    """The registered model of a dataset: one name, so every command finds the same one."""
    return f"{MODEL_PREFIX}{dataset}"


def for_dataset(dataset: str, state_dir: Path, tracking_uri: str) -> Registry:
    """The registry of a dataset's model, with its lock and log in the state dir."""
    return Registry(tracking_uri, model_name(dataset), state_dir)


@contextmanager
def fluent(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at one store, then put things back.

    `mlflow.set_tracking_uri` also writes `MLFLOW_TRACKING_URI` into the environment; left
    there, it would silently redirect every later Registry in the same process.
    """
    import mlflow

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"] or "")
        mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"] or "")
