"""`greenlight run` says in one line what the cycle decided (cli/views.py `cycle_line`);
the JSON summary goes to <state dir>/runs/, or alone on stdout with --json; Prefect's run
lines show only with -v.

The line builder is tested on the summaries of real cycles on copies of the session's
bootstrapped champion (v1, synthetic week 0); the command in its own process, as a user or
cron runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cli.views import cycle_line
from flows.cycle import cycle
from flows.params import Training
from tasks.data.home import Home
from tasks.data.replay import Batch, synthetic_batch, write_batch
from tests.approval_helpers import land
from tests.test_idle import REPO

CONCEPT_CHANGE = 15  # synthetic week 15 (file 2026-W17): the world changed, drift and decay


def _settle(home: Path) -> None:
    """Landed files a minute old, so none is taken for one still being written."""
    old = time.time() - 60
    for path in Home(home).landing.iterdir():
        os.utime(path, (old, old))


def _cycle(home: Path, **kwargs: Any) -> dict[str, Any]:
    _settle(home)
    return cycle(dataset="synthetic", policy=kwargs.pop("policy", "auto"), home=str(home),
                 **kwargs)


def _land_bad(home: Path, name: str = "broken.csv") -> None:
    (Home(home).landing / name).write_text("a,b\n1,2\n")


# --- the line, on real summaries --------------------------------------------------------


def test_nothing_new(champion_home):
    assert cycle_line(_cycle(champion_home), "synthetic") == "synthetic: nothing new"


def test_the_first_model_names_its_batch(home):
    land(home.root, 0)
    assert cycle_line(_cycle(home.root), "synthetic") == (
        "2026-W02: no champion yet -> bootstrap -> first model -> v1 @champion")


def test_a_quiet_batch_is_no_action_with_its_drift_and_decay(champion_home):
    land(champion_home, 1)
    line = cycle_line(_cycle(champion_home), "synthetic")
    assert line.startswith("2026-W03: drift 0.") and ", decay " in line, line
    assert line.endswith(" -> no action"), line


def test_a_retrain_that_clears_the_gate_names_the_new_champion(champion_home):
    land(champion_home, CONCEPT_CHANGE)
    summary = _cycle(champion_home, force_retrain=True, training=Training(min_delta=-1.0))
    line = cycle_line(summary, "synthetic")
    assert line.startswith("2026-W17: drift ") and "forced -> retrain -> gate " in line, line
    assert line.endswith(" -> v2 @champion"), line
    assert f"{summary['gate']['gain']:+.1%}" in line and "(CI " in line, line
    # the same summary, had the policy asked a person: each answer in words
    asked = {**summary, "route": "ask", "promoted_version": None}
    assert cycle_line({**asked, "approval": "approved", "approval_by": "ann"}, "synthetic"
                      ).endswith("-> v2 put to the approver -> approved by ann -> v2 @champion")
    assert cycle_line({**asked, "approval": "rejected", "approval_by": "eve"}, "synthetic"
                      ).endswith("-> v2 put to the approver -> rejected by eve, v1 stays "
                                 "@champion")
    assert cycle_line({**asked, "approval": "timed out", "approval_by": None}, "synthetic"
                      ).endswith("-> approval timed out, v1 stays @champion")
    moved = {**asked, "approval": "approved, not promoted (champion moved)",
             "approval_by": "ann", "promotion_refused": "the champion is v3, not v1"}
    assert cycle_line(moved, "synthetic").endswith(
        "-> approved by ann, not promoted: the champion is v3, not v1")
    refused = {**summary, "promoted_version": None, "promotion_refused": "champion moved"}
    assert cycle_line(refused, "synthetic").endswith(
        "-> v2 registered, not promoted: champion moved")


def test_a_failed_gate_keeps_the_champion(champion_home):
    land(champion_home, CONCEPT_CHANGE)
    summary = _cycle(champion_home, force_retrain=True,
                     training=Training(min_delta=1.0, refresh_on="never"))
    assert summary["verdict"] == "fail"
    line = cycle_line(summary, "synthetic")
    assert "-> retrain -> gate fail " in line, line
    assert line.endswith(" -> not promoted, v1 stays @champion"), line


def test_not_enough_evidence_is_said_in_words(champion_home):
    land(champion_home, CONCEPT_CHANGE)
    summary = _cycle(champion_home, force_retrain=True,
                     training=Training(gate_fraction=0.002, refresh_on="never"))
    # a window too small to prove a gain, and a champion not stale: it stays, said so (a
    # stale one would be refreshed: test_a_small_window_refresh_and_a_history_refusal_say_why)
    assert summary["verdict"] == "insufficient", summary["gate"]
    line = cycle_line(summary, "synthetic")
    assert "-> retrain -> gate: not enough evidence" in line, line
    assert line.endswith(" -> not promoted, v1 stays @champion"), line


def test_policy_monitor_says_it_did_not_retrain(champion_home):
    land(champion_home, CONCEPT_CHANGE)
    line = cycle_line(_cycle(champion_home, policy="monitor", force_retrain=True), "synthetic")
    assert line.endswith(" -> retrain -> not retrained (policy monitor)"), line


def test_a_quarantined_file_says_why(champion_home):
    _land_bad(champion_home)
    line = cycle_line(_cycle(champion_home), "synthetic")
    assert line.startswith("synthetic: nothing new to decide on; quarantined broken.csv"), line
    assert "\n" not in line


def test_a_held_batch_says_why_and_how_to_release_it(champion_home):
    frame = synthetic_batch(1).frame.assign(converted=1)
    write_batch(Batch("week-01-all-1", frame), Home(champion_home).landing)
    line = cycle_line(_cycle(champion_home), "synthetic")
    assert line.startswith("synthetic: nothing new to decide on; held batch "), line
    assert "labels implausible" in line and "greenlight release" in line, line


def test_several_batches_are_one_line_naming_them(champion_home):
    for index in (1, 2):
        land(champion_home, index)
    _land_bad(champion_home)
    line = cycle_line(_cycle(champion_home), "synthetic")
    assert line.startswith("2026-W03, 2026-W04: drift "), line
    assert " -> no action; quarantined broken.csv" in line and "\n" not in line, line


# --- the command, in its own process ------------------------------------------------------


def _run(home: Path, *args: str) -> subprocess.CompletedProcess:
    """`greenlight run` as a user starts it: Prefect at its default log level (INFO)."""
    env = {**os.environ, "GREENLIGHT_HOME": str(home)}
    env.pop("PREFECT_LOGGING_LEVEL", None)
    _settle(home)
    return subprocess.run([sys.executable, "-m", "cli.main", "run", "--no-harvest", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def _summaries(home: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((home / "runs").glob("*-synthetic.json"))]


def test_the_command_prints_one_line_and_keeps_the_json(champion_home):
    land(champion_home, 1)
    done = _run(champion_home)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = done.stdout.splitlines()
    assert line.startswith("2026-W03: drift ") and line.endswith(" -> no action"), line
    for noise in ("Finished in state", "Beginning flow run", "Created task run"):
        assert noise not in done.stdout + done.stderr, done.stderr[-3000:]
    (summary,) = _summaries(champion_home)
    assert summary["decision"] == "no action" and len(summary["batches"]) == 1
    assert cycle_line(summary, "synthetic") == line

    # greenlight's own warnings still reach stderr; -v adds Prefect's run lines
    land(champion_home, 2)
    _land_bad(champion_home)
    done = _run(champion_home, "-v")
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = done.stdout.splitlines()
    assert line.startswith("2026-W04: ") and "no action; quarantined broken.csv" in line, line
    assert "quarantined broken.csv" in done.stderr
    assert "Finished in state Completed()" in done.stderr, done.stderr[-3000:]
    assert len(_summaries(champion_home)) == 2


def test_json_is_the_summary_alone_on_stdout(champion_home):
    land(champion_home, 1)
    _land_bad(champion_home)
    done = _run(champion_home, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["decision"] == "no action" and len(summary["quarantined"]) == 1
    assert _summaries(champion_home) == [summary]
    assert "quarantined broken.csv" in done.stderr  # the warning is still shown
    assert "Finished in state" not in done.stderr
    idle = _run(champion_home, "--json")  # nothing new: still JSON, from file names alone
    assert idle.returncode == 0 and idle.stderr == "", idle.stderr
    answer = json.loads(idle.stdout)
    assert answer["batches"] == [] and answer["nothing_new"].startswith("synthetic: nothing new")


@pytest.mark.parametrize("flag", ["--help"])
def test_help_says_where_the_json_goes(flag):
    done = subprocess.run([sys.executable, "-m", "cli.main", "run", flag], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0
    assert "runs/<UTC time>-<dataset>.json" in done.stdout and "--json" in done.stdout
    assert "--verbose" in done.stdout


def test_a_small_window_refresh_and_a_history_refusal_say_why(champion_home):
    """A refresh on a window too small to prove a gain, and a challenger refused on the
    champion's history although it gained on the newest rows, say so on the line: the
    figures alone (`gate fail +115.6%`) read as a contradiction. The reasons are the ones
    tasks/gate writes; the rest of the summary is a real cycle's."""
    land(champion_home, CONCEPT_CHANGE)
    summary = _cycle(champion_home, force_retrain=True,
                     training=Training(min_delta=1.0, refresh_on="never"))
    gate = summary["gate"]
    history = {**summary, "verdict": "fail", "gate": {
        **gate, "reason": "fail: history: the champion is proven better on the 900 labelled "
                          "rows it was judged on since it was trained"}}
    assert cycle_line(history, "synthetic").split(" -> ")[-2].endswith(
        ", but the champion is proven better on the rows it was judged on")
    small = {**summary, "verdict": "refresh", "gate": {
        **gate, "reason": "refresh: small window (50 labelled rows < 200), too few to prove a "
                          "gain: stale champion: ..."}}
    assert ", a small window (50 labelled rows < 200): too few to prove a gain" in cycle_line(
        small, "synthetic")
