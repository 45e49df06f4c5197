"""The approval form and its outcomes on the session's real Prefect server, without a whole
cycle: a small flow pauses through the cycle's own `_ask_and_promote` on a real registry (a
copy of the bootstrapped champion), and the test answers it over the Prefect REST API or
with `greenlight approve`, as a user would."""

from __future__ import annotations

import contextvars
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect import flow

from flows.policies import route, route_note
from flows.retrain import _ask_and_promote
from registry import versions
from tasks.publish.reports import approval_markdown, cycle_markdown
from tests.approval_helpers import registry, state_history

KEY = "approve-v1"  # the pause key _ask_and_promote gives version 1


_STARTED: dict[str, str] = {}  # probe name -> its flow run id, set before it pauses


@flow(name="greenlight-approval-probe")
def _probe(home: str, timeout_s: int, name: str = "") -> dict[str, Any]:
    """The cycle's approval step alone: pause on v1 of a real registry, then record."""
    from prefect.runtime import flow_run

    _STARTED[name] = flow_run.id
    outcome = _ask_and_promote(registry(Path(home)), 1, "Promote v1?", timeout_s, {})
    _while_paused(flow_run.id)
    return outcome


def _while_paused(run_id: str, polls: int = 240) -> None:
    """Wait while the server still shows the run Paused. A cycle spends seconds recording
    after its approval; meanwhile the server's pause-expiry service (every 5 s) fails a run
    whose pause timed out and is still Paused. Waiting here makes that order certain."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        for _ in range(polls):
            if not client.read_flow_run(run_id).state.is_paused():
                return
            time.sleep(0.5)


class _Paused:
    """The probe flow in a thread, paused on the server until the test answers it (or its
    pause times out, so a failed test never leaves it waiting)."""

    def __init__(self, api: str, home: Path, name: str, timeout_s: int = 240):
        self.api, self.state = api, None
        # The thread runs in a copy of this context: Prefect's settings (the session server's
        # PREFECT_API_URL) live in a context variable, which a bare thread would not see.
        self.thread = threading.Thread(target=contextvars.copy_context().run,
                                       args=(self._run, str(home), timeout_s, name), daemon=True)
        self.thread.start()
        self.run_id = self._wait_paused(name)

    def _run(self, home: str, timeout_s: int, name: str) -> None:
        self.state = _probe(home, timeout_s, name, return_state=True)

    def _wait_paused(self, name: str) -> str:
        while self.thread.is_alive():
            if name in _STARTED and self.state_type(_STARTED[name]) == "PAUSED":
                return _STARTED[name]
            time.sleep(0.5)
        raise AssertionError(f"the probe ended without pausing: {self.state}")

    def answer(self, run_input: dict[str, Any]) -> str:
        reply = httpx.post(f"{self.api}/flow_runs/{self.run_id}/resume",
                           json={"run_input": run_input}).json()
        return reply["status"]  # HTTP 200 either way: the status says ACCEPT or REJECT

    def state_type(self, run_id: str | None = None) -> str:
        run = httpx.get(f"{self.api}/flow_runs/{run_id or self.run_id}").json()
        return (run.get("state") or {}).get("type", "")

    def end(self) -> dict[str, Any]:
        self.thread.join(timeout=120)
        assert self.state is not None and self.state.is_completed(), self.state
        return self.state.result()


def _field(api: str, run_id: str, name: str) -> tuple[dict[str, Any], bool]:
    """A field of the form the UI renders (the schema saved with the pause), and whether the
    schema requires it."""
    schema = httpx.get(f"{api}/flow_runs/{run_id}/input/paused-{KEY}-schema").json()
    schema = schema if isinstance(schema, dict) else json.loads(schema)
    return schema["properties"].get(name, {}), name in schema.get("required", [])


def test_submit_without_a_choice_is_refused_and_never_a_rejection(prefect_server,
                                                                  champion_home):
    """16.2: an Approve toggle left off was sent as `approve: false` and rejected the model.
    The decision is now a required choice with no default, so Submit without it is refused."""
    api = prefect_server.api_url
    paused = _Paused(api, champion_home, "no-choice")
    decision, required = _field(api, paused.run_id, "decision")
    assert required and "default" not in decision, decision
    assert set(decision.get("enum", [])) == {"approve", "reject"}, decision
    assert not _field(api, paused.run_id, "approve")[0], "no toggle to leave off"
    for no_choice in ({"approve": False, "reason": "left the toggle off", "approver": "carol"},
                      {"reason": "chose nothing", "approver": "carol"},
                      {"decision": "maybe", "approver": "carol"},
                      {"decision": "approve", "reason": "nobody"},
                      {"decision": "approve", "approver": ""}):
        assert paused.answer(no_choice) == "REJECT", no_choice
    assert paused.state_type() == "PAUSED"
    assert versions.by_version(registry(champion_home), 1).tags.get("greenlight.approval") is None
    assert paused.answer({"decision": "reject", "reason": "too risky",
                          "approver": "carol"}) == "ACCEPT"
    assert paused.end() == {"approval": "rejected", "approval_by": "carol",
                            "approval_reason": "too risky"}
    assert versions.by_version(registry(champion_home), 1).tags["greenlight.approval_by"] == "carol"


def test_a_timed_out_approval_is_a_rejection_and_the_run_completes(prefect_server,
                                                                   champion_home):
    """16.4: Prefect's server fails a run whose pause timed out while it still shows Paused
    (its pause-expiry service), so the run went red. Here the timeout is a decision: the
    run is never Failed and ends Completed (its states read through the API)."""
    state = _probe(str(champion_home), 2, return_state=True)
    run_id = str(state.state_details.flow_run_id)
    history = state_history(prefect_server.api_url, run_id)
    assert history[-1] == "COMPLETED" and "FAILED" not in history, history
    assert "PAUSED" in history
    assert state.result() == {"approval": "timed out", "approval_by": None,
                              "approval_reason": "no answer within 2 s"}
    tags = versions.by_version(registry(champion_home), 1).tags
    assert (tags["greenlight.approval"], tags["greenlight.approval_by"]) == ("timed out", "")


def _approve_cli(api: str, home: Path, run_id: str, *flags: str,
                 approver: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GREENLIGHT_APPROVER"}
    env.update({"PREFECT_API_URL": api, "GREENLIGHT_HOME": str(home)})
    if approver is not None:
        env["GREENLIGHT_APPROVER"] = approver
    return subprocess.run([sys.executable, "-m", "cli.main", "approve", run_id, *flags],
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_cli_names_who_answers_or_refuses(prefect_server, champion_home):
    """16.7: without --by the login name (root) was recorded. Now --by or
    GREENLIGHT_APPROVER is required, and the answer is sent as the form's choice."""
    api = prefect_server.api_url
    paused = _Paused(api, champion_home, "cli")
    nobody = _approve_cli(api, champion_home, paused.run_id, "--reject")
    assert nobody.returncode == 2, nobody.stdout + nobody.stderr
    assert nobody.stderr.strip().splitlines() == [
        "error: --by: who answers? Pass --by NAME or set GREENLIGHT_APPROVER"]
    assert paused.state_type() == "PAUSED"
    named = _approve_cli(api, champion_home, paused.run_id, "--reject", "--reason", "not yet",
                         approver="dana")
    assert named.returncode == 0, named.stderr
    assert "rejected by dana" in named.stdout
    assert paused.end() == {"approval": "rejected", "approval_by": "dana",
                            "approval_reason": "not yet"}


