"""Crashes: SIGKILL at every step boundary, then run again; nothing is lost or doubled.

The scenario is a live champion (v1) and the week where a new market appears, which an
uninterrupted run answers by retraining, registering v2 and promoting it. For each kill
point the cycle runs as `greenlight run` in its own process with the test-only hook
`GREENLIGHT_CRASH_AT=<step>` (core/faults.py), dies by SIGKILL, and runs again: the end
state must equal that of the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core.faults import CRASH_ENV, STEPS
from flows.cycle import cycle, registry_for
from registry import promote, versions
from registry.store import Registry
from tasks.data import lake, manifest
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.spec import load_spec
from tests.state_helpers import copy_state

REPO = Path(__file__).resolve().parents[1]
OLD = 1_700_000_000  # landed files' mtime: long settled, so the scan does not wait


def _registry(root: Path) -> Registry:
    return registry_for(Home.from_env(root), load_spec("synthetic"))


def end_state(root: Path) -> dict:
    """Everything a user relies on after a cycle: registry, promotion log, batches, files."""
    home, reg = Home.from_env(root), _registry(root)
    batches = manifest.load(home.manifest)
    return {
        "versions": [(v.version, v.tags.get("greenlight.batch_set"))
                     for v in versions.all_versions(reg)],
        "aliases": versions.aliases(reg),
        "promotions": [(r["action"], r.get("from"), r.get("to"), r.get("previous"),
                        r.get("batches"))
                       for r in promote.records(reg)],
        "batches": {i: (b["file"], b["status"], b.get("decision"), b.get("registered_version"),
                        b.get("promoted_version")) for i, b in batches.items()},
        "archive": sorted(str(p.relative_to(home.root)) for p in home.archive.rglob("*.csv")),
        "lake": sorted(p.name for p in home.lake.iterdir()),
        "landing": sorted(p.name for p in home.landing.iterdir()),
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory, champion_state) -> Path:
    """Champion v1 from week 0 (a copy of the one built once for the run), weeks 1-4 seen;
    the new-market week waiting in landing."""
    root = copy_state(champion_state, tmp_path_factory.mktemp("crash") / "base")
    home = Home.from_env(root).ensure()
    week = sources.SYNTHETIC_CHANGE_POINTS["covariate"]
    for i in range(1, week):
        os.utime(sources.write_batch(sources.synthetic_batch(i), home.landing), (OLD, OLD))
        cycle(dataset="synthetic", home=str(root))
    os.utime(sources.write_batch(sources.synthetic_batch(week), home.landing), (OLD, OLD))
    return root


@pytest.fixture(scope="module")
def uninterrupted(base, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("crash") / "uninterrupted"
    shutil.copytree(base, root)
    cycle(dataset="synthetic", home=str(root))
    state = end_state(root)
    assert state["aliases"] == {"champion": 2, "previous": 1}, state  # the scenario holds
    return state


def crashed_run(root: Path, step: str) -> int:
    """`greenlight run` in its own session, killed at `step`; its orphans are reaped too."""
    env = {**os.environ, "GREENLIGHT_HOME": str(root), "PREFECT_HOME": str(root / "prefect"),
           CRASH_ENV: step}
    env.pop("PREFECT_API_URL", None)
    log = (root.parent / f"crash-{step}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "run", "--dataset", "synthetic"],
                            cwd=REPO, env=env, start_new_session=True, stdout=log, stderr=log)
    try:
        code = proc.wait(timeout=600)
    finally:
        try:  # SIGKILL orphans the embedded Prefect server (STACK_NOTES): stop our group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
    return code


@pytest.mark.e2e
@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_then_rerun_ends_as_an_uninterrupted_run(
        step, base, uninterrupted, tmp_path):
    root = tmp_path / "gl"
    shutil.copytree(base, root)
    assert crashed_run(root, step) == -signal.SIGKILL, (
        tmp_path / f"crash-{step}.log").read_text()[-3000:]
    reg = _registry(root)
    champion = versions.aliases(reg)["champion"]  # resolves, and loads, right after the crash
    sample = sources.synthetic_batch(1, rows=5).frame
    assert len(versions.load_model(reg, champion).predict(None, sample)) == 5
    assert all(isinstance(r["to"], int) for r in promote.records(reg))  # no torn record
    cycle(dataset="synthetic", home=str(root))
    state = end_state(root)
    assert state == uninterrupted
    assert state["landing"] == []  # no batch lost: every landed file was filed
    home = Home.from_env(root)
    week = lake.read_batches(home.lake, [next(i for i, b in state["batches"].items()
                                              if b[0] == "2026-W07.csv")])
    assert len(week) == 3000


@pytest.mark.e2e
def test_two_cycles_at_once_promote_exactly_once(base, uninterrupted, tmp_path):
    """Two `greenlight run` on the same state dir and the same new week, started together:
    one intake files the week, one version is registered, one promotion is recorded."""
    root = tmp_path / "gl"
    shutil.copytree(base, root)
    procs = []
    for name in ("a", "b"):
        env = {**os.environ, "GREENLIGHT_HOME": str(root),
               "PREFECT_HOME": str(root / f"prefect-{name}")}
        env.pop("PREFECT_API_URL", None)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "cli.main", "run", "--dataset", "synthetic"], cwd=REPO,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [proc.communicate(timeout=900)[0] for proc in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0 and "Traceback" not in output, output[-3000:]
    state = end_state(root)
    assert state == uninterrupted
    assert [r[0] for r in state["promotions"]].count("promote") == 2  # bootstrap + one


def test_a_promotion_whose_holder_died_before_recording_is_recorded_on_rerun(tmp_path,
                                                                            fresh_mlflow):
    """Aliases moved, no record (killed in between): promoting again records the move once,
    from the champion kept as @previous, instead of refusing or moving anything twice."""
    from tests.test_registry import _model_version

    reg = Registry(fresh_mlflow(tmp_path), "m-crash", tmp_path)
    for name in ("a", "b"):
        _model_version(reg, name)
    promote.promote(reg, 1, reason="bootstrap")
    reg.client.set_registered_model_alias(reg.model_name, "previous", "1")
    reg.client.set_registered_model_alias(reg.model_name, "champion", "2")  # then SIGKILL
    record = promote.promote(reg, 2, reason="re-run", expected_from=1)
    assert (record["from"], record["to"], record["previous"]) == (1, 2, 1)
    assert promote.promote(reg, 2, reason="re-run again", expected_from=1) == record
    assert [(r["from"], r["to"]) for r in promote.records(reg)] == [(None, 1), (1, 2)]
    with reg.promotions_path.open("a") as fh:  # a torn line from a power cut
        fh.write('{"at": "2026-')
    promote.rollback(reg, reason="after a torn line", by="test")
    assert [r["action"] for r in promote.records(reg)] == ["promote", "promote", "rollback"]
    assert pd.notna(versions.aliases(reg)["champion"])


def _run_cli(root: Path, *args: str, env: dict | None = None,
             embedded: bool = False) -> subprocess.Popen:
    """`greenlight run` in its own process and session (stdout and stderr together)."""
    full = {**os.environ, "GREENLIGHT_HOME": str(root), **(env or {})}
    if embedded:
        full.pop("PREFECT_API_URL", None)
        full["PREFECT_HOME"] = str(root / "prefect")
    return subprocess.Popen([sys.executable, "-m", "cli.main", "run", "--dataset", "synthetic",
                             *args], cwd=REPO, env=full, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for(what: str, ready, proc: subprocess.Popen, limit_s: float = 600) -> None:
    deadline = time.monotonic() + limit_s
    while not ready():
        assert proc.poll() is None, f"ended before {what}:\n{proc.communicate()[0][-3000:]}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.2)


@pytest.mark.e2e
def test_a_second_cycle_finds_the_batches_taken_and_does_nothing(champion_home):
    """Cycle A has claimed the pending batches (held just after taking its claim); cycle B,
    started meanwhile, says in one line that they are taken and exits 0. Each batch then
    has one decision record and one monitoring run, not two."""
    from core.faults import HOLD_ENV, HOLD_FILE_ENV
    from tests.approval_helpers import land, registry

    root = champion_home
    for index in (1, 2):
        land(root, index)
    for landed in Home(root).landing.iterdir():
        os.utime(landed, (OLD, OLD))
    hold = root / "hold-cycle"
    # --json: the JSON summary's "taken" line is told apart from the warning by its quote
    first = _run_cli(root, "--policy", "monitor", "--json",
                     env={HOLD_ENV: "cycle", HOLD_FILE_ENV: str(hold)})
    _wait_for("took its claim", hold.exists, first)
    second = _run_cli(root, "--policy", "monitor", "--json")
    out_b = second.communicate(timeout=600)[0]
    hold.unlink()
    out_a = first.communicate(timeout=900)[0]
    assert first.returncode == 0 and "Traceback" not in out_a, out_a[-3000:]
    assert second.returncode == 0 and "Traceback" not in out_b, out_b[-3000:]
    taken = [line for line in out_b.splitlines() if "has its batches" in line
             and not line.lstrip().startswith('"')]
    assert len(taken) == 1 and "another cycle of synthetic" in taken[0], out_b
    files = {b["file"]: i for i, b in manifest.load(Home(root).manifest).items()}
    new = {f: i for f, i in files.items() if f in ("2026-W03.csv", "2026-W04.csv")}
    assert len(new) == 2, files
    records = [json.loads(line) for line in Home(root).manifest.read_text().splitlines()]
    counts = {f: sum(1 for r in records if r["id"] == i and "decision" in r)
              for f, i in new.items()}
    assert counts == {f: 1 for f in new}, counts
    reg = registry(root)
    experiment = reg.client.get_experiment_by_name(f"{reg.model_name}-monitoring")
    runs = reg.client.search_runs([experiment.experiment_id])
    monitored = sorted(r.data.tags.get("greenlight.file") for r in runs
                       if r.info.run_name.startswith("monitor-"))
    assert monitored.count("2026-W03.csv") == 1 and monitored.count("2026-W04.csv") == 1, \
        monitored


def _server_children(pid: int, watchdog: bool = False) -> list:
    """The temporary Prefect server under `pid` (or, with `watchdog`, its watchdog)."""
    import psutil

    from cli.embedded import SERVER_MARKER

    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for kid in kids:
        try:
            command = " ".join(kid.cmdline())
        except psutil.NoSuchProcess:
            continue
        if SERVER_MARKER in command and (watchdog == ("-I -S -c" in command)):
            out.append(kid)
    return out


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.e2e
def test_the_temporary_prefect_server_dies_with_a_sigkilled_run(home):
    """kill -9 of the Python process alone (as the OOM killer does): its temporary Prefect
    server goes too, instead of running on as an orphan."""
    import psutil

    sources.write_batch(sources.synthetic_batch(0), home.landing)
    proc = _run_cli(home.root, embedded=True)
    found: list = []

    def server_up() -> bool:
        found[:] = _server_children(proc.pid)
        return bool(found)

    _wait_for("started its temporary server", server_up, proc)
    (server,) = found
    command = server.cmdline()
    health = f"http://127.0.0.1:{command[command.index('--port') + 1]}/api/health"
    _wait_for("had its temporary server answer", lambda: _answers(health), proc)
    _wait_for("watched its server", lambda: _server_children(proc.pid, watchdog=True), proc)
    assert proc.poll() is None and server.is_running()  # the run is mid-cycle, server up
    try:
        os.kill(proc.pid, signal.SIGKILL)  # the process alone, not its group
        proc.wait(timeout=60)
        deadline = time.monotonic() + 120
        while server.is_running() and server.status() != psutil.STATUS_ZOMBIE \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        orphaned = server.is_running() and server.status() != psutil.STATUS_ZOMBIE
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass
    assert not orphaned, "the temporary Prefect server outlived its killed parent"
