"""`greenlight replay` lands batches into landing/, and says so when it can land none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _replay(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GREENLIGHT_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "cli.main", "replay", "--dataset", "synthetic",
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_a_start_past_the_end_lands_nothing_and_says_so_in_one_line(home):
    """The synthetic stream has 20 batches: --start 20 used to exit 0 in silence (21.10c)."""
    done = _replay(home.root, "--start", "20")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "--start 20: nothing to land" in lines[0] and "20 batches" in lines[0], lines[0]
    assert not any(home.landing.iterdir())


def test_a_count_past_the_end_lands_what_there_is_and_says_how_many(home):
    done = _replay(home.root, "--start", "18", "--count", "5")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in home.landing.iterdir()) == ["2026-W20.csv", "2026-W21.csv"]
    assert "landed 2 of the 5 batches asked for" in done.stdout, done.stdout


def _replay_bike(home: Path, *args: str) -> subprocess.CompletedProcess:
    from tests.conftest import shared_file

    data = shared_file("bike_sharing", "hour.csv")
    env = {**os.environ, "GREENLIGHT_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "cli.main", "replay", "--dataset",
                           "bike_sharing", "--data", str(data), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_replay_takes_any_cadence_and_row_counts(home):
    """Bike Sharing's hourly rows by quarter, then by 200 rows."""
    done = _replay_bike(home.root, "--freq", "Q", "--count", "2")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in home.landing.iterdir()) == ["2011-Q1.csv", "2011-Q2.csv"]
    done = _replay_bike(home.root, "--rows", "200", "--start", "1", "--count", "1")
    assert done.returncode == 0, done.stderr
    assert len([p for p in home.landing.iterdir() if "Q" not in p.name]) == 1


def test_an_unknown_cadence_is_one_line(home):
    done = _replay_bike(home.root, "--freq", "fortnight")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "freq 'fortnight': use a calendar unit" in lines[0], lines
    assert not any(home.landing.iterdir())


def test_an_error_in_brackets_is_shown_as_written(home):
    """Error lines are text, not console markup: '[3]' used to vanish from the line."""
    done = _replay_bike(home.root, "--freq", "[3]W")
    assert done.returncode == 2
    assert "freq '[3]W'" in done.stderr, done.stderr
