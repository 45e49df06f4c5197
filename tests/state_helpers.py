"""Expensive states built once per test run and copied per test.

A state dir holds absolute paths: its MLflow store (SQLite) names the artifact locations of
its experiments, runs and model versions, and a few text files name the dir itself. A plain
copy would still read and write the original's artifacts, so `copy_state` rewrites every
occurrence of the old root in the copy's database and text files: each copy is a state dir
of its own, as if the real loop had built it there.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

MLFLOW_DB = "mlflow.db"
TEXT_SUFFIXES = {".json", ".jsonl", ".yaml", ".yml", ".md", ".txt", ".csv", ""}
TEXT_NAMES = {"MLmodel", "meta.yaml"}
MAX_TEXT_BYTES = 2_000_000


def migrated_store(directory: Path) -> Path:
    """An empty MLflow SQLite store with every migration applied (seconds per new store;
    done once per run, then `fresh_store` copies the file)."""
    from mlflow import MlflowClient

    directory.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{directory / MLFLOW_DB}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()
    client.search_registered_models()
    return directory / MLFLOW_DB


def fresh_store(template: Path, directory: Path) -> str:
    """A copy of the migrated empty store in `directory`; returns its tracking URI. The copy
    is the store MLflow would create there: its default experiment points, as MLflow's own
    would, at `./mlruns` of the working directory, which is the same for the whole run."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, directory / MLFLOW_DB)
    return f"sqlite:///{directory / MLFLOW_DB}"


def _rewrite_db(db: Path, old: str, new: str) -> None:
    """Replace the old root in every text column of every table of an SQLite store."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')
                       if any(t in (r[2] or "").upper() for t in ("CHAR", "TEXT", "CLOB"))]
            for column in columns:
                conn.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                             f'WHERE instr("{column}", ?) > 0', (old, new, old))
        conn.commit()
    finally:
        conn.close()


def _rewrite_texts(root: Path, old: str, new: str) -> None:
    for path in root.rglob("*"):
        if not path.is_file() or path.name == MLFLOW_DB:
            continue
        if path.suffix not in TEXT_SUFFIXES and path.name not in TEXT_NAMES:
            continue
        if path.stat().st_size > MAX_TEXT_BYTES:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if old in text:
            path.write_text(text.replace(old, new))


def copy_state(template: Path, dest: Path) -> Path:
    """Copy a state dir built by the real loop to `dest`, re-rooted there (see above)."""
    shutil.copytree(template, dest, symlinks=True)
    old, new = str(template.resolve()), str(dest.resolve())
    if (dest / MLFLOW_DB).exists():
        _rewrite_db(dest / MLFLOW_DB, old, new)
    _rewrite_texts(dest, old, new)
    return dest