@pytest.mark.parametrize("verdict", ["clear", "refresh", "marginal"])
def test_manual_asks_about_every_verdict_auto_or_partial_would_act_on(verdict):
    """16.5: manual dropped refresh and marginal verdicts without a word."""
    assert route("manual", verdict) == "ask"
    assert route_note("manual", verdict, "ask") == f"policy manual, gate {verdict}: put to " \
                                                    "the approver"


def test_a_challenger_that_goes_nowhere_says_why():
    assert route("shadow", "refresh") == "none"
    assert route_note("shadow", "refresh", "none") == (
        "policy shadow, gate refresh: not promoted: policy shadow acts only on a gate "
        "verdict of clear")
    assert route_note("manual", "fail", "none").endswith("not promoted: the gate did not pass")


def test_the_cycle_artifact_says_who_decided_and_what():
    """16.5, 16.7: the artifact carries the route and the approval's outcome and author."""
    gate = {"reason": "gain 0.004 unproven"}
    md = cycle_markdown("synthetic", "retrain", [], [], {
        "gate": gate, "registered_version": 2, "approval": "rejected", "approval_by": "bob",
        "approval_reason": "too risky",
        "route_note": "policy manual, gate marginal: put to the approver"}, {}, "sqlite://")
    assert "- policy manual, gate marginal: put to the approver" in md
    assert "- approval: **rejected by bob: too risky**" in md
    timed_out = cycle_markdown("synthetic", "retrain", [], [], {
        "gate": gate, "approval": "timed out", "approval_by": None,
        "approval_reason": "no answer within 3 s"}, {}, "sqlite://")
    assert "- approval: **timed out: no answer within 3 s**" in timed_out


def test_drift_tables_have_one_row_per_feature_not_a_list_per_cell():
    """16.10a: a cell listing every drifted feature was cut off in the form and artifact."""
    features = [f"feature_{i:02d}" for i in range(12)]
    batch = {"batch_id": "b1", "rows": 100, "drift_share": 0.5, "drifted_features": features[:6],
             "feature_scores": {f: 0.01 * i for i, f in enumerate(features)},
             "feature_methods": dict.fromkeys(features, "ks"), "adversarial_features": []}
    for md in (approval_markdown("m", 2, "clear", "ok", [], [batch], {}),
               cycle_markdown("synthetic", "retrain", [], [batch], {}, {}, "sqlite://")):
        assert ", ".join(features[:2]) not in md
        rows = [line for line in md.splitlines() if line.startswith("| feature_")]
        assert len(rows) == len(features)
        assert all(line.count("|") <= 7 for line in rows), rows
