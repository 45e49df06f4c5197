"""Prefect's temporary server, started from a light process while the cycle imports.

With no `PREFECT_API_URL`, the first flow run of a process starts a temporary Prefect
server (a uvicorn subprocess with SQLite under `PREFECT_HOME`) and waits for it. Prefect
starts it through `prefect.server.api.server`, and importing that module (FastAPI, the
server's ORM and every API route) costs about 4 s of CPU in the run process, more than half
of what a one-batch cycle does beyond importing the stack. The server process imports
those modules anyway, in its own interpreter on the other core.

So `start_early` spawns the very command Prefect spawns (`_run_uvicorn_command` in Prefect
3.8: uvicorn with the server's app factory, no UI, ephemeral settings), before anything
heavy is imported here, and points this process's `PREFECT_API_URL` at it. Prefect's
client, events and logs then talk to it as to any server. `temporary_api_url` tells such a
server from a real one: a temporary server has no UI to approve in, and Prefect's
concurrency leases on it die with the process, so the checks that need a real server ask
`real_api_url` instead of `PREFECT_API_URL`.

A SIGKILL (the OOM killer) runs no `atexit` hook, and the server would be orphaned. So a
small watchdog process holds the read end of a pipe whose write end only this process has;
when this process dies, however it dies, the kernel closes the pipe, and the watchdog stops
the server (`WATCHDOG`).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from core.servers import TEMPORARY_ENV, real_api_url, temporary_api_url  # noqa: F401 (re-exported)

# Runs in its own small interpreter (-I -S: no site, nothing of ours imported). It blocks on
# stdin until the parent's end of the pipe closes, then stops the server if it is still the
# process it was started as (the pid could have been reused) and still running.
WATCHDOG = """
import os, signal, sys, time
pid, marker = int(sys.argv[1]), sys.argv[2]
sys.stdin.buffer.read()
def alive():
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return marker.encode() in fh.read()
    except OSError:
        return False
if alive():
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        time.sleep(0.1)
        if not alive():
            break
    else:
        os.kill(pid, signal.SIGKILL)
"""
SERVER_MARKER = "prefect.server.api.server:create_app"
PORT_IN_USE_EXIT = 3  # uvicorn's exit code when its port was taken meanwhile
_watchdogs: list[subprocess.Popen[bytes]] = []  # kept: their pipe must stay open


class ServerDidNotStart(RuntimeError):
    """The temporary server is not there to run the flow on; the message says why in one
    line and names its log."""


def watch(pid: int) -> subprocess.Popen[bytes]:
    """Stop the server process `pid` when this process dies, by any signal.

    The pipe's write end stays with this process (not inheritable: PEP 446), so only this
    process's death closes it."""
    dog = subprocess.Popen([sys.executable, "-I", "-S", "-c", WATCHDOG, str(pid),
                            SERVER_MARKER], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    _watchdogs.append(dog)
    return dog


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(port: int, log: Path) -> subprocess.Popen[bytes]:
    """Prefect's own temporary-server command (prefect 3.8 `SubprocessASGIServer`)."""
    spec = importlib.util.find_spec("prefect")
    assert spec is not None and spec.origin is not None, "prefect is not installed"
    app_dir = str(Path(spec.origin).parent.parent)
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
           "PREFECT__SERVER_FINAL": "1"}
    for key in ("PREFECT_API_URL", TEMPORARY_ENV):
        env.pop(key, None)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "--factory", SERVER_MARKER,
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "error",
             "--lifespan", "on"], env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    watch(process.pid)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _point_prefect_at(url: str) -> None:
    """Prefect reads its settings once, when it is first imported; if that happened before
    `start_early`, point the loaded settings at the server too (as flows/heartbeat.py does)."""
    if "prefect.context" not in sys.modules:
        return
    import prefect.context

    for context in (prefect.context.GLOBAL_SETTINGS_CONTEXT,
                    prefect.context.get_settings_context()):
        if not context.settings.api.url:
            context.settings.api.url = url


def start_early(log: Path | None = None) -> Callable[[], None]:
    """Start the temporary server now; the returned call waits until it answers, or raises
    ServerDidNotStart naming its log. Against a real server (`PREFECT_API_URL`): nothing to do.

    Call it before Prefect is imported: Prefect reads `PREFECT_API_URL` when it loads."""
    if os.environ.get("PREFECT_API_URL"):
        return lambda: None
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect")
    home.mkdir(parents=True, exist_ok=True)
    log = log or home / "temporary-server.log"
    port = _free_port()
    process = _spawn(port, log)
    atexit.register(_stop, process)
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = os.environ[TEMPORARY_ENV] = url
    os.environ.setdefault("PREFECT_UI_URL", "")  # it serves no UI: no "View at" links to it

    def ready() -> None:
        _point_prefect_at(url)
        timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 120))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _answers(url):
                return
            code = process.poll()
            if code == PORT_IN_USE_EXIT:  # another process took it between our bind and uvicorn's
                raise ServerDidNotStart(f"the temporary Prefect server's port {port} was taken "
                                        "meanwhile; run again")
            if code is not None:
                raise ServerDidNotStart(f"the temporary Prefect server exited with code "
                                        f"{code}; see {log}")
            time.sleep(0.1)
        raise ServerDidNotStart(f"the temporary Prefect server did not answer in "
                                f"{timeout:.0f} s; see {log}")

    return ready
