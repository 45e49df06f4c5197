"""Alarms go out when they are raised, and every batch is named by its file (issue 32,
items 7 and 10), on the session's real Prefect server with greenlight's own automations and
a real webhook receiver (tests/test_notify.py's).

One real cycle under `--policy manual`: the champion v1 (synthetic week 0) meets week 15
(covariate drift and the concept change), a challenger passes the gate and the run pauses
for a person. Before anyone answers, the drift and decay messages must have arrived, naming
the champion that was judged and the batch's file; the approval form names the file too."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry import versions
from tasks.data.home import Home
from tests.approval_helpers import (
    cycle_artifact,
    env_for,
    land,
    registry,
    run_state,
    start_cycle,
    wait_paused,
)
from tests.state_helpers import copy_state
from tests.test_notify import Receiver


@pytest.fixture(scope="module")
def paused(prefect_server, champion_state, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """What a person and the receiver saw while the approval waited, then after it."""
    from cli import notify

    api = prefect_server.api_url
    home = copy_state(champion_state, tmp_path_factory.mktemp("alarms") / "gl")
    got = Receiver()
    mp = pytest.MonkeyPatch()
    mp.setenv(notify.NOTIFY_URL_ENV, got.url)
    mp.delenv(notify.NOTIFY_BLOCK_ENV, raising=False)
    # Week 15's concept change costs v1 a few percent, under the 5% default: any decay
    # alarms here, so the run raises both events (the cycle reads its thresholds from env).
    mp.setenv("GREENLIGHT_THRESHOLDS__MAX_DECAY", "0")
    try:
        notify.set_up()
        land(home, 15)
        file = next(p.name for p in Home(home).landing.iterdir())
        proc = start_cycle(api, home, "manual", force=False, timeout_s=900)
        run_id = wait_paused(api, proc, timeout=300)
        # drift, decay and "waits for approval": all three while the run is paused
        while_paused = got.about("synthetic", 3)
        state_then = run_state(api, run_id)
        version = versions.all_versions(registry(home))[-1].version
        description = httpx.get(f"{api}/flow_runs/{run_id}/input/"
                                f"paused-approve-v{version}-description").json()
        done = subprocess.run([sys.executable, "-m", "cli.main", "approve", run_id, "--reject",
                               "--reason", "checking the alarms", "--by", "tester"],
                              env=env_for(api, home), capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert proc.wait(timeout=300) == 0, proc.stdout.read()
        yield {"file": file, "home": home, "messages": while_paused, "state": state_then,
               "description": description, "artifact": cycle_artifact(api, run_id),
               "batch_id": next(k for k, b in _manifest(home).items() if b.get("file") == file),
               "manifest": {k: {f: b.get(f) for f in ("file", "decay", "alarms", "reasons")}
                            for k, b in _manifest(home).items()}}
    finally:
        notify.remove()
        got.server.shutdown()
        mp.undo()


def _manifest(home: Path) -> dict[str, dict]:
    from tasks.data import manifest

    return manifest.load(Home(home).manifest)


@pytest.mark.e2e
def test_drift_and_decay_alarms_arrive_before_the_approval_is_answered(paused):
    """They used to be emitted after `retrain` returned: under manual policy, only once a
    person answered (or a day later, at the timeout), naming a champion already replaced."""
    assert paused["state"] == "PAUSED"  # nobody had answered yet
    subjects = [m["subject"] for m in paused["messages"]]
    assert any(s.startswith("greenlight: drift on synthetic") for s in subjects), subjects
    decay = [m for m in paused["messages"] if "decayed" in m["subject"]]
    assert len(decay) == 1, (subjects, paused["manifest"])
    assert decay[0]["subject"] == "greenlight: the champion of synthetic, v1, decayed"
    assert "The champion v1 fell on newly labelled rows" in decay[0]["body"]


@pytest.mark.e2e
def test_the_approval_form_the_notifications_and_the_artifact_name_the_file(paused):
    """One batch, one name: the file `status` shows, not the content hash; the id stays only
    where a path needs it."""
    file, batch_id = paused["file"], paused["batch_id"]
    assert paused["description"].count(f"**batch `{file}`**") == 1, paused["description"]
    assert batch_id not in paused["description"].split("### Links")[0]
    drift = next(m for m in paused["messages"] if "drift on" in m["subject"])
    assert drift["subject"] == f"greenlight: drift on synthetic in {file}"
    assert file in drift["body"] and batch_id not in drift["body"]
    assert all(batch_id not in m["subject"] + m["body"] for m in paused["messages"])
    artifact = paused["artifact"]
    assert f"| {file} |" in artifact and f"- {file}: " in artifact  # tables and reasons
    assert f"| {batch_id} |" not in artifact and f"- {batch_id}:" not in artifact


def test_reports_and_alarms_name_a_batch_by_its_file():
    """The fast half of item 10: the form's and the artifact's markdown, and the alarms'
    reasons, from the batch's file name; the id only when a batch has none."""
    from tasks.monitoring import alarms
    from tasks.publish.reports import approval_markdown, cycle_markdown

    batch = {"batch_id": "28a85ec3215d41ac", "file": "2026-W07.csv", "rows": 100,
             "drift_share": 0.5, "drifted_features": ["price"],
             "feature_scores": {"price": 0.3}, "feature_methods": {"price": "ks"}}
    raised = alarms.named([alarms.Alarm("data", "28a85ec3215d41ac", 0.5, 0.3,
                                        "28a85ec3215d41ac: data drift share 0.50 >= 0.3")],
                          {"28a85ec3215d41ac": "2026-W07.csv"})
    assert raised[0].reason == "2026-W07.csv: data drift share 0.50 >= 0.3"
    assert raised[0].batch_id == "28a85ec3215d41ac" and raised[0].label == "2026-W07.csv"
    form = approval_markdown("m", 2, "clear", "ok", [], [batch], {})
    md = cycle_markdown("synthetic", "retrain", [raised[0].reason], [batch], {}, {},
                        "sqlite://", alarms=[raised[0].to_dict()])
    for text in (form, md):
        assert "2026-W07.csv" in text and "28a85ec3215d41ac" not in text, text
    bare = {k: v for k, v in batch.items() if k != "file"}
    assert "**batch `28a85ec3215d41ac`**" in approval_markdown("m", 2, "clear", "ok", [],
                                                                [bare], {})
