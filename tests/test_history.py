"""The champion's history: the promotion log and the registry check each other, moves made
outside greenlight are recorded, every version carries a card, and `greenlight history`
reads the log back (issue 33). Real MLflow SQLite stores, real commands."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core import jsonl
from registry import audit, cards, history, probation, promote, versions
from registry.store import Registry
from tests.test_registry import _model_version

REPO = Path(__file__).resolve().parents[1]


def _two_promoted(reg: Registry) -> None:
    for i, name in enumerate(["a", "b"]):
        _model_version(reg, name, seed=i)
    promote.promote(reg, 1, reason="bootstrap")
    promote.promote(reg, 2, reason="better", expected_from=1)


def test_a_deleted_store_is_refused_in_one_line_naming_what_is_missing(reg, fresh_mlflow,
                                                                       tmp_path):
    """`rm mlflow.db`: the same state dir's log names v1, v2 and a champion; an empty store
    in its place is refused, and the line says how to restore."""
    _two_promoted(reg)
    empty = Registry(fresh_mlflow(tmp_path / "new"), reg.model_name, reg.state_dir)
    with pytest.raises(audit.RegistryLost) as lost:
        audit.check(empty)
    line = str(lost.value)
    assert "\n" not in line
    assert "lacks v1, v2, @champion that the promotion log" in line
    assert "restore the state dir's MLflow store" in line and "Backup and restore" in line
    assert versions.all_versions(empty) == []  # nothing was created over it


def test_a_store_restored_from_an_older_copy_is_refused(reg, tmp_path):
    """A backup taken when v1 was champion, restored after v2 was promoted: v2 is missing."""
    _model_version(reg, "a", seed=0)
    promote.promote(reg, 1, reason="bootstrap")
    old = tmp_path / "backup"
    old.mkdir()
    shutil.copy2(reg.state_dir / "mlflow.db", old / "mlflow.db")
    _model_version(reg, "b", seed=1)
    promote.promote(reg, 2, reason="better", expected_from=1)
    restored = Registry(f"sqlite:///{old}/mlflow.db", reg.model_name, reg.state_dir)
    with pytest.raises(audit.RegistryLost, match=r"lacks v2 that the promotion log"):
        audit.check(restored)
    assert audit.check(reg) == []  # the store that holds everything passes


def _status(home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GREENLIGHT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "cli.main", "status", "--json"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_documented_backup_and_restore_brings_back_what_the_log_names(fresh_mlflow,
                                                                          tmp_path):
    """docs/reliability.md, Backup and restore: `cp -a` of the state dir; the store lost
    (`greenlight status` says so, exit 1); the whole state dir restored from the backup
    (`greenlight status` exit 0, the champion the log names). Each status is a new process,
    as a user's would be."""
    root = tmp_path / "gl"
    reg = Registry(fresh_mlflow(root), "greenlight-synthetic", root)
    _two_promoted(reg)
    backup = tmp_path / "backup"
    subprocess.run(["cp", "-a", str(root), str(backup)], check=True)
    (root / "mlflow.db").unlink()
    lost = _status(root)
    assert lost.returncode == 1, lost.stderr
    assert "lacks v1, v2, @champion" in lost.stderr.strip().splitlines()[-1]
    root.rename(tmp_path / "gl.broken")
    subprocess.run(["cp", "-a", str(backup), str(root)], check=True)
    restored = _status(root)
    assert restored.returncode == 0, restored.stderr
    state = json.loads(restored.stdout)
    assert (state["champion"], state["previous"], state["registry_lost"]) == (2, 1, None)


def test_an_alias_moved_by_hand_is_recorded_as_external_once(reg):
    """@champion set through the MLflow client: the next check writes it to the log as
    `external` (who: unknown, outside greenlight), once; a rollback then starts from it."""
    _two_promoted(reg)
    reg.client.set_registered_model_alias(reg.model_name, "champion", "1")
    found = audit.check(reg)
    assert [(r["action"], r["alias"], r["from"], r["to"]) for r in found] == [
        ("external", "champion", 2, 1)]
    assert "moved outside greenlight" in found[0]["reason"]
    assert audit.check(reg) == []  # recorded once
    last = promote.records(reg)[-1]
    assert (last["action"], last["from"], last["to"]) == ("external", 2, 1)
    assert history.rows(promote.records(reg))[-1]["kind"] == "external"
    reg.client.set_registered_model_alias(reg.model_name, "previous", "2")  # unchanged
    reg.client.delete_registered_model_alias(reg.model_name, "previous")
    moved = audit.check(reg)
    assert [(r["alias"], r["version"], r["was"]) for r in moved] == [("previous", None, 1)]


