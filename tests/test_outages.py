"""Outages: a server that goes down costs a retry or a clear failure, never a batch or a bad
promotion.

MLflow: a real server (cli.stack, on the test backend) goes down while a cycle waits just
before register, then before promote (the test-only hold in core/faults.py). Each time the
step retries with backoff, `greenlight run` fails in one line with exit code 3, and the
champion stays; once the server is back, running again ends as an uninterrupted run would.
Prefect: `greenlight run` and `approve` against a closed port say so in one line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import stack
from core.faults import HOLD_ENV, HOLD_FILE_ENV
from flows.cycle import cycle, registry_for
from registry import promote, versions
from tasks.data import manifest
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.spec import load_spec
from tests.servers import STARTUP_TIMEOUT, fresh_database

REPO = Path(__file__).resolve().parents[1]
OLD = 1_700_000_000  # landed files' mtime: long settled, so the scan does not wait
# -v: the retry lines asserted below are Prefect's task-run lines, shown only when verbose
RUN = [sys.executable, "-m", "cli.main", "run", "--dataset", "synthetic", "-v"]


class MlflowStack:
    """One MLflow server that a test can stop and start again on the same port and store."""

    def __init__(self, home: Path, database_url: str | None) -> None:
        self.home, self.database_url, self.port = home, database_url, stack.free_port()
        self.proc: stack.Server | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = stack.start_mlflow_server(self.home, self.port, self.database_url)
        stack.wait_healthy(f"{self.url}/health", STARTUP_TIMEOUT, self.proc)

    def stop(self) -> None:
        stack.stop([self.proc])
        self.proc = None


@pytest.fixture
def mlflow_stack(tmp_path) -> Iterator[MlflowStack]:
    with fresh_database("outage") as database_url:
        server = MlflowStack(tmp_path / "mlflow-server", database_url)
        server.start()
        try:
            yield server
        finally:
            if server.proc is not None:
                server.stop()


def _land(home: Home, index: int) -> None:
    os.utime(sources.write_batch(sources.synthetic_batch(index), home.landing), (OLD, OLD))


def _run(root: Path, mlflow_url: str, log: Path, hold_at: str | None = None
         ) -> subprocess.Popen:
    """`greenlight run` in its own process, as cron or a person would start it."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update({"GREENLIGHT_HOME": str(root), "PREFECT_HOME": str(root / "prefect"),
                "MLFLOW_TRACKING_URI": mlflow_url, "PREFECT_LOGGING_LEVEL": "INFO"})
    if hold_at:
        env.update({HOLD_ENV: hold_at, HOLD_FILE_ENV: str(root / f"hold-{hold_at}")})
    out = log.open("w")
    return subprocess.Popen(RUN, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _outage_at(step: str, root: Path, server: MlflowStack, log: Path) -> dict:
    """Run a cycle, stop MLflow the moment it reaches `step`, and see how it ends."""
    proc = _run(root, server.url, log, hold_at=step)
    hold = root / f"hold-{step}"
    deadline = time.monotonic() + 600
    while not hold.exists():
        assert proc.poll() is None, f"the cycle ended before {step}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the cycle never reached {step}"
        time.sleep(0.2)
    server.stop()
    hold.unlink()
    released = time.monotonic()
    code = proc.wait(timeout=900)
    output = log.read_text(errors="replace")
    return {"code": code, "output": output, "seconds": time.monotonic() - released,
            "retries": re.findall(r"Retry (\d)/(\d) will start", output)}


def _assert_clear_failure(result: dict, url: str) -> None:
    output = result["output"]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert result["code"] == 3, output[-3000:]
    assert errors == [errors[0]] and f"MLflow server at {url} is unreachable" in errors[0]
    assert "champion did not move" in errors[0], errors
    assert "Traceback" not in output.split(errors[0])[-1]  # nothing raw after the verdict
    assert "Traceback" not in output, output[-3000:]  # nor before it: in the error log
    assert not [line for line in output.splitlines() if "Retrying (Retry(" in line], output
    assert result["retries"] == [("1", "2"), ("2", "2")], output[-3000:]  # backoff, then up


@pytest.mark.e2e
def test_mlflow_down_at_register_then_promote_fails_clearly_and_loses_nothing(
        mlflow_stack, tmp_path, monkeypatch):
    root = tmp_path / "gl"
    home = Home.from_env(root).ensure()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_stack.url)
    week = sources.SYNTHETIC_CHANGE_POINTS["covariate"]
    for i in range(week):  # champion v1 from the stable weeks, in one cycle
        _land(home, i)
    cycle(dataset="synthetic", home=str(root))
    reg = registry_for(home, load_spec("synthetic"))
    assert versions.aliases(reg) == {"champion": 1}
    _land(home, week)  # the new market: retrain, register v2, promote it

    down = _outage_at("register", root, mlflow_stack, tmp_path / "register.log")
    _assert_clear_failure(down, mlflow_stack.url)
    mlflow_stack.start()
    assert versions.aliases(reg) == {"champion": 1}
    assert [v.version for v in versions.all_versions(reg)] == [1]
    print(f"register outage: exit {down['code']} after {down['seconds']:.1f} s, "
          f"retries {down['retries']}")

    down = _outage_at("promote", root, mlflow_stack, tmp_path / "promote.log")
    _assert_clear_failure(down, mlflow_stack.url)
    mlflow_stack.start()
    assert versions.aliases(reg) == {"champion": 1}  # registered, never promoted
    assert [v.version for v in versions.all_versions(reg)] == [1, 2]
    print(f"promote outage: exit {down['code']} after {down['seconds']:.1f} s, "
          f"retries {down['retries']}")

    again = _run(root, mlflow_stack.url, tmp_path / "again.log")
    assert again.wait(timeout=900) == 0, (tmp_path / "again.log").read_text()[-3000:]
    assert versions.aliases(reg) == {"champion": 2, "previous": 1}
    assert [v.version for v in versions.all_versions(reg)] == [1, 2]  # no duplicate
    assert [(r["from"], r["to"]) for r in promote.records(reg)] == [(None, 1), (1, 2)]
    batches = manifest.load(home.manifest).values()
    assert sorted(b["file"] for b in batches) == [f"2026-W{i + 2:02d}.csv"
                                                  for i in range(week + 1)]
    assert list(home.landing.iterdir()) == []  # every landed file was filed


