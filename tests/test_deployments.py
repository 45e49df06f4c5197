"""Deployments: prefect.yaml agrees with cli/deployments.py, a cron schedule really runs a
cycle on a real server, and `greenlight up` comes up and goes down without orphans."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from cli import stack
from cli.deployments import DEPLOYMENTS, ENTRYPOINT, FLOW_NAME, TIMEZONE, WORK_POOL

REPO = Path(__file__).resolve().parents[1]
SCHEDULE_TIMEOUT = 150.0


def _child_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a child process: nothing pointing at this session's servers."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    return {**env, "GREENLIGHT_HOME": str(home), "PREFECT_HOME": str(home / "prefect"), **extra}


def _spawn(code: str, log: Path, env: dict[str, str]) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _descendants(root: int) -> set[int]:
    """Every process below `root`, from /proc (no psutil in the stack)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie awaiting its reaper (a zombie holds no port and no memory)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_prefect_yaml_matches_the_definitions():
    from flows.cycle import cycle

    doc = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in doc["deployments"]}
    assert list(by_name) == [d.name for d in DEPLOYMENTS]
    assert cycle.name == FLOW_NAME
    for d in DEPLOYMENTS:
        declared = by_name[d.name]
        assert declared["entrypoint"] == ENTRYPOINT
        assert declared["work_pool"]["name"] == WORK_POOL
        assert declared.get("schedules") == d.schedules()
        if d.cron and d.active:
            assert declared["schedules"] == [{"cron": d.cron, "timezone": TIMEZONE}]
        assert declared.get("triggers", []) == d.triggers("synthetic")
        assert declared["parameters"] == d.parameters("synthetic", None)
        assert set(declared["parameters"]) <= set(inspect.signature(cycle.fn).parameters)
    (step,) = doc["pull"]
    assert "prefect.deployments.steps.set_working_directory" in step


@pytest.mark.e2e
def test_cron_schedule_creates_and_completes_a_cycle(prefect_server, mlflow_server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from registry import versions
    from registry.store import Registry
    from tasks.data.home import Home
    from tasks.data.replay import synthetic_batch, write_batch

    home = Home(tmp_path / "gl").ensure()
    write_batch(synthetic_batch(0), home.landing)
    name = "every-minute"
    code = ("from pathlib import Path\n"
            "from cli.deployments import DeploymentDef\n"
            "from cli.up import serve_deployments\n"
            f"serve_deployments([DeploymentDef({name!r}, 'auto', '* * * * *', 'test')],\n"
            f"                  dataset='synthetic', home=Path({str(home.root)!r}))\n")
    log = tmp_path / "serve.log"
    env = _child_env(home.root, PREFECT_API_URL=prefect_server.api_url,
                     MLFLOW_TRACKING_URI=mlflow_server.url, PREFECT_RUNNER_POLL_FREQUENCY="2")
    proc = _spawn(code, log, env)
    deadline = time.monotonic() + SCHEDULE_TIMEOUT
    try:
        with get_client(sync_client=True) as client:
            completed = None
            while completed is None:
                assert proc.poll() is None, f"serve exited {proc.returncode}:\n{_tail(log)}"
                assert time.monotonic() < deadline, f"no scheduled run completed:\n{_tail(log)}"
                time.sleep(2)
                try:
                    deployment = client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
                except Exception:  # not registered yet
                    continue
                runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[deployment.id])))
                broken = [r for r in runs if r.state and r.state.is_final()
                          and not r.state.is_completed()]
                assert not broken, f"{broken[0].state}:\n{_tail(log)}"
                completed = next((r for r in runs if r.auto_scheduled and r.state
                                  and r.state.is_completed()), None)
    finally:
        stack.stop([proc])
    assert completed.deployment_id == deployment.id
    reg = Registry(mlflow_server.url, "greenlight-synthetic", home.root)
    champion = versions.by_alias(reg, "champion")
    assert champion is not None, "the scheduled cycle did not bootstrap a champion"


