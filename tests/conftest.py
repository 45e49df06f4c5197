"""Test set-up: every test gets its own state dir; Prefect runs embedded under a temp home."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="greenlight-prefect-"))
for key, value in {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GIT_PYTHON_REFRESH": "quiet",
                   "PREFECT_HOME": str(_PREFECT_HOME), "PREFECT_LOGGING_LEVEL": "WARNING",
                   "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                   # CI runs on 2 cores next to real servers: 20 s is too short to be sure of.
                   "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}.items():
    os.environ[key] = value
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("PREFECT_API_URL", None)

pytest_plugins = ["tests.servers"]  # real Prefect / MLflow servers on loopback

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """A file from ../shared/data, or a skip that says why (the data is never copied in)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: the real datasets live in ../shared/data")
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    from tasks.home import Home

    monkeypatch.setenv("GREENLIGHT_HOME", str(tmp_path / "gl"))
    return Home.from_env().ensure()
