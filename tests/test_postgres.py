"""The production configuration: Prefect and MLflow servers on PostgreSQL.

Whatever `GREENLIGHT_TEST_BACKEND` says, this starts both servers on fresh PostgreSQL
databases (as `greenlight up --prefect-db/--mlflow-db` does), runs a real cycle against
them, and reads the result back from PostgreSQL itself: the state is there, not in SQLite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows import stack
from tasks import sources
from tasks.home import Home
from tests.servers import STARTUP_TIMEOUT, postgres_database, postgres_unavailable

REPO = Path(__file__).resolve().parents[1]
OLD = 1_700_000_000


def _query(url: str, sql: str) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_driver_is_chosen_per_server():
    url = "postgresql://gl:secret@db:5432/prefect"
    assert stack.with_driver(url, "asyncpg") == "postgresql+asyncpg://gl:secret@db:5432/prefect"
    assert stack.with_driver("postgresql+asyncpg://db/m", None) == "postgresql://db/m"
    assert stack.with_driver("postgres://db/m", None) == "postgresql://db/m"
    assert stack.with_driver("sqlite:///x.db", "asyncpg") == "sqlite:///x.db"


@pytest.mark.slow
def test_a_cycle_on_postgres_keeps_its_state_in_postgres(tmp_path):
    why = postgres_unavailable()
    if why:
        pytest.skip(why)
    root = tmp_path / "gl"
    home = Home.from_env(root).ensure()
    os.utime(sources.write_batch(sources.synthetic_batch(0), home.landing), (OLD, OLD))
    with postgres_database("prefect") as prefect_db, postgres_database("mlflow") as mlflow_db:
        pport, mport = stack.free_port(), stack.free_port()
        procs = [stack.start_prefect_server(tmp_path / "p", pport, database_url=prefect_db),
                 stack.start_mlflow_server(tmp_path / "m", mport, database_url=mlflow_db)]
        try:
            stack.wait_healthy(f"http://127.0.0.1:{pport}/api/health", STARTUP_TIMEOUT, procs[0])
            stack.wait_healthy(f"http://127.0.0.1:{mport}/health", STARTUP_TIMEOUT, procs[1])
            env = {**os.environ, "GREENLIGHT_HOME": str(root),
                   "PREFECT_API_URL": f"http://127.0.0.1:{pport}/api",
                   "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mport}"}
            done = subprocess.run([sys.executable, "-m", "flows.cli", "run"], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            champion = _query(mlflow_db, "SELECT a.alias, a.version FROM "
                                         "registered_model_aliases a WHERE a.name = "
                                         "'greenlight-synthetic'")
            runs = _query(prefect_db, "SELECT f.name, r.state_type FROM flow_run r "
                                      "JOIN flow f ON f.id = r.flow_id")
        finally:
            stack.stop(procs)
    assert champion == [("champion", 1)]
    assert ("greenlight-cycle", "COMPLETED") in runs
    assert not (tmp_path / "m" / "mlflow.db").exists()  # no SQLite store on the side
    assert not list((tmp_path / "p").rglob("*.db"))