def test_serve_s_poll_records_a_move_made_outside_and_serves_it(reg, tmp_path):
    """The service follows @champion as before, and its poll now also writes the move to
    the log as external (once, however many polls see it)."""
    from serving.models import Router

    _two_promoted(reg)
    router = Router(reg, tmp_path)
    assert router.refresh().champion.version == 2
    reg.client.set_registered_model_alias(reg.model_name, "champion", "1")
    assert router.refresh().champion.version == 1
    router.refresh()
    found = [(r["action"], r["from"], r["to"]) for r in promote.records(reg)
             if r["action"] == "external"]
    assert found == [("external", 2, 1)]


def test_an_auto_rollback_racing_a_person_is_refused_with_who_and_when(reg):
    """A person rolled back first: probation's auto-rollback of the same champion is
    refused (returned, never retried) with the person's name, and walks nothing back."""
    _two_promoted(reg)
    done = promote.rollback(reg, reason="on call", by="dana", expected_from=2)
    refused = probation.try_auto_rollback(reg, 2, dataset="t", reason="worse", batches=["b"],
                                          figures={})
    assert refused == {"refused": f"champion already rolled back from v2 to v1 by dana at "
                                  f"{done['at']}; not rolling back again (see `greenlight "
                                  "history`)"}
    assert versions.aliases(reg)["champion"] == 1
    assert [r["action"] for r in promote.records(reg)].count("auto-rollback") == 0


def test_every_move_and_note_rewrites_the_card(reg):
    """The card is written at registration and follows the version's life: the approval,
    the promotion, the rollback."""
    _two_promoted(reg)
    promote.record_decision(reg, 2, outcome="approved", by="erin", reason="checked slices")
    promote.rollback(reg, reason="latency", by="frank", expected_from=2)
    card = reg.client.get_model_version(reg.model_name, "2").description
    assert "**Approval:** approved by erin" in card and "checked slices" in card
    assert "became champion (promotion, from v1)" in card
    assert "left the champion (rollback, to v1) by frank: latency" in card
    assert "classes 0, 1" in card  # the classes the model answers, from registration


def _land(path: Path, records: list[dict]) -> None:
    for record in records:
        jsonl.append(path, record)


LOG = [
    {"at": "2026-12-01T10:00:00+00:00", "model": "greenlight-synthetic", "action": "promote",
     "from": None, "to": 1, "previous": None, "by": "greenlight", "reason": "bootstrap: ok",
     "metrics": {"gate_challenger_accuracy": 0.91}, "batches": ["a1"]},
    {"at": "2026-12-02T10:00:00+00:00", "model": "greenlight-synthetic", "action": "approved",
     "version": 2, "by": "alice", "reason": "looks [bold]good[/]"},
    {"at": "2026-12-02T10:00:05+00:00", "model": "greenlight-synthetic", "action": "promote",
     "from": 1, "to": 2, "previous": 1, "by": "alice", "reason": "approved by alice",
     "metrics": {"gate_challenger_accuracy": 0.93}, "batches": ["a2", "a3"]},
    {"at": "2026-12-03T10:00:00+00:00", "model": "greenlight-other", "action": "promote",
     "from": None, "to": 1, "previous": None, "by": "greenlight", "reason": "not ours"},
    {"at": "2026-12-04T10:00:00+00:00", "model": "greenlight-synthetic",
     "action": "auto-rollback", "from": 2, "to": 1, "previous": 2, "by": "greenlight",
     "reason": "@previous is better", "metrics": {"gain": -0.03}, "batches": ["a4"]},
    {"at": "2026-12-05T10:00:00+00:00", "model": "greenlight-synthetic", "action": "external",
     "alias": "champion", "from": 1, "to": 2, "previous": None, "by": "unknown",
     "reason": "@champion found on v2", "metrics": {}, "batches": []},
]