def _unreachable_prefect(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    closed = stack.free_port()
    env = {**os.environ, "GREENLIGHT_HOME": str(tmp_path / "gl"),
           "PREFECT_API_URL": f"http://127.0.0.1:{closed}/api"}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args", [
    ["run", "--dataset", "synthetic"],
    ["approve", "6b2f0c1e-0000-4000-8000-000000000000", "--approve"],
], ids=["run", "approve"])
def test_an_unreachable_prefect_server_is_one_clear_line(args, tmp_path):
    done = _unreachable_prefect(args, tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stdout + done.stderr, done.stderr
    assert re.match(r"error: Prefect server at http://127\.0\.0\.1:\d+/api is unreachable "
                    r"\(Connection refused\)", lines[0]), lines


def _with_mlflow_at(url: str, root: Path, args: list[str], **extra: str
                    ) -> subprocess.CompletedProcess:
    """A command in its own process, its MLflow at `url`, embedded Prefect."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update({"GREENLIGHT_HOME": str(root), "PREFECT_HOME": str(root / "prefect"),
                "MLFLOW_TRACKING_URI": url, **extra})
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def _one_line_naming_the_log(done: subprocess.CompletedProcess, url: str, root: Path) -> None:
    output = done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 3, output[-3000:]
    assert len(errors) == 1 and f"MLflow server at {url} is unreachable" in errors[0], output
    log = root / "logs" / "errors.log"
    assert f"details in {log}" in errors[0], errors
    assert "Traceback" not in output and "MlflowException" not in output, output[-3000:]
    assert not [line for line in output.splitlines() if "urllib3" in line
                or "Retrying (Retry(" in line or "Max retries exceeded" in line], output[-3000:]
    assert "Traceback" in log.read_text()  # the details are kept, where the line says


@pytest.mark.e2e  # a fault test: three commands against a dead MLflow, ~15 s each
@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["rollback"]])
def test_registry_commands_with_mlflow_down_are_one_line(args, tmp_path):
    root = tmp_path / "gl"
    url = f"http://127.0.0.1:{stack.free_port()}"
    done = _with_mlflow_at(url, root, [*args, "--dataset", "synthetic"])
    _one_line_naming_the_log(done, url, root)
    assert done.stderr.strip().count("\n") == 0, done.stderr  # the line is all there is


@pytest.mark.e2e
def test_a_cycle_with_mlflow_down_shows_one_line_and_no_traceback(tmp_path):
    """Before: up to 10 tracebacks and hundreds of urllib3 retry warnings came first."""
    root = tmp_path / "gl"
    _land(Home.from_env(root).ensure(), 0)
    url = f"http://127.0.0.1:{stack.free_port()}"
    done = _with_mlflow_at(url, root, ["run", "--dataset", "synthetic"],
                           PREFECT_LOGGING_LEVEL="INFO")
    _one_line_naming_the_log(done, url, root)
    assert manifest.load(Home.from_env(root).manifest)  # the batch is recorded, not lost


@pytest.mark.e2e
def test_with_an_mlflow_server_stdout_is_the_json_summary_alone(mlflow_stack, tmp_path):
    """`greenlight run --json | jq` works: MLflow's `🏃 View run …` lines stay off stdout."""
    import json

    root = tmp_path / "gl"
    _land(Home.from_env(root).ensure(), 0)
    done = _with_mlflow_at(mlflow_stack.url, root, ["run", "--dataset", "synthetic", "--json"])
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    summary = json.loads(done.stdout, parse_constant=refuse)
    assert summary["decision"] == "bootstrap", summary
    assert "View run" not in done.stdout
