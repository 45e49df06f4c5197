"""A full disk during a cycle: one line on stderr, whatever else fails, and no MLflow run
left RUNNING (issue 32.5: 327 lines, 5 tracebacks and a run RUNNING forever).

The disk fills where MLflow writes artifacts (every write raises ENOSPC), and the error log
cannot be written either (`logs/errors.log` is a directory), through a real `greenlight
run` on a copy of the bootstrapped champion's state dir with the new-market week landed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry import versions
from tasks.data import manifest
from tasks.data import replay as sources
from tasks.data.home import Home
from tests.approval_helpers import registry

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[1]
FULL_DISK = """
import errno, os, sys
from mlflow.store.artifact import local_artifact_repo as repo

def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

repo.LocalArtifactRepository.log_artifact = full
repo.LocalArtifactRepository.log_artifacts = full
from cli import main as cli
sys.argv = ["greenlight", *sys.argv[1:]]
cli.main()
"""


def test_a_full_disk_is_one_line_and_leaves_no_run_running(champion_home):
    home = Home.from_env(champion_home)
    landed = sources.write_batch(sources.synthetic_batch(5), home.landing)  # drift: retrain
    raw = landed.read_bytes()
    (champion_home / "logs").mkdir(exist_ok=True)
    (champion_home / "logs" / "errors.log").mkdir()  # the error log cannot be written
    env = {**os.environ, "GREENLIGHT_HOME": str(champion_home)}
    done = subprocess.run([sys.executable, "-c", FULL_DISK, "run", "--no-harvest"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert lines[0].startswith("error: ") and "[Errno 28] No space left on device" in lines[0]
    reg = registry(champion_home)
    assert versions.aliases(reg)["champion"] == 1  # the champion did not move
    client = reg.client
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = [r.info.run_name for r in client.search_runs(experiments)
               if r.info.status == "RUNNING"]
    assert running == [], running
    batch = next(b for b in manifest.load(home.manifest).values()
                 if b.get("file") == landed.name)
    kept = home.archive / batch["id"] / landed.name
    assert kept.read_bytes() == raw  # the data were safe
