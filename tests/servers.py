"""Fixtures that start real servers on loopback (Prefect, MLflow) and stop them afterwards.

They go through `flows.stack`, the code `greenlight up` uses, so the tests exercise the
same flags, environment and shutdown. Each server gets its own temp state dir and port.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flows import stack

STARTUP_TIMEOUT = 180.0  # cold starts took 20-40 s on the busy 2-core CI machine
SCHEDULER_LOOP_SECONDS = "2"  # the default 60 s would make schedule tests wait minutes
_STARTUP: dict[str, float] = {}


@dataclass(frozen=True)
class PrefectServer:
    home: Path
    port: int
    startup_seconds: float

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
    start = time.perf_counter()
    proc = stack.start_prefect_server(home, port, env={
        "PREFECT_API_SERVICES_SCHEDULER_LOOP_SECONDS": SCHEDULER_LOOP_SECONDS})
    saved = os.environ.get("PREFECT_API_URL")
    try:
        stack.wait_healthy(f"http://127.0.0.1:{port}/api/health", STARTUP_TIMEOUT, proc)
        server = PrefectServer(home, port, round(time.perf_counter() - start, 1))
        _STARTUP["prefect server"] = server.startup_seconds
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
    start = time.perf_counter()
    proc = stack.start_mlflow_server(home, port)
    try:
        stack.wait_healthy(f"http://127.0.0.1:{port}/health", STARTUP_TIMEOUT, proc)
        server = MlflowServer(home, port, round(time.perf_counter() - start, 1))
        _STARTUP["mlflow server"] = server.startup_seconds
        yield server
    finally:
        stack.stop([proc])


def pytest_terminal_summary(terminalreporter) -> None:
    """Start-up cost is the price of every server test; keep it visible."""
    if _STARTUP:
        terminalreporter.write_line("server start-up: " + ", ".join(
            f"{name} {seconds} s" for name, seconds in _STARTUP.items()))
