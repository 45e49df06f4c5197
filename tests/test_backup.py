"""Backups and moves: a state dir copied with `cp -a`, or moved, is a state dir of its own.

MLflow keeps absolute artifact locations in `mlflow.db`; a copy used to read and write the
original's `mlartifacts/`, and lost its models once the original moved away
(registry/store.py `reroot`)."""

from __future__ import annotations

import subprocess

from registry import versions
from tasks.data import replay as sources
from tasks.publish import reports
from tests.approval_helpers import registry


def test_a_copy_whose_original_moved_away_loads_and_writes_its_own_artifacts(
        champion_home, tmp_path):
    original = champion_home
    backup = tmp_path / "backup"
    subprocess.run(["cp", "-a", str(original), str(backup)], check=True)
    moved = original.rename(tmp_path / "moved-away")  # the original is gone from its path

    reg = registry(backup)
    champion = versions.by_alias(reg, "champion")
    sample = sources.synthetic_batch(1, rows=5).frame
    assert len(versions.load_model(reg, champion.version).predict(None, sample)) == 5
    assert len(versions.load_reference(reg, champion)) > 0

    experiment = reg.experiment_id(f"{reg.model_name}-monitoring")
    assert reg.client.get_experiment(experiment).artifact_location == (
        backup / "mlartifacts").as_uri()
    note = tmp_path / "note"
    note.mkdir()
    (note / "seen.txt").write_text("written after the copy")
    run = reports.log_run(reg.tracking_uri, experiment, "after-the-copy", metrics={"x": 1.0},
                          tags={}, artifacts={"note": note})
    assert list(backup.rglob(f"{run}/**/seen.txt")), "the copy's new artifacts are its own"
    assert not original.exists()  # nothing was written at the original's old path
    assert not list(moved.rglob(f"{run}*"))
