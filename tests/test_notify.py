"""Notifications: greenlight's events reach a real HTTP receiver through Prefect's own
automations and notification block, on a real Prefect server. Nothing of ours sends HTTP."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ARRIVAL_TIMEOUT = 90.0


class Receiver:
    """A webhook receiver on loopback that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def about(self, dataset: str, n: int, timeout: float = ARRIVAL_TIMEOUT) -> list[dict]:
        """The messages about `dataset` once `n` have come (or the timeout passed), after a
        moment more so that a duplicate would have come too."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self._about(dataset)) < n:
            time.sleep(0.5)
        time.sleep(3.0)
        return self._about(dataset)

    def _about(self, dataset: str) -> list[dict]:
        return [b for b in self.bodies if dataset in b.get("subject", "") + b.get("body", "")]


@pytest.fixture
def receiver(prefect_server, monkeypatch) -> Iterator[Receiver]:
    from cli import notify

    got = Receiver()
    monkeypatch.setenv(notify.NOTIFY_URL_ENV, got.url)
    monkeypatch.delenv(notify.NOTIFY_BLOCK_ENV, raising=False)
    yield got
    notify.remove()
    got.server.shutdown()


def test_each_event_arrives_once_with_the_dataset_the_version_and_the_link(receiver):
    from cli import notify
    from core import events

    made = notify.set_up()
    assert notify.set_up() == made  # twice is still one automation of each kind
    assert len(made) == len(notify.NOTICES)
    dataset = f"notify-{uuid.uuid4().hex[:8]}"
    link = "http://127.0.0.1:4200/runs/flow-run/abc"
    events.emit(events.APPROVAL_EVENT, dataset, {"version": 7, "link": link})
    events.emit(events.ROLLBACK_EVENT, dataset, {"version": 6, "link": link,
                                                 "reason": "worse on batch W09"})
    got = receiver.about(dataset, 2)
    subjects = sorted(b["subject"] for b in got)
    assert subjects == [f"greenlight: {dataset} rolled back to v6",
                        f"greenlight: {dataset} v7 waits for approval"], got
    for body in got:
        assert link in body["body"] and f"dataset {dataset}" in body["body"]
    assert "worse on batch W09" in next(b["body"] for b in got if "rolled" in b["subject"])


def test_nothing_is_set_up_without_a_destination(monkeypatch):
    from cli import notify

    monkeypatch.delenv(notify.NOTIFY_URL_ENV, raising=False)
    monkeypatch.delenv(notify.NOTIFY_BLOCK_ENV, raising=False)
    assert notify.configured() is None


def test_prefect_deploy_sets_them_up_with_the_build_step_of_prefect_yaml(receiver, tmp_path):
    """`prefect deploy` runs prefect.yaml's build steps; the `notify` one creates them."""
    import asyncio
    from pathlib import Path

    import yaml
    from prefect.client.orchestration import get_client
    from prefect.deployments.steps import run_shell_script

    from cli import notify

    doc = yaml.safe_load((Path(__file__).parents[1] / "deployments" / "prefect.yaml")
                         .read_text())
    step = next(s["prefect.deployments.steps.run_shell_script"] for s in doc["build"]
                if s["prefect.deployments.steps.run_shell_script"].get("id") == "notify")
    notify.remove()
    out = asyncio.run(run_shell_script(script=step["script"], stream_output=False,
                                       env={"GREENLIGHT_HOME": str(tmp_path / "gl")}))
    assert "automations send to" in out["stdout"], out
    with get_client(sync_client=True) as client:
        names = {a.name for a in client.read_automations()}
    assert {notify.PREFIX + n.name for n in notify.NOTICES} <= names


