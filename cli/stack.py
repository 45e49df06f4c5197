"""The real stack on loopback: a Prefect server and an MLflow server over one GREENLIGHT_HOME.

`greenlight up` and the test fixtures both start servers through these functions, so the
flags, environment and shutdown that users get are exactly what the tests exercise.
Servers point at the same SQLite files as embedded mode, so earlier runs show up, unless
given a database URL (PostgreSQL in production: `deployments/postgres.env.example`).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

QUIET = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
         "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
KILL_SETTLE = 5.0  # seconds for SIGKILLed members to actually die before we return


class Server(subprocess.Popen):
    """A server process that remembers its name and log, so a failure can point at the log."""

    name: str
    log: Path


def free_port() -> int:
    """A port nobody listens on now; racy in theory, fine for tests on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_port(name: str, port: int) -> None:
    """Fail now if the port is taken: otherwise whatever already listens there (an earlier
    `greenlight up`?) would pass the health check while our server dies."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise RuntimeError(f"{name}: port {port} on 127.0.0.1 is already in use") from None


def _spawn(name: str, args: list[str], log: Path, env: Mapping[str, str]) -> Server:
    """A new session per server, so `stop` can signal the whole group (uvicorn workers too)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = Server([sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT,
                      stdin=subprocess.DEVNULL, env=dict(env), start_new_session=True)
    proc.name, proc.log = name, log
    return proc


def with_driver(url: str, driver: str | None) -> str:
    """The same PostgreSQL URL with the driver each server needs, whatever the user wrote.

    Prefect's server is async (`postgresql+asyncpg://`), MLflow's sync (`postgresql://`,
    psycopg2), so one plain `postgresql://user@host/db` can be given to either."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        return url  # SQLite or anything else: the server's own business
    return f"postgresql{'+' + driver if driver else ''}://{rest}"


def start_prefect_server(home: Path, port: int, env: dict[str, str] | None = None,
                         database_url: str | None = None) -> Server:
    """`prefect server start` on the Prefect home embedded runs use (`<home>/prefect`).

    `database_url` (PostgreSQL) replaces the SQLite file under that home. `env` overrides
    the defaults, e.g. `PREFECT_API_SERVICES_SCHEDULER_LOOP_SECONDS`."""
    _check_port("prefect server", port)
    prefect_home = home / "prefect"
    prefect_home.mkdir(parents=True, exist_ok=True)
    api = f"http://127.0.0.1:{port}/api"
    # The UI asks the API on port 4200 unless told otherwise: tell it where it really is.
    full = {**os.environ, **QUIET, "PREFECT_HOME": str(prefect_home), "PREFECT_API_URL": api,
            "PREFECT_UI_API_URL": api, **(env or {})}
    if database_url:
        full.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)  # the legacy name would win
        full["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = with_driver(database_url, "asyncpg")
    args = ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return _spawn("prefect server", args, home / "logs" / "prefect-server.log", full)


def start_mlflow_server(home: Path, port: int, database_url: str | None = None,
                        auth: bool = False, artifacts: str | None = None) -> Server:
    """`mlflow server` on the same SQLite store and artifact dir embedded runs use.

    `database_url` (PostgreSQL) replaces the SQLite store; artifacts stay in the state dir
    unless `artifacts` names another place (an object-store URL: the server proxies them, so
    clients need only its URL; boto3 reads the credentials and `MLFLOW_S3_ENDPOINT_URL`).
    `auth` turns on MLflow's basic auth (see `mlflow_auth_config`). One worker and no job
    runner: a single user on loopback, and a fraction of the memory."""
    _check_port("mlflow server", port)
    full = {**os.environ, **QUIET, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    full.pop("MLFLOW_TRACKING_URI", None)
    store = with_driver(database_url, None) if database_url else f"sqlite:///{home / 'mlflow.db'}"
    args = ["mlflow", "server", "--backend-store-uri", store,
            "--artifacts-destination", artifacts or str(home / "mlartifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    if auth:
        full["MLFLOW_AUTH_CONFIG_PATH"] = str(mlflow_auth_config(home))
        # The auth app's CSRF protection needs a key; one per start unless the user set one
        # (then UI sessions also survive a restart).
        full.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
        args += ["--app-name", "basic-auth"]
    return _spawn("mlflow server", args, home / "logs" / "mlflow-server.log", full)


def mlflow_auth_config(home: Path) -> Path:
    """MLflow's basic-auth config, written into the state dir: it holds no secret.

    The admin's name and password come from `MLFLOW_AUTH_ADMIN_USERNAME` and
    `MLFLOW_AUTH_ADMIN_PASSWORD` (MLflow reads them itself); the user store is
    `<home>/mlflow-auth.db`. Users with no grant on a resource get no access at all."""
    if not os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
        raise RuntimeError("MLflow basic auth needs MLFLOW_AUTH_ADMIN_PASSWORD (and "
                           "MLFLOW_AUTH_ADMIN_USERNAME, default admin) in the environment")
    path = home / "mlflow-auth.ini"
    path.write_text("[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                    f"database_uri = sqlite:///{home / 'mlflow-auth.db'}\n"
                    "admin_username = admin\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return path


def start_evidently_ui(home: Path, port: int) -> Server:
    """`evidently ui` over the workspace the cycles write (`<home>/evidently`).

    It watches the workspace directory, so batches monitored while it runs appear without a
    restart. `DO_NOT_TRACK` (in `QUIET`) turns its telemetry off."""
    _check_port("evidently ui", port)
    workspace = home / "evidently"
    workspace.mkdir(parents=True, exist_ok=True)
    args = ["evidently.cli", "ui", "--workspace", str(workspace),
            "--host", "127.0.0.1", "--port", str(port)]
    return _spawn("evidently ui", args, home / "logs" / "evidently-ui.log",
                  {**os.environ, **QUIET})


EVIDENTLY_HEALTH = "/api/version"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def wait_healthy(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Poll a health URL; fail in one line that names the log rather than hang or traceback."""
    log = getattr(proc, "log", None)
    where = f"; see {log}" if log else ""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{getattr(proc, 'name', 'server')} exited with code "
                               f"{proc.returncode} before {url} answered{where}")
        if _answers(url):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s{where}")
        time.sleep(0.25)


def _group_alive(pgid: int) -> bool:
    """Whether any member of the group still runs; zombies do not count.

    A killed child orphaned by its leader stays a zombie until init reaps it, and in a
    container init may never do so, so `killpg(pgid, 0)` alone would wait forever."""
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for stat in proc_root.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def stop(procs: Iterable[subprocess.Popen], grace: float = STOP_GRACE) -> None:
    """SIGTERM each server's process group, then SIGKILL what is left after `grace` seconds.

    The group, not just the leader: `prefect server` and `mlflow server` run uvicorn as
    children, and signalling only the parent would orphan them."""
    procs = [p for p in procs if p is not None]
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if proc.poll() is None or _group_alive(proc.pid):
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            settle = time.monotonic() + KILL_SETTLE
            while _group_alive(proc.pid) and time.monotonic() < settle:
                time.sleep(0.05)