def _history(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GREENLIGHT_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "cli.main", "history", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


def test_greenlight_history_reads_every_move_back_from_the_log(tmp_path):
    """`--json` gives every move of this model's @champion in order with its kind; `--csv`
    the same rows; `--since` filters; the table shows markup in reasons as written."""
    home = tmp_path / "gl"
    _land(home / "promotions.jsonl", LOG)
    done = _history(home, "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["kind"], r["from"], r["to"], r["by"]) for r in rows] == [
        ("bootstrap", None, 1, "greenlight"), ("approval", 1, 2, "alice"),
        ("auto-rollback", 2, 1, "greenlight"), ("external", 1, 2, "unknown")]
    assert [r["at"] for r in rows] == [LOG[i]["at"] for i in (0, 2, 4, 5)]
    assert rows[1]["batches"] == ["a2", "a3"] and rows[2]["metrics"] == {"gain": -0.03}
    assert rows[2]["evidence"] == "gain=-0.03, 1 batch(es)"
    got = list(csv.DictReader(io.StringIO(_history(home, "--csv").stdout)))
    assert [(r["kind"], r["to"]) for r in got] == [(r["kind"], str(r["to"])) for r in rows]
    since = json.loads(_history(home, "--json", "--since", "2026-12-04").stdout)
    assert [r["kind"] for r in since] == ["auto-rollback", "external"]
    table = _history(home)
    assert table.returncode == 0 and "4 move(s) of @champion" in table.stdout
    bad = _history(home, "--since", "last tuesday")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.e2e
def test_a_cycle_on_a_deleted_store_refuses_and_bootstraps_nothing(two_versions_home):
    """`rm mlflow.db` under a state dir whose log names v1 and v2: `greenlight run` with a
    new batch stops with the one line (exit 2) and registers no new v1; `greenlight
    status` says the same and exits 1."""
    from tasks.data import replay as sources
    from tasks.data.home import Home
    from tests.approval_helpers import registry

    (two_versions_home / "mlflow.db").unlink()
    home = Home.from_env(two_versions_home)
    os.utime(sources.write_batch(sources.synthetic_batch(16), home.landing), (1, 1))
    env = {**os.environ, "GREENLIGHT_HOME": str(two_versions_home)}
    ran = subprocess.run([sys.executable, "-m", "cli.main", "run", "--dataset", "synthetic"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    print(ran.stderr)  # the line, for the report (pytest -s)
    assert ran.returncode == 2, ran.stderr[-3000:]
    lines = [x for x in ran.stderr.strip().splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "lacks v1, v2, @champion that the promotion log" in lines[0]
    assert versions.all_versions(registry(two_versions_home)) == []
    told = subprocess.run([sys.executable, "-m", "cli.main", "status"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert told.returncode == 1 and "lacks v1, v2, @champion" in told.stderr, told.stderr


@pytest.mark.e2e
def test_the_card_of_a_version_from_the_loop_has_each_field(two_versions_home):
    """v2 of the real loop (retrained after the concept change, promoted over v1): its
    MLflow description is the card, with each field filled from the run and the log."""
    from tests.approval_helpers import registry

    reg = registry(two_versions_home)
    card = reg.client.get_model_version(reg.model_name, "2").description
    print(card)
    for field in ("**Why trained:** retrain on ", "- **Data:** ",
                  "- **Recipe:** ", "- **Gate:** clear, gain +", "(95% interval +",
                  "over the champion it was judged against (v1)", "- **Slice guard:** ",
                  "- **Approval:** not asked (policy auto)",
                  "became champion (", "from v1) by ", "rows (20",
                  "- **Probation:** since ", "batch(es) judged so far", "- **Limits:** ",
                  "classes 0, 1"):
        assert field in card, field
    assert "n/a" not in card.split("**Data:**")[1].split("\n")[0]
    tags = versions.by_version(reg, 2).tags
    assert "greenlight.recipe_backtest" not in tags and "greenlight.gate_ci" not in tags
    assert all(len(v) <= 100 for k, v in tags.items() if k != "greenlight.ensemble"
               and k != "greenlight.batch_ids"), tags
    first = cards.render(reg, 1)
    assert "became champion (bootstrap" in first and "to v2) by " in first
    assert "- **Probation:** ended when it left the champion (" in first


def test_history_imports_nothing_heavy(tmp_path):
    """The log is the history: `greenlight history` never loads MLflow or the cycle."""
    from tests.test_idle import _cli

    home = tmp_path / "gl"
    _land(home / "promotions.jsonl", LOG)
    done = _cli(["history", "--json"], home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED []"
