"""Start a real cycle that pauses for approval, in its own process, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from flows.cycle import registry_for
from registry.store import Registry
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.spec import load_spec

CYCLE = """
import sys
from flows.cycle import cycle
from flows.params import Training
print(cycle(dataset="synthetic", policy=sys.argv[1], force_retrain=sys.argv[2] == "force",
            training=Training(min_delta=float(sys.argv[3]), refresh_on=sys.argv[5]),
            approval_timeout_seconds=int(sys.argv[4])))
"""


def env_for(api_url: str, home: Path) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": api_url, "GREENLIGHT_HOME": str(home),
            "PREFECT_LOGGING_LEVEL": "WARNING"}


def land(home: Path, index: int) -> None:
    sources.write_batch(sources.synthetic_stream(seed=7)[index], Home(home).ensure().landing)


def start_cycle(api_url: str, home: Path, policy: str, *, force: bool = True,
                min_delta: float = -1.0, timeout_s: int = 600,
                refresh_on: str = "decay") -> subprocess.Popen:
    """A cycle in its own process, as a worker would run it. min_delta -1 makes any
    challenger pass the gate, so the run reaches the approval step."""
    args = [sys.executable, "-c", CYCLE, policy, "force" if force else "", str(min_delta),
            str(timeout_s), refresh_on]
    return subprocess.Popen(args, env=env_for(api_url, home), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def paused_runs(api_url: str) -> list[dict]:
    body = {"flow_runs": {"state": {"name": {"any_": ["Paused"]}}}}
    return httpx.post(f"{api_url}/flow_runs/filter", json=body).json()


def wait_paused(api_url: str, proc: subprocess.Popen, timeout: float = 120) -> str:
    """The id of the run once it is paused; fails with the run's output if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = paused_runs(api_url)
        if runs:
            return runs[0]["id"]
        if proc.poll() is not None:
            raise AssertionError(f"cycle ended without pausing:\n{proc.stdout.read()}")
        time.sleep(1)
    raise AssertionError("no paused flow run")


def run_state(api_url: str, run_id: str) -> str:
    return httpx.get(f"{api_url}/flow_runs/{run_id}").json()["state"]["type"]


def state_history(api_url: str, run_id: str) -> list[str]:
    """Every state the run went through, oldest first: a run that went red (Failed) on
    the way shows it here even when it ended Completed."""
    states = httpx.get(f"{api_url}/flow_run_states/", params={"flow_run_id": run_id}).json()
    return [s["type"] for s in sorted(states, key=lambda s: s["timestamp"])]


def registry(home: Path) -> Registry:
    return registry_for(Home(home), load_spec("synthetic"))


def cycle_artifact(api_url: str, run_id: str) -> str:
    """The markdown of the cycle artifact that this flow run wrote, read through the API."""
    body = {"artifacts": {"flow_run_id": {"any_": [run_id]},
                          "key": {"like_": "greenlight-cycle-"}}}
    found = httpx.post(f"{api_url}/artifacts/filter", json=body).json()
    assert found, f"flow run {run_id} wrote no cycle artifact"
    return found[0]["data"]


def latest_cycle_run(api_url: str) -> str:
    """The id of the newest greenlight-cycle flow run that started (the tests of a module run
    in turn). Runs that never started are left out: a schedule's future runs have no start
    time, and PostgreSQL sorts nulls first in a descending sort (SQLite sorts them last)."""
    body = {"flows": {"name": {"any_": ["greenlight-cycle"]}},
            "flow_runs": {"start_time": {"is_null_": False}}, "sort": "START_TIME_DESC",
            "limit": 1}
    return httpx.post(f"{api_url}/flow_runs/filter", json=body).json()[0]["id"]
