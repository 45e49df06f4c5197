"""Prefect's temporary server, started while the cycle's libraries are still importing.

With no `PREFECT_API_URL`, the first flow run of a process starts a temporary Prefect
server (a uvicorn subprocess with SQLite under `PREFECT_HOME`) and waits for it: seconds
on a 2-core machine, paid after the imports. Started from a thread at the top of a
command, the server's own start-up runs in its process on the other core while this
process imports pandas, MLflow and the rest, so most of that wait disappears. It is
Prefect's own server class, so the first flow run finds it running and uses it; Prefect
stops it when the process exits.

Prefect stops it from an `atexit` hook, which a SIGKILL (the OOM killer) never runs: the
server would be orphaned and run on. So a small watchdog process holds the read end of a
pipe whose write end only this process has; when this process dies, however it dies, the
kernel closes the pipe, and the watchdog stops the server (`WATCHDOG`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

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
_watchdogs: list[subprocess.Popen[bytes]] = []  # kept: their pipe must stay open


def watch(pid: int) -> subprocess.Popen[bytes]:
    """Stop the server process `pid` when this process dies, by any signal.

    The pipe's write end stays with this process (not inheritable: PEP 446), so only this
    process's death closes it."""
    dog = subprocess.Popen([sys.executable, "-I", "-S", "-c", WATCHDOG, str(pid),
                            SERVER_MARKER], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    _watchdogs.append(dog)
    return dog


def _watched(server: Any) -> Any:
    """`server`, with a watchdog on its process from the moment it is spawned: the start-up
    wait (seconds) is the likeliest time for the OOM killer to strike."""
    spawn = getattr(server, "_run_uvicorn_command", None)
    if spawn is None:  # another Prefect: no hook, so no watchdog (Prefect's atexit only)
        return server

    def spawn_watched() -> subprocess.Popen[Any]:
        process = spawn()
        watch(process.pid)
        return process

    server._run_uvicorn_command = spawn_watched
    return server


def start_early() -> Callable[[], None]:
    """Start the temporary server in the background; the returned call waits until it
    answers (and raises what starting it raised). Against a real server: nothing to do."""
    if os.environ.get("PREFECT_API_URL"):
        return lambda: None
    # Imported here, in this thread: two threads importing the same package can deadlock.
    from prefect.server.api.server import SubprocessASGIServer

    failure: list[BaseException] = []

    def start() -> None:
        try:
            _watched(SubprocessASGIServer()).start()
        except BaseException as exc:  # handed to the caller, which decides
            failure.append(exc)

    thread = threading.Thread(target=start, name="prefect-temporary-server", daemon=True)
    thread.start()

    def ready() -> None:
        thread.join()
        if failure:
            raise failure[0]

    return ready
