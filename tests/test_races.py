"""Races: two promotions at once give exactly one move and one record, with either lock.

Embedded, the lock is the OS file lock inside `registry.promote`; against a Prefect
server it is also a global concurrency limit with `strict=True` (`registry/locks.py`). Each
contender is its own process, as two cycles would be, released together.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from registry import promote, versions
from registry.store import Registry
from tests.test_registry import _model_version

REPO = Path(__file__).resolve().parents[1]
HOLD_S = 1.5


def contender(uri: str, model: str, state: str, version: int, expected: int, go: str,
              server_lock: bool) -> None:
    """Run in a child process: get ready (imports, a warm store connection), say so, wait
    for the go file, then try to promote `version`: both start within a millisecond."""
    from registry.locks import promotion_lock

    reg = Registry(uri, model, Path(state))
    versions.aliases(reg)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.0005)
    out: dict = {"version": version}
    try:
        if server_lock:
            with promotion_lock(model):
                out["entered"] = time.time()
                time.sleep(HOLD_S)  # a slow move: the other one must wait outside
                out["record"] = promote.promote(reg, version, reason="race",
                                                expected_from=expected)
                out["left"] = time.time()
        else:
            out["record"] = promote.promote(reg, version, reason="race", expected_from=expected)
    except promote.PromotionError as exc:
        out["refused"] = str(exc)
    print(json.dumps(out, default=str))


def holder_killed_while_locked(lock_path: str, api_url: str, model: str) -> None:
    """Run in a child process: take the lock(s) and die by SIGKILL while holding them."""
    from registry.locks import promotion_lock

    with FileLock(lock_path, timeout=10):
        if api_url:
            with promotion_lock(model):
                print("holding", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        print("holding", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


def rollback_on_a_shared_home(uri: str, model: str, state: str) -> None:
    """Run in a child process: what `greenlight rollback` does on an object-store home."""
    from registry.locks import command_promotion_lock

    reg = Registry(uri, model, Path(state))
    with command_promotion_lock(model, shared=True):
        promote.rollback(reg, reason="an operator", expected_from=2)


def _child(call: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"from tests.test_races import *; {call}"],
                            cwd=REPO, env={**os.environ, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def race(reg: Registry, a: int, b: int, expected: int, server_lock: bool = False) -> list[dict]:
    go = reg.state_dir / f"go-{a}-{b}"
    args = f"{reg.tracking_uri!r}, {reg.model_name!r}, {str(reg.state_dir)!r}"
    procs = [_child(f"contender({args}, {v}, {expected}, {str(go)!r}, {server_lock})")
             for v in (a, b)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.communicate()[1][-2000:]
    go.touch()
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outs


def _registry(tmp_path: Path, name: str, n: int) -> Registry:
    reg = Registry(f"sqlite:///{tmp_path}/mlflow.db", name, tmp_path)
    for i in range(n):
        _model_version(reg, f"set-{i}", seed=i)
    promote.promote(reg, 1, reason="bootstrap")
    return reg


def _check_one_winner(reg: Registry, outs: list[dict], champion_before: int) -> int:
    winners = [o for o in outs if "record" in o]
    losers = [o for o in outs if "refused" in o]
    assert len(winners) == 1 and len(losers) == 1, outs
    assert "champion moved meanwhile" in losers[0]["refused"]
    won = winners[0]["version"]
    assert versions.aliases(reg) == {"champion": won, "previous": champion_before}
    last = promote.records(reg)[-1]
    assert (last["from"], last["to"]) == (champion_before, won)
    return won


@pytest.mark.e2e
def test_two_promotions_at_once_embedded_file_lock(tmp_path):
    reg = _registry(tmp_path, "m-race-file", 5)
    champion, rounds = 1, [(2, 3), (4, 5)]
    for a, b in rounds:
        outs = race(reg, a, b, expected=champion)
        champion = _check_one_winner(reg, outs, champion)
    moves = [(r["from"], r["to"]) for r in promote.records(reg)]
    assert len(moves) == 1 + len(rounds)  # bootstrap + exactly one per round
    assert all(m[0] == p[1] for m, p in zip(moves[1:], moves, strict=False))  # a chain


@pytest.mark.e2e
def test_the_file_lock_does_not_leak_when_its_holder_is_killed(tmp_path):
    reg = _registry(tmp_path, "m-race-kill", 2)
    proc = _child(f"holder_killed_while_locked({str(reg.lock_path)!r}, '', '')",
                  env={"PREFECT_API_URL": ""})
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    started = time.perf_counter()
    promote.promote(reg, 2, reason="after a crash", expected_from=1)
    print(f"promotion after a killed holder took {time.perf_counter() - started:.2f} s")
    assert versions.aliases(reg)["champion"] == 2


@pytest.mark.e2e
def test_two_promotions_at_once_against_a_prefect_server(prefect_server, tmp_path):
    """The global concurrency limit alone keeps the two slow moves apart (the file lock is
    held only inside `promote`, after each contender has already waited its turn)."""
    from prefect.client.orchestration import get_client

    from registry.locks import limit_name

    reg = _registry(tmp_path, "m-race-server", 3)
    outs = race(reg, 2, 3, expected=1, server_lock=True)
    _check_one_winner(reg, outs, 1)
    first, second = sorted(outs, key=lambda o: o["entered"])
    assert second["entered"] >= first["entered"] + HOLD_S  # never both inside
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(limit_name(reg.model_name))
    assert (limit.limit, limit.active_slots) == (1, 0)


@pytest.mark.e2e
def test_a_killed_holder_of_the_server_lock_blocks_only_until_its_lease_expires(
        prefect_server, tmp_path):
    from registry.locks import LEASE_SECONDS, promotion_lock

    reg = _registry(tmp_path, "m-race-lease", 2)
    proc = _child(f"holder_killed_while_locked({str(reg.lock_path)!r}, "
                  f"{prefect_server.api_url!r}, {reg.model_name!r})")
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL and "holding" in stdout
    started = time.perf_counter()
    with promotion_lock(reg.model_name, wait_seconds=LEASE_SECONDS * 4):
        waited = time.perf_counter() - started
        promote.promote(reg, 2, reason="after the lease expired", expected_from=1)
    print(f"waited {waited:.0f} s for the dead holder's lease ({LEASE_SECONDS:.0f} s)")
    assert versions.aliases(reg)["champion"] == 2


def _rollback_cli(root: Path, hold: Path | None, by: str = "pytest") -> subprocess.Popen:
    """`greenlight rollback` in its own process; with `hold`, held (test-only hook) after it
    has read the champion and before it moves, until the test deletes its hold file."""
    from core.faults import HOLD_ENV, HOLD_FILE_ENV

    env = {**os.environ, "GREENLIGHT_HOME": str(root)}
    if hold is not None:
        env.update({HOLD_ENV: "rollback", HOLD_FILE_ENV: str(hold)})
    return subprocess.Popen([sys.executable, "-m", "cli.main", "rollback", "--dataset",
                             "synthetic", "--by", by], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.e2e
def test_two_rollbacks_at_once_move_the_champion_once(two_versions_home):
    """Both commands read v2 as the champion before either moves: one rolls back to v1, the
    other is refused in one line (already rolled back, by whom, when) instead of moving."""
    from tests.approval_helpers import registry

    reg = registry(two_versions_home)
    holds = [two_versions_home / f"hold-rollback-{i}" for i in range(2)]
    procs = [_rollback_cli(two_versions_home, hold) for hold in holds]
    deadline = time.monotonic() + 300
    while not all(h.exists() for h in holds):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline, "the rollbacks never read the champion"
        time.sleep(0.1)
    for hold in holds:
        hold.unlink()
    done = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert sorted(code for code, _, _ in done) == [0, 2], done
    (_, _, refused), = [d for d in done if d[0] != 0]
    at = promote.records(reg)[-1]["at"]
    assert refused.strip().splitlines() == [
        f"error: champion already rolled back from v2 to v1 by pytest at {at}; not rolling "
        "back again (see `greenlight history`)"], refused
    assert versions.aliases(reg) == {"champion": 1, "previous": 2}
    assert [(r["action"], r["from"], r["to"]) for r in promote.records(reg)][-1:] == [
        ("rollback", 2, 1)]
    assert [r["action"] for r in promote.records(reg)].count("rollback") == 1


PAIRS = 10


@pytest.mark.e2e
@pytest.mark.timeout(3600)  # 20 processes that each import MLflow: ~2 min a pair at load 8
def test_ten_pairs_of_rollbacks_started_together_each_move_once(two_versions_home):
    """Issue 33: two real `greenlight rollback` started in the same instant, without
    --from, ten times (v2 promoted again between pairs). Each pair moves the champion once,
    v2 -> v1, never back to v2; the other command says who rolled back and when (exit 2)."""
    from tests.approval_helpers import registry

    reg = registry(two_versions_home)
    for pair in range(PAIRS):
        if pair:
            promote.promote(reg, 2, reason=f"pair {pair}: v2 again", expected_from=1)
        procs = [_rollback_cli(two_versions_home, None, by=who) for who in ("opA", "opB")]
        done = [(p.wait(timeout=600), *p.communicate()) for p in procs]
        for who, (code, out, err) in zip(("opA", "opB"), done, strict=True):
            print(f"pair {pair + 1} {who}: exit {code}: {(out + err).strip()}")
        assert sorted(code for code, _, _ in done) == [0, 2], done
        (_, _, refused), = [d for d in done if d[0] == 2]
        assert len(refused.strip().splitlines()) == 1, refused
        assert "champion already rolled back from v2 to v1 by op" in refused
        assert versions.aliases(reg)["champion"] == 1
        moves = [(r["action"], r["from"], r["to"]) for r in promote.records(reg)
                 if "to" in r]
        assert moves[-1] == ("rollback", 2, 1) and moves[-2][2] == 2, moves
    assert [r["action"] for r in promote.records(reg)].count("rollback") == PAIRS


FORCED_CYCLE = """
import json, sys
from flows.cycle import cycle
from flows.params import Training
summary = cycle(dataset="synthetic", policy="auto", force_retrain=True,
                training=Training(min_delta=-1.0), home=sys.argv[1])
