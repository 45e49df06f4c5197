"""Approval under policy manual/partial, against a real Prefect server on loopback.

Each test starts a real cycle that pauses, answers it the way a user would (CLI, REST),
and asserts the registry state afterwards."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from registry import promote, versions
from tests.approval_helpers import (
    cycle_artifact,
    env_for,
    land,
    latest_cycle_run,
    paused_runs,
    registry,
    run_state,
    start_cycle,
    state_history,
    wait_paused,
)
from tests.state_helpers import copy_state

E2E = pytest.mark.e2e


@pytest.fixture(scope="module")
def home(prefect_server, champion_state, tmp_path_factory):
    """A state dir with a champion (v1), bootstrapped by a real cycle on the server: the
    module's own copy of the one built once for the run (tests/conftest.py)."""
    root = copy_state(champion_state, tmp_path_factory.mktemp("approval") / "gl")
    assert versions.aliases(registry(root)) == {"champion": 1}
    return root


def _approve_cli(api_url, home, run_id, *flags):
    return subprocess.run([sys.executable, "-m", "cli.main", "approve", run_id, *flags],
                          env=env_for(api_url, home), capture_output=True, text=True,
                          timeout=120)


@E2E
def test_approve_from_the_cli_promotes_and_records_the_approver(prefect_server, home):
    api = prefect_server.api_url
    land(home, 1)
    proc = start_cycle(api, home, "manual")
    run_id = wait_paused(api, proc)
    before = versions.aliases(registry(home))["champion"]
    done = _approve_cli(api, home, run_id, "--approve", "--reason", "looks good", "--by", "alice")
    assert done.returncode == 0, done.stderr
    assert proc.wait(timeout=120) == 0, proc.stdout.read()
    reg = registry(home)
    after = versions.aliases(reg)
    assert after["previous"] == before and after["champion"] != before
    tags = versions.by_alias(reg, "champion").tags
    assert (tags["greenlight.approval"], tags["greenlight.approval_by"],
            tags["greenlight.approval_reason"]) == ("approved", "alice", "looks good")
    last = promote.records(reg)[-1]
    assert (last["action"], last["to"], last["by"]) == ("promote", after["champion"], "alice")
    assert "looks good" in last["reason"]
    assert run_state(api, run_id) == "COMPLETED"


@E2E
def test_reject_tags_the_version_and_leaves_the_champion(prefect_server, home):
    api = prefect_server.api_url
    land(home, 2)
    proc = start_cycle(api, home, "manual")
    run_id = wait_paused(api, proc)
    reg = registry(home)
    before = versions.aliases(reg)
    done = _approve_cli(api, home, run_id, "--reject", "--reason", "too risky", "--by", "bob")
    assert done.returncode == 0, done.stderr
    assert proc.wait(timeout=120) == 0
    assert versions.aliases(reg) == before
    newest = versions.all_versions(reg)[-1]
    assert newest.tags["greenlight.approval"] == "rejected"
    assert newest.tags["greenlight.approval_reason"] == "too risky"


@E2E
def test_timeout_is_a_recorded_rejection_and_a_clean_end(prefect_server, home):
    """The run ends Completed in Prefect (not only exit 0), and its artifact says why."""
    api = prefect_server.api_url
    land(home, 3)
    reg = registry(home)
    before = versions.aliases(reg)
    proc = start_cycle(api, home, "manual", timeout_s=3)
    assert proc.wait(timeout=180) == 0, proc.stdout.read()
    run_id = latest_cycle_run(api)
    assert versions.aliases(reg) == before
    assert versions.all_versions(reg)[-1].tags["greenlight.approval"] == "timed out"
    assert promote.records(reg)[-1]["action"] == "timed out"
    history = state_history(api, run_id)
    assert history[-1] == "COMPLETED" and "FAILED" not in history, history
    assert "- approval: **timed out: no answer within 3 s**" in cycle_artifact(api, run_id)


