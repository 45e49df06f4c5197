"""A cycle with nothing to do is answered from the files alone, and never hides work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tasks.data import idle, manifest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "mlflow", "prefect", "evidently", "great_expectations", "lightgbm",
         "sklearn")


def _cli(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess:
    """The command in a fresh process; it prints which heavy libraries it imported."""
    probe = ("import sys\nfrom cli import main as cli\nsys.argv = ['greenlight', *sys.argv[1:]]\n"
             "try:\n    cli.app()\nexcept SystemExit as e:\n    code = e.code\nelse:\n"
             "    code = 0\n"
             f"print('IMPORTED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
             "sys.exit(code or 0)\n")
    full = {**os.environ, "GREENLIGHT_HOME": str(home), **env}
    full.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-c", probe, *args], cwd=REPO, env=full,
                          capture_output=True, text=True, timeout=300)


def test_an_empty_run_says_so_in_one_line_and_imports_nothing_heavy(home):
    done = _cli(["run"], home.root)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("synthetic: nothing new in ") and str(home.landing) in lines[0]
    assert lines[-1] == "IMPORTED []"
    assert done.stderr == ""


def test_an_unknown_dataset_is_not_taken_for_an_idle_one(home):
    assert idle.nothing_new(home, "no_such_dataset") is None


def _landed(home, name: str = "2026-W30.csv") -> Path:
    path = home.landing / name
    path.write_text("a,b\n1,2\n")
    return path


def test_each_kind_of_new_input_means_work(home):
    assert idle.nothing_new(home, "synthetic")
    # A landed file, even one still being written under a temp name, is work once visible.
    _landed(home, ".partial.csv")
    assert idle.nothing_new(home, "synthetic")  # hidden: a writer's temp name
    landed = _landed(home)
    assert idle.nothing_new(home, "synthetic") is None
    landed.unlink()
    # A batch accepted by a cycle that died before deciding on it.
    manifest.append(home.manifest, "b1", status="accepted", file="2026-W30.csv", rows=1)
    assert idle.nothing_new(home, "synthetic") is None
    manifest.append(home.manifest, "b1", decision="no action")
    assert idle.nothing_new(home, "synthetic")


def test_new_labels_are_work_until_a_cycle_has_seen_them(home):
    home.labels.mkdir()
    (home.labels / "labels-1.csv").write_text("t,converted\n2026-01-01,1\n")
    assert idle.nothing_new(home, "synthetic") is None  # never seen by a cycle
    idle.remember_labels(home, "elec2", idle.labels_fingerprint(home))
    assert idle.nothing_new(home, "synthetic") is None  # another dataset's cycle saw them
    idle.remember_labels(home, "synthetic", idle.labels_fingerprint(home))
    assert idle.nothing_new(home, "synthetic")
    (home.labels / "labels-2.csv").write_text("t,converted\n2026-01-02,0\n")
    assert idle.nothing_new(home, "synthetic") is None
    idle.remember_labels(home, "synthetic", idle.labels_fingerprint(home))
    (home.labels / "labels-2.csv").write_text("t,converted\n2026-01-02,1\n")  # a correction
    os.utime(home.labels / "labels-2.csv", ns=(time.time_ns() + 10**9,) * 2)
    assert idle.nothing_new(home, "synthetic") is None


def test_predictions_served_after_the_last_cycle_are_work(home):
    log = home.root / "predictions" / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
    log.parent.mkdir()
    log.write_text(json.dumps({"request_id": "r", "index": 0}) + "\n")
    assert idle.nothing_new(home, "synthetic") is None  # no cycle has read the log yet
    idle.mark_monitored(home, datetime.now(UTC) + timedelta(seconds=5))
    assert idle.nothing_new(home, "synthetic")
    idle.mark_monitored(home, datetime.now(UTC) - timedelta(minutes=5))
    assert idle.nothing_new(home, "synthetic") is None


def test_a_whole_cycle_records_the_labels_it_started_from(home):
    """The real flow: after a cycle has looked at the labels feed, an unchanged feed is no
    work; a file landing afterwards is."""
    from flows.cycle import cycle

    home.labels.mkdir()
    (home.labels / "labels-1.csv").write_text("t,converted\n2026-01-01,1\n")
    assert idle.nothing_new(home, "synthetic") is None
    cycle(dataset="synthetic", home=str(home.root))
    assert idle.nothing_new(home, "synthetic")
    (home.labels / "labels-2.csv").write_text("t,converted\n2026-01-02,0\n")
    assert idle.nothing_new(home, "synthetic") is None