print("SUMMARY " + json.dumps(summary, default=str))
"""


@pytest.mark.e2e
def test_a_refused_promotion_is_one_line_and_never_retried(two_versions_home):
    """A rollback lands between gate and promote (the cycle is held just before promote):
    the promotion is refused, once, as a decision: one warning line, no traceback, no
    retry, and the refusal is in the summary and the batch's record."""
    from core.faults import HOLD_ENV, HOLD_FILE_ENV
    from tasks.data import manifest
    from tasks.data.home import Home
    from tests.approval_helpers import land, registry

    root, reg = two_versions_home, registry(two_versions_home)
    land(root, 16)
    for landed in Home(root).landing.iterdir():
        os.utime(landed, (1_700_000_000, 1_700_000_000))  # long settled
    hold = root / "hold-promote"
    proc = subprocess.Popen([sys.executable, "-c", FORCED_CYCLE, str(root)], cwd=REPO,
                            env={**os.environ, "GREENLIGHT_HOME": str(root),
                                 "PREFECT_LOGGING_LEVEL": "INFO", HOLD_ENV: "promote",
                                 HOLD_FILE_ENV: str(hold)},
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    while not hold.exists():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the cycle never reached promote"
        time.sleep(0.2)
    promote.rollback(reg, reason="an operator, meanwhile", expected_from=2)  # v2 -> v1
    hold.unlink()
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]
    summary = json.loads(output.split("SUMMARY ", 1)[1].splitlines()[0])
    assert summary["promotion_refused"].startswith("champion moved meanwhile (expected v2, "
                                                   "found v1)"), summary
    assert "promoted_version" not in summary
    assert "Traceback" not in output, output[-3000:]
    assert not re.findall(r"Retry \d/\d will start", output), output[-3000:]
    assert len([line for line in output.splitlines()
                if "champion moved meanwhile" in line and "SUMMARY" not in line]) == 1, output
    assert versions.aliases(reg) == {"champion": 1, "previous": 2}
    (batch,) = [b for b in manifest.load(Home(root).manifest).values()
                if b.get("registered_version") == summary["registered_version"]]
    assert batch["promotion_refused"] == summary["promotion_refused"]


