"""Fixtures that start real servers on loopback (Prefect, MLflow) and stop them afterwards.

They go through `cli.stack`, the code `greenlight up` uses, so the tests exercise the
same flags, environment and shutdown. Each server gets its own temp state dir and port.

`GREENLIGHT_TEST_BACKEND=postgres` runs both servers on the production configuration: a
fresh PostgreSQL database each (at `GREENLIGHT_TEST_PG_URL`, default the local server),
created for the session and dropped after. The default is SQLite in the temp dir.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli import stack

STARTUP_TIMEOUT = 180.0  # cold starts took 20-40 s on the busy 2-core CI machine
SCHEDULER_LOOP_SECONDS = "2"  # the default 60 s would make schedule tests wait minutes
_STARTUP: dict[str, float] = {}
BACKEND_ENV, PG_URL_ENV = "GREENLIGHT_TEST_BACKEND", "GREENLIGHT_TEST_PG_URL"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def backend() -> str:
    """`sqlite` (default) or `postgres`: which store the server fixtures put their state in."""
    chosen = os.environ.get(BACKEND_ENV, "sqlite").strip().lower() or "sqlite"
    if chosen not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"{BACKEND_ENV}={chosen}: expected sqlite or postgres")
    return chosen


@contextmanager
def fresh_database(label: str) -> Iterator[str | None]:
    """A new, empty PostgreSQL database for one server on the postgres backend; else None."""
    if backend() != "postgres":
        yield None
        return
    with postgres_database(label) as url:
        yield url


def postgres_unavailable() -> str | None:
    """Why the PostgreSQL server is not usable here, or None (`.ci/run` starts it)."""
    import psycopg2

    admin = os.environ.get(PG_URL_ENV, PG_ADMIN_URL)
    try:
        psycopg2.connect(admin, connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        return f"PostgreSQL at {admin} is not usable: {str(exc).strip().splitlines()[0]}"
    return None


@contextmanager
def postgres_database(label: str) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards.

    Dropped `WITH (FORCE)`: a server killed on teardown may leave connections behind."""
    import psycopg2
    from psycopg2 import sql

    admin = os.environ.get(PG_URL_ENV, PG_ADMIN_URL)
    name = f"greenlight_test_{label}_{uuid.uuid4().hex[:8]}"

    def run(statement: sql.Composed) -> None:
        conn = psycopg2.connect(admin)
        conn.autocommit = True  # CREATE/DROP DATABASE refuse to run in a transaction
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    run(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        run(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass(frozen=True)
class PrefectServer:
    home: Path
    port: int
    startup_seconds: float
    database_url: str | None = None

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"


@dataclass(frozen=True)
class MlflowServer:
    home: Path
    port: int
    startup_seconds: float
    database_url: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A Prefect server for the rest of the session; flows run in this process go to it.

    Setting `PREFECT_API_URL` alone is not enough once embedded flows have run here:
    Prefect caches its settings, so they are also overridden with `temporary_settings`."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home, port = tmp_path_factory.mktemp("prefect-server"), stack.free_port()
    with fresh_database("prefect") as database_url:
        start = time.perf_counter()
        proc = stack.start_prefect_server(home, port, env={
            "PREFECT_API_SERVICES_SCHEDULER_LOOP_SECONDS": SCHEDULER_LOOP_SECONDS},
            database_url=database_url)
        saved = os.environ.get("PREFECT_API_URL")
        try:
            stack.wait_healthy(f"http://127.0.0.1:{port}/api/health", STARTUP_TIMEOUT, proc)
            server = PrefectServer(home, port, round(time.perf_counter() - start, 1),
                                   database_url)
            _STARTUP[f"prefect server ({backend()})"] = server.startup_seconds
            os.environ["PREFECT_API_URL"] = server.api_url
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                yield server
        finally:
            if saved is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = saved
            stack.stop([proc])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """An MLflow server for the session. `MLFLOW_TRACKING_URI` is left alone on purpose:
    other tests keep their own SQLite stores, so pass `.url` to what should use the server."""
    home, port = tmp_path_factory.mktemp("mlflow-server"), stack.free_port()
    with fresh_database("mlflow") as database_url:
        start = time.perf_counter()
        proc = stack.start_mlflow_server(home, port, database_url=database_url)
        try:
            stack.wait_healthy(f"http://127.0.0.1:{port}/health", STARTUP_TIMEOUT, proc)
            server = MlflowServer(home, port, round(time.perf_counter() - start, 1),
                                  database_url)
            _STARTUP[f"mlflow server ({backend()})"] = server.startup_seconds
            yield server
        finally:
            stack.stop([proc])


def pytest_terminal_summary(terminalreporter) -> None:
    """Start-up cost is the price of every server test; keep it visible."""
    if _STARTUP:
        terminalreporter.write_line("server start-up: " + ", ".join(
            f"{name} {seconds} s" for name, seconds in _STARTUP.items()))