@pytest.mark.e2e
def test_up_serves_the_deployments_and_stops_without_orphans(tmp_path):
    home = tmp_path / "gl"
    prefect_port, mlflow_port = stack.free_port(), stack.free_port()
    prefect_url, mlflow_url = f"http://127.0.0.1:{prefect_port}", f"http://127.0.0.1:{mlflow_port}"
    evidently_url = f"http://127.0.0.1:{(evidently_port := stack.free_port())}"
    code = ("from pathlib import Path\nfrom cli.up import up\n"
            f"up(Path({str(home)!r}), prefect_port={prefect_port}, mlflow_port={mlflow_port}, "
            f"evidently_port={evidently_port})\n")
    log = tmp_path / "up.log"
    proc = _spawn(code, log, _child_env(home))
    servers: set[int] = set()
    try:
        stack.wait_healthy(f"{prefect_url}/api/health", 240, proc)
        stack.wait_healthy(f"{mlflow_url}/health", 240, proc)
        stack.wait_healthy(evidently_url + stack.EVIDENTLY_HEALTH, 240, proc)
        deadline = time.monotonic() + 120
        for d in DEPLOYMENTS:
            while _status(f"{prefect_url}/api/deployments/name/{d.full_name}") != 200:
                assert proc.poll() is None, f"up exited {proc.returncode}:\n{_tail(log)}"
                assert time.monotonic() < deadline, f"{d.full_name} never appeared:\n{_tail(log)}"
                time.sleep(1)
        while "Ctrl-C stops everything." not in log.read_text():  # the banner, once serving
            assert proc.poll() is None, f"up exited {proc.returncode}:\n{_tail(log)}"
            assert time.monotonic() < deadline, f"no banner:\n{_tail(log)}"
            time.sleep(1)
        assert f"Evidently   {evidently_url}" in log.read_text()  # the banner says where
        # 16.10b: the link opens the dataset's project dashboard, not the UI's home page
        (link,) = [line.split()[1] for line in log.read_text().splitlines()
                   if line.startswith("  Evidently   ")]
        assert link.startswith(f"{evidently_url}/projects/"), link
        with urllib.request.urlopen(f"{evidently_url}/api/projects/", timeout=30) as response:
            projects = {p["id"]: p["name"] for p in json.load(response)}
        assert projects.get(link.rsplit("/", 1)[1]) == "greenlight-synthetic", (link, projects)
        # 16.1: other commands on this state dir find the servers from this file
        recorded = json.loads((home / "servers.json").read_text())["settings"]
        assert recorded["MLFLOW_TRACKING_URI"] == mlflow_url
        assert recorded["PREFECT_API_URL"] == f"{prefect_url}/api"
        assert recorded["GREENLIGHT_EVIDENTLY_URL"] == link
        servers = _descendants(proc.pid)
        assert len(servers) >= 3, servers  # prefect, mlflow (+ its uvicorn), evidently ui
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, _tail(log)
        left = sorted(pid for pid in servers if _alive(pid))
        assert not left, f"processes left after SIGTERM: {left}"
        assert _status(f"{prefect_url}/api/health") == 0
        assert _status(f"{mlflow_url}/health") == 0
        assert _status(evidently_url + stack.EVIDENTLY_HEALTH) == 0
    finally:
        if proc.poll() is None:
            stack.stop([proc])
        for pid in servers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_up_switches_on_one_policy_and_pauses_the_others(prefect_server, tmp_path):
    """16.3: auto's and manual's schedules raced for the same landing/. `up --policy P`
    registers every deployment, with only P's switched on; a restart with another policy
    pauses the first one's. Applied as `up` applies them, on the session's real server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    from cli.deployments import CATALOG, belongs_to, for_policy
    from cli.up import drop_paused_runs, runner_deployments

    home = tmp_path / "gl"
    with get_client(sync_client=True) as client:
        for policy in ("auto", "manual", "monitor"):
            for deployment in runner_deployments(for_policy(policy), dataset="synthetic",
                                                 home=home):
                deployment.apply()
            drop_paused_runs(for_policy(policy))  # as serve_deployments does after applying
            on = set()
            for d in CATALOG:
                found = client.read_deployment_by_name(d.full_name)
                if d.cron:
                    (schedule,) = found.schedules
                    if schedule.active:
                        on.add(d.policy)
                    assert schedule.active == belongs_to(d, policy), (policy, d.name)
                    if not schedule.active:  # nothing of a paused policy waits to run
                        waiting = client.read_flow_runs(
                            deployment_filter=DeploymentFilter(id=DeploymentFilterId(
                                any_=[found.id])),
                            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                                type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))))
                        assert not [r for r in waiting if r.auto_scheduled], (policy, d.name)
                else:
                    (automation,) = client.read_resource_related_automations(
                        f"prefect.deployment.{found.id}")
                    # under manual, a hand-started monitor run must not promote by itself
                    assert automation.enabled == (policy != "manual"), (policy, d.name)
            assert on == {policy}, f"--policy {policy}: schedules on for {sorted(on)}"


def _run_cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from cli.main import main; main()", *args]


@pytest.mark.e2e
def test_ctrl_c_stops_every_server_even_when_it_killed_the_pipe_reader_too(tmp_path):
    """16.8: `greenlight up | tee up.log`, Ctrl-C: tee dies with the same SIGINT, and the
    writes in the stop path met a broken pipe, which orphaned all three servers."""
    home = tmp_path / "gl"
    ports = {name: stack.free_port() for name in ("prefect", "mlflow", "evidently")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    health = {"prefect": f"{urls['prefect']}/api/health", "mlflow": f"{urls['mlflow']}/health",
              "evidently": urls["evidently"] + stack.EVIDENTLY_HEALTH}
    log = tmp_path / "up.log"
    up = subprocess.Popen(
        _run_cli("up", "--home", str(home), "--prefect-port", str(ports["prefect"]),
                 "--mlflow-port", str(ports["mlflow"]),
                 "--evidently-port", str(ports["evidently"])),
        cwd=REPO, env=_child_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        process_group=0)  # a foreground job of its own: the group Ctrl-C signals
    servers: set[int] = set()
    tee = None
    try:
        with log.open("wb") as out:  # the `tee`, in up's group as a shell puts a pipeline
            tee = subprocess.Popen(["cat"], stdin=up.stdout, stdout=out, process_group=up.pid)
        up.stdout.close()  # only tee reads the pipe now
        for url in health.values():
            stack.wait_healthy(url, 240, up)
        deadline = time.monotonic() + 120
        while "Ctrl-C stops everything." not in log.read_text():  # the banner: up serves
            assert up.poll() is None, f"up exited {up.returncode}:\n{_tail(log)}"
            assert time.monotonic() < deadline, f"no banner:\n{_tail(log)}"
            time.sleep(1)
        servers = _descendants(up.pid)
        assert len(servers) >= 3, servers
        tee.kill()  # the reader goes first, so every later write meets a broken pipe
        tee.wait(timeout=30)
        os.killpg(up.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        up.wait(timeout=120)
        left = sorted(pid for pid in servers if _alive(pid))
        assert not left, f"servers left running after Ctrl-C: {left}\n{_tail(log)}"
        assert up.returncode == 0, _tail(log)
        assert all(_status(url) == 0 for url in health.values())
        assert not (home / "servers.json").exists()  # a clean stop forgets the servers
    finally:
        if up.poll() is None:
            stack.stop([up])
        if tee is not None and tee.poll() is None:
            tee.kill()
        for pid in servers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    text = log.read_text()
    # 16.10e: each server is shown as it comes up, before the banner
    for name in ("Prefect server is up", "MLflow server is up", "Evidently UI is up"):
        assert text.index(name) < text.index("greenlight is up"), text