@pytest.mark.e2e
def test_a_canary_completion_waits_for_the_promotion_slot_a_cycle_holds(prefect_server,
                                                                        tmp_path):
    """The canary's last move takes the same Prefect slot as a cycle's promotion: while a
    cycle on another machine holds it and moves @champion, the completion waits, then sees
    the champion moved and promotes nothing (without the slot it would have promoted its
    challenger first, and the cycle's move would have been refused)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from registry.locks import limit_name
    from serving import canary

    reg = _registry(tmp_path, "m-race-canary", 3)
    promote.set_alias(reg, "challenger", 2)
    began = versions.aliases(reg)
    go = tmp_path / "go"
    args = f"{reg.tracking_uri!r}, {reg.model_name!r}, {str(reg.state_dir)!r}"
    cycle = _child(f"contender({args}, 3, 1, {str(go)!r}, True)")
    assert cycle.stdout.readline().strip() == "ready", cycle.communicate()[1][-2000:]
    go.touch()
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:  # the cycle holds the slot
        while time.monotonic() < deadline:
            try:  # the cycle creates the limit on its first use
                limit = client.read_global_concurrency_limit_by_name(limit_name(reg.model_name))
            except ObjectNotFound:
                limit = None
            if limit is not None and limit.active_slots == 1:
                break
            time.sleep(0.02)
    state = canary.complete(tmp_path, reg, began, [{"fraction": 1.0, "ks": 0.1}], by="test")
    done = time.time()
    stdout, stderr = cycle.communicate(timeout=120)
    moved = json.loads(stdout.strip().splitlines()[-1])
    assert "record" in moved, stderr[-2000:]
    assert done >= moved["left"]  # the completion went in after the cycle's move
    assert state["fraction"] == 0.0 and "not promoted" in state["reason"]
    assert versions.aliases(reg) == {"champion": 3, "previous": 1, "challenger": 2}
    assert [r.get("action") for r in promote.records(reg)] == ["promote", "promote"]


def test_a_rollback_on_a_shared_home_takes_the_server_slot_and_exits_quietly(
        prefect_server, tmp_path):
    """Workers on other machines share no file lock: on an object-store home the rollback
    command takes the model's promotion slot, as a cycle does, releases it, and sends
    Prefect's slot events before it exits, so Prefect prints nothing of its own there
    ("Still processing items", found by the e2e race test)."""
    from prefect.client.orchestration import get_client

    from registry.locks import limit_name

    reg = _registry(tmp_path, "m-shared-rollback", 2)
    promote.promote(reg, 2, reason="second", expected_from=1)
    args = f"{reg.tracking_uri!r}, {reg.model_name!r}, {str(reg.state_dir)!r}"
    proc = _child(f"rollback_on_a_shared_home({args})",
                  env={"PREFECT_API_URL": prefect_server.api_url,
                       "PREFECT_LOGGING_LEVEL": "INFO"})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "Still processing" not in out + err, (out + err)[-3000:]
    assert versions.aliases(reg) == {"champion": 1, "previous": 2}
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(limit_name(reg.model_name))
    assert (limit.limit, limit.active_slots) == (1, 0)
