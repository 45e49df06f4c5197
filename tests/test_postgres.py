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

from cli import stack
from tasks.data import replay as sources
from tasks.data.home import Home
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


@pytest.mark.e2e
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
            done = subprocess.run([sys.executable, "-m", "cli.main", "run"], cwd=REPO, env=env,
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


@pytest.mark.e2e
def test_up_runs_on_postgres_behind_auth(tmp_path):
    """`greenlight up` configured only by the environment of deployments/production.env.example:
    both servers on PostgreSQL, anonymous API calls refused, the deployments served."""
    import secrets
    import signal
    import time

    import httpx

    from cli.deployments import DEPLOYMENTS
    from tests.test_deployments import _child_env, _spawn, _tail

    why = postgres_unavailable()
    if why:
        pytest.skip(why)
    ports = [stack.free_port() for _ in range(3)]
    prefect, mlflow = (f"http://127.0.0.1:{p}" for p in ports[:2])
    auth_string, password = f"ops:{secrets.token_urlsafe(12)}", secrets.token_urlsafe(16)
    with postgres_database("prefect") as prefect_db, postgres_database("mlflow") as mlflow_db:
        env = _child_env(tmp_path / "gl", GREENLIGHT_PREFECT_DATABASE_URL=prefect_db,
                         GREENLIGHT_MLFLOW_DATABASE_URL=mlflow_db,
                         PREFECT_SERVER_API_AUTH_STRING=auth_string,
                         MLFLOW_AUTH_ADMIN_PASSWORD=password)
        code = ("from cli.main import main; import sys; sys.argv = ['greenlight', 'up', "
                f"'--prefect-port', '{ports[0]}', '--mlflow-port', '{ports[1]}', "
                f"'--evidently-port', '{ports[2]}']; main()")
        log = tmp_path / "up.log"
        proc = _spawn(code, log, env)
        try:
            stack.wait_healthy(f"{prefect}/api/health", 240, proc)
            stack.wait_healthy(f"{mlflow}/health", 240, proc)
            name = DEPLOYMENTS[0].full_name
            deadline = time.monotonic() + 180
            while httpx.get(f"{prefect}/api/deployments/name/{name}",
                            auth=tuple(auth_string.split(":", 1))).status_code != 200:
                assert proc.poll() is None, f"up exited {proc.returncode}:\n{_tail(log)}"
                assert time.monotonic() < deadline, f"{name} never appeared:\n{_tail(log)}"
                time.sleep(1)
            while "Ctrl-C stops everything." not in log.read_text():  # the banner: up serves
                assert proc.poll() is None, f"up exited {proc.returncode}:\n{_tail(log)}"
                assert time.monotonic() < deadline, f"no banner:\n{_tail(log)}"
                time.sleep(1)
            anonymous_prefect = httpx.get(f"{prefect}/api/deployments/name/{name}").status_code
            search = f"{mlflow}/api/2.0/mlflow/experiments/search?max_results=1"
            anonymous_mlflow = httpx.get(search).status_code
            admin_mlflow = httpx.get(search, auth=("admin", password)).status_code
            deployments = _query(prefect_db, "SELECT name FROM deployment")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, _tail(log)
        finally:
            if proc.poll() is None:
                stack.stop([proc])
    assert (anonymous_prefect, anonymous_mlflow, admin_mlflow) == (401, 401, 200)
    assert (DEPLOYMENTS[0].name,) in deployments  # the deployments live in PostgreSQL
    banner = log.read_text()
    assert "authentication: Prefect" in banner and "MLflow (" in banner
    assert password not in banner and auth_string not in banner
    assert not (tmp_path / "gl" / "mlflow.db").exists()