@E2E
def test_invalid_input_is_refused_and_the_run_keeps_waiting(prefect_server, home):
    api = prefect_server.api_url
    land(home, 4)
    proc = start_cycle(api, home, "manual")
    run_id = wait_paused(api, proc)
    for bad in ({"approve": "maybe", "approver": "eve"}, {"reason": "no decision"},
                {"approve": True, "approver": ""}):
        answer = httpx.post(f"{api}/flow_runs/{run_id}/resume", json={"run_input": bad}).json()
        assert answer["status"] == "REJECT", (bad, answer)  # HTTP 200, status REJECT
    assert run_state(api, run_id) == "PAUSED" and paused_runs(api)
    cli = _approve_cli(api, home, run_id, "--reject", "--by", "eve")  # clean up: a real answer
    assert cli.returncode == 0 and proc.wait(timeout=120) == 0


def test_manual_needs_a_server(tmp_path):
    env = {k: v for k, v in env_for("", tmp_path).items() if k != "PREFECT_API_URL"}
    done = subprocess.run([sys.executable, "-m", "cli.main", "run", "--policy", "manual"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2
    assert "needs a Prefect server" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def partial_home(prefect_server, champion_state, tmp_path_factory):
    """Its own champion (v1 on batch 0, a copy of the one built once for the run), so the
    gate numbers below do not depend on the other tests. The stream is seeded, so the
    gate's numbers on batches 3 and 5 are fixed; they are small and unproven, hence the
    min_delta values used."""
    return copy_state(champion_state, tmp_path_factory.mktemp("partial") / "gl")


@E2E
def test_partial_asks_a_person_when_the_gate_is_marginal(prefect_server, partial_home):
    """With refresh_on "never", an unproven gain is marginal (on a stale champion it could be
    a refresh, which `partial` asks about too: tests/test_decide.py)."""
    api = prefect_server.api_url
    land(partial_home, 3)
    proc = start_cycle(api, partial_home, "partial", min_delta=0.0, refresh_on="never")
    run_id = wait_paused(api, proc)
    reg = registry(partial_home)
    newest = versions.all_versions(reg)[-1]
    assert newest.tags["greenlight.gate"] == "marginal"
    done = _approve_cli(api, partial_home, run_id, "--reject", "--reason", "wait", "--by", "dan")
    assert done.returncode == 0, done.stderr
    assert proc.wait(timeout=120) == 0
    assert versions.aliases(reg) == {"champion": 1}


@pytest.fixture(scope="module")
def manual_home(prefect_server, champion_state, tmp_path_factory):
    """Its own champion (v1 on batch 0), so batch 3's gate is marginal as in partial_home."""
    return copy_state(champion_state, tmp_path_factory.mktemp("manual") / "gl")


@E2E
def test_manual_asks_about_a_marginal_gate_and_records_who_said_no(prefect_server, manual_home):
    """Policy manual put no marginal or refresh verdict to anyone: nothing was registered,
    nothing said why. Now it asks, and the cycle's artifact says what the policy did and who
    answered what."""
    api = prefect_server.api_url
    land(manual_home, 3)
    proc = start_cycle(api, manual_home, "manual", min_delta=0.0, refresh_on="never")
    run_id = wait_paused(api, proc)
    reg = registry(manual_home)
    assert versions.all_versions(reg)[-1].tags["greenlight.gate"] == "marginal"
    done = _approve_cli(api, manual_home, run_id, "--reject", "--reason", "wait", "--by", "dan")
    assert done.returncode == 0, done.stderr
    assert proc.wait(timeout=120) == 0, proc.stdout.read()
    assert versions.aliases(reg) == {"champion": 1}
    artifact = cycle_artifact(api, run_id)
    assert "- policy manual, gate marginal: put to the approver" in artifact
    assert "- approval: **rejected by dan: wait**" in artifact


@E2E
def test_partial_promotes_by_itself_when_the_gate_is_clear(prefect_server, partial_home):
    api = prefect_server.api_url
    land(partial_home, 5)
    proc = start_cycle(api, partial_home, "partial", min_delta=-0.05)
    assert proc.wait(timeout=300) == 0, proc.stdout.read()
    assert not paused_runs(api)
    reg = registry(partial_home)
    newest = versions.all_versions(reg)[-1]
    assert newest.tags["greenlight.gate"] == "clear"
    assert versions.aliases(reg) == {"champion": newest.version, "previous": 1}
    assert promote.records(reg)[-1]["to"] == newest.version
