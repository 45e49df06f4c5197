"""A PostgreSQL table as a source (tasks/data/sql_source.py), on the real server here.

Fast tests drive the source the way `flows/cycle.py` `_intake` does (take, accept or
reject, commit); the e2e test runs `greenlight run` on a table end to end. The URL always
carries a password (trust auth ignores it), so every test can look for it where it must
never be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tasks.data import ingest, lake, manifest, source
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.spec import load_spec
from tasks.data.sql_source import SqlSource
from tests.servers import postgres_database, postgres_unavailable

REPO = Path(__file__).resolve().parents[1]
SECRET = "pw-never-shown-7f3a"
URL_ENV = "GREENLIGHT_TEST_SQL_URL"


@pytest.fixture
def pg_url(monkeypatch) -> str:
    """A fresh database whose URL (with a password) is in `URL_ENV`, as a deployment sets it."""
    why = postgres_unavailable()
    if why:
        pytest.skip(why)
    with postgres_database("sources") as url:
        with_secret = url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")
        monkeypatch.setenv(URL_ENV, with_secret)
        yield with_secret


def _insert(url: str, frame: pd.DataFrame, table: str = "applications") -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        frame.to_sql(table, engine, if_exists="append", index=False)
    finally:
        engine.dispose()


def _source(home: Home, **extra) -> SqlSource:
    config = source.SqlConfig(kind="sql", url_env=URL_ENV, table="applications", **extra)
    return SqlSource(home, load_spec("synthetic"), config, "test source")


def _decide(home: Home, landed: ingest.LandedFile) -> str:
    """What `_intake` does with a batch, minus validation: accept it."""
    spec = load_spec("synthetic")
    frame, error = ingest.try_read(landed.path, spec)
    assert error is None, error
    return ingest.accept(home, landed, frame, spec)


def test_a_slice_is_a_batch_and_the_watermark_moves_only_after_its_decision(pg_url, tmp_path):
    home = Home.from_env(tmp_path / "gl").ensure()
    week0 = sources.synthetic_batch(0, rows=300).frame
    _insert(pg_url, week0)
    src = _source(home)
    taken = src.take()
    assert len(taken.ready) == 1 and not taken.notes
    landed = taken.ready[0]
    assert landed.name.startswith("synthetic-sql-start--") and landed.name.endswith(".parquet")
    src.commit(landed)  # no decision yet: the watermark must not move
    assert "watermark" not in src.state()
    _decide(home, landed)
    src.commit(landed)
    assert src.state()["watermark"] == pd.Timestamp(week0["timestamp"].max()).isoformat()
    assert len(pd.read_parquet(lake.partition_path(home.lake, landed.batch_id))) == 300
    assert (home.archive / landed.batch_id / landed.name).is_file()  # the slice's bytes kept
    assert src.take().ready == []  # nothing newer
    _insert(pg_url, sources.synthetic_batch(1, rows=200).frame)
    second = src.take().ready
    assert len(second) == 1 and second[0].batch_id != landed.batch_id
    frame, _ = ingest.try_read(second[0].path, load_spec("synthetic"))
    assert len(frame) == 200


def test_a_crash_between_reading_and_committing_rereads_the_slice_once(pg_url, tmp_path,
                                                                       monkeypatch):
    home = Home.from_env(tmp_path / "gl").ensure()
    _insert(pg_url, sources.synthetic_batch(0, rows=300).frame)
    first = _source(home).take().ready[0]
    # crash: the process dies here, before any decision or commit
    reads: list[int] = []
    real = SqlSource._slice
    monkeypatch.setattr(SqlSource, "_slice",
                        lambda self, *a: reads.append(1) or real(self, *a))
    _insert(pg_url, sources.synthetic_batch(1, rows=200).frame)  # newer rows meanwhile
    again = _source(home).take().ready
    assert len(reads) == 1 and [x.batch_id for x in again] == [first.batch_id]
    _decide(home, again[0])
    # crash again: after the decision, before the commit; the next cycle only commits
    reads.clear()
    after = _source(home)
    nxt = after.take().ready
    assert after.state()["committed_batch"] == first.batch_id
    assert len(reads) == 1 and len(nxt) == 1 and nxt[0].batch_id != first.batch_id
    accepted = [b for b in manifest.load(home.manifest).values() if b["status"] == "accepted"]
    assert [b["id"] for b in accepted] == [first.batch_id]  # in the lake once


def test_late_rows_are_counted_and_reported_once(pg_url, tmp_path):
    home = Home.from_env(tmp_path / "gl").ensure()
    week1 = sources.synthetic_batch(1, rows=300).frame
    _insert(pg_url, week1)
    src = _source(home)
    landed = src.take().ready[0]
    _decide(home, landed)
    src.commit(landed)
    _insert(pg_url, sources.synthetic_batch(0, rows=7).frame)  # older than the watermark
    taken = src.take()
    assert taken.ready == []
    assert len(taken.notes) == 1 and "7 late row(s)" in taken.notes[0]
    assert src.state()["late_rows"] == 7
    assert src.take().notes == []  # reported once


def test_late_rows_while_a_slice_is_in_flight_are_reported_once(pg_url, tmp_path):
    home = Home.from_env(tmp_path / "gl").ensure()
    _insert(pg_url, sources.synthetic_batch(1, rows=100).frame)
    src = _source(home)
    first = src.take().ready[0]
    _decide(home, first)
    src.commit(first)
    _insert(pg_url, sources.synthetic_batch(2, rows=100).frame)
    src.take()  # read, then a crash before its decision
    _insert(pg_url, sources.synthetic_batch(0, rows=4).frame)
    again = _source(home)
    taken = again.take()
    assert "4 late row(s)" in taken.notes[0]
    _decide(home, taken.ready[0])
    again.commit(taken.ready[0])
    assert again.take().notes == [] and again.state()["late_rows"] == 4


def test_a_query_is_a_source_too(pg_url, tmp_path):
    home = Home.from_env(tmp_path / "gl").ensure()
    _insert(pg_url, sources.synthetic_batch(0, rows=300).frame)
    config = source.SqlConfig(kind="sql", url_env=URL_ENV,
                              query="SELECT * FROM applications WHERE market = 'north';")
    landed = SqlSource(home, load_spec("synthetic"), config, "test").take().ready[0]
    frame, _ = ingest.try_read(landed.path, load_spec("synthetic"))
    assert 0 < len(frame) < 300 and set(frame["market"]) == {"north"}


def test_the_password_never_shows(pg_url, tmp_path, monkeypatch):
    home = Home.from_env(tmp_path / "gl").ensure()
    src = _source(home)
    assert SECRET not in src.label and "***" in src.label
    monkeypatch.setenv(URL_ENV, pg_url.replace(":5432/", ":1/"))  # nothing listens there
    down = _source(home).take()
    assert down.ready == [] and "cannot read" in down.notes[0]
    assert SECRET not in " ".join(down.notes)


@pytest.mark.parametrize("config, problem", [
    ({"kind": "sql", "table": "t"}, "give exactly one of url and url_env"),
    ({"kind": "sql", "url_env": "GREENLIGHT_TEST_NOT_SET", "table": "t"},
     "url_env: environment variable GREENLIGHT_TEST_NOT_SET is not set"),
    ({"kind": "sql", "url": "not a url :: pw-secret", "table": "t"}, "url: not a SQLAlchemy URL"),
    ({"kind": "sql", "url": "sqlite://", "table": "t", "query": "SELECT 1"},
     "give exactly one of table and query"),
    ({"kind": "sql", "url": "sqlite://", "tabel": "t"}, "tabel: Extra inputs are not permitted"),
])
def test_a_bad_config_is_one_line_naming_the_key(config, problem, tmp_path, monkeypatch):
    monkeypatch.setenv(source.SOURCE_ENV, json.dumps(config))
    home = Home.from_env(tmp_path / "gl")
    with pytest.raises(ValueError) as caught:
        source.for_cycle(home, load_spec("synthetic"), ingest.scan)
    line = str(caught.value)
    assert line.startswith(source.SOURCE_ENV) and problem in line and "\n" not in line
    assert "pw-secret" not in line


@pytest.mark.e2e
def test_a_cycle_from_a_postgres_table_end_to_end(pg_url, tmp_path):
    """`greenlight run` with the source set for the deployment: rows in the table become
    the first champion's batch; a second run has nothing new; the password is nowhere."""
    root = tmp_path / "gl"
    _insert(pg_url, sources.synthetic_batch(0).frame)
    config = {"kind": "sql", "url_env": URL_ENV, "table": "applications"}
    env = {**os.environ, "GREENLIGHT_HOME": str(root), source.SOURCE_ENV: json.dumps(config)}
    env.pop("PREFECT_API_URL", None)
    runs = [subprocess.run([sys.executable, "-m", "cli.main", "run"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=900) for _ in range(2)]
    for done in runs:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert SECRET not in done.stdout + done.stderr
    home = Home.from_env(root)
    batches = list(manifest.load(home.manifest).values())
    assert [b["status"] for b in batches] == ["accepted"] and batches[0]["decision"]
    assert len(pd.read_parquet(lake.partition_path(home.lake, batches[0]["id"]))) == 3000
    for path in root.rglob("*"):  # manifest, source state, reports, MLflow store, artifacts
        if path.is_file() and path.stat().st_size < 50 << 20:
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.e2e
def test_a_cycle_killed_after_reading_a_slice_takes_it_once_when_run_again(pg_url, tmp_path,
                                                                          monkeypatch):
    """kill -9 (core.faults) right after the slice is read and validated, before any decision:
    the watermark has not moved, the next run reads the same slice and accepts it once."""
    from tests.test_crash import crashed_run

    root = tmp_path / "gl"
    _insert(pg_url, sources.synthetic_batch(0).frame)
    monkeypatch.setenv(source.SOURCE_ENV, json.dumps(
        {"kind": "sql", "url_env": URL_ENV, "table": "applications"}))
    assert crashed_run(root, "validate") == -9
    src = _source(Home.from_env(root))
    pending = src.state()["pending"]
    assert "watermark" not in src.state() and not manifest.load(Home.from_env(root).manifest)
    env = {**os.environ, "GREENLIGHT_HOME": str(root), "PREFECT_HOME": str(root / "prefect")}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "cli.main", "run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    batches = list(manifest.load(Home.from_env(root).manifest).values())
    assert [(b["id"], b["status"]) for b in batches] == [(pending["batch_id"], "accepted")]
    assert src.state()["watermark"] == pending["upto"] and "pending" not in src.state()