@pytest.mark.e2e  # a real pause and a real command in a child process
def test_a_paused_approval_and_a_cli_rollback_tell_the_receiver(receiver, prefect_server,
                                                                two_versions_home):
    """The real paths raise the events: the cycle's approval step pausing on a version, and
    `greenlight rollback` against a server. Each message arrives once, with the link."""
    import os
    import subprocess
    import sys

    from cli import notify
    from tests.test_approval_form import _probe

    notify.set_up()
    state = _probe(str(two_versions_home), 2, return_state=True)  # pauses, then times out
    run_id = str(state.state_details.flow_run_id)
    env = {**os.environ, "PREFECT_API_URL": prefect_server.api_url,
           "GREENLIGHT_HOME": str(two_versions_home)}
    done = subprocess.run([sys.executable, "-m", "cli", "rollback", "--reason",
                           "checking the alert"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    got = receiver.about("synthetic", 2)
    waiting = [b for b in got if "waits for approval" in b["subject"]]
    rolled = [b for b in got if "rolled back to v1" in b["subject"]]
    assert len(waiting) == 1 and len(rolled) == 1, got
    assert waiting[0]["subject"] == "greenlight: synthetic v1 waits for approval"
    assert run_id in waiting[0]["body"]  # the link to the paused run in the Prefect UI
    assert "checking the alert" in rolled[0]["body"]
    # issue 32 item 8: a working link (the MLflow version), never the word None, and no
    # "Still processing items" from Prefect's event queue at exit
    assert "#/models/greenlight-synthetic/versions/1" in rolled[0]["body"], rolled
    assert "None" not in rolled[0]["body"], rolled
    assert "Still processing" not in done.stdout + done.stderr, done.stderr


def test_an_alias_moved_by_hand_is_told_with_its_link(receiver, fresh_mlflow, tmp_path):
    """@champion set through the MLflow client: the next check records it as `external`
    and the people are told, once, with the version's link (issue 33)."""
    from cli import notify
    from registry import audit, promote
    from registry.store import Registry
    from tests.test_registry import _model_version

    notify.set_up()
    dataset = f"notify-{uuid.uuid4().hex[:8]}"
    reg = Registry(fresh_mlflow(tmp_path / "gl"), f"greenlight-{dataset}", tmp_path / "gl")
    for i in range(2):
        _model_version(reg, f"set-{i}", seed=i)
    promote.promote(reg, 1, reason="bootstrap")
    promote.promote(reg, 2, reason="better", expected_from=1)
    reg.client.set_registered_model_alias(reg.model_name, "champion", "1")
    found = audit.check(reg)
    assert [(r["action"], r["from"], r["to"]) for r in found] == [("external", 2, 1)]
    got = receiver.about(dataset, 1)
    assert [b["subject"] for b in got] == [
        f"greenlight: {dataset} @champion moved to v1 outside greenlight"], got
    assert f"#/models/greenlight-{dataset}/versions/1" in got[0]["body"]
    assert "moved outside greenlight" in got[0]["body"] and "None" not in got[0]["body"]


def test_another_block_by_name_carries_them_and_a_bad_name_is_one_line(receiver, monkeypatch,
                                                                       tmp_path):
    """Slack, Teams or email are the same automations through another block, named in
    GREENLIGHT_NOTIFY_BLOCK; here a second webhook block stands in for one."""
    import os
    import subprocess
    import sys

    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from cli import notify
    from core import events

    CustomWebhookNotificationBlock(
        name="team", url=receiver.url,
        json_data={"subject": "team: {{subject}}", "body": "{{body}}"}).save(
        "team-hook", overwrite=True)
    monkeypatch.delenv(notify.NOTIFY_URL_ENV)
    monkeypatch.setenv(notify.NOTIFY_BLOCK_ENV, "custom-webhook/team-hook")
    notify.set_up()
    dataset = f"notify-{uuid.uuid4().hex[:8]}"
    events.emit(events.QUARANTINE_EVENT, dataset, {"file": "bad.csv", "reason": "no rows",
                                                    "version": None, "link": None})
    got = receiver.about(dataset, 1)
    assert [b["subject"] for b in got] == [
        f"team: greenlight: a batch of {dataset} was quarantined"], got
    env = {**os.environ, notify.NOTIFY_BLOCK_ENV: "custom-webhook/nobody",
           "GREENLIGHT_HOME": str(tmp_path / "gl")}
    done = subprocess.run([sys.executable, "-m", "cli", "notify"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
