"""flows.stack without servers: a failure is one line naming the log; stop leaves no orphans."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows import stack

# A parent and a child that both ignore SIGTERM, like a server stuck in shutdown.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
subprocess.Popen([sys.executable, "-c", child])
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_server_that_dies_fails_in_one_line_naming_its_log(tmp_path):
    log = tmp_path / "logs" / "dead.log"
    proc = stack._spawn("dead server", ["json.tool", str(tmp_path / "missing.json")], log, {})
    with pytest.raises(RuntimeError) as failure:
        stack.wait_healthy(f"http://127.0.0.1:{stack.free_port()}/health", 30, proc)
    message = str(failure.value)
    assert "dead server exited with code" in message and str(log) in message
    assert "\n" not in message


def test_a_silent_url_times_out_in_one_line():
    with pytest.raises(RuntimeError, match=r"did not answer within 1 s"):
        stack.wait_healthy(f"http://127.0.0.1:{stack.free_port()}/health", 1, None)


def test_a_busy_port_is_refused_before_starting(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"port {port} .* already in use"):
            stack.start_mlflow_server(tmp_path, port)
    assert not (tmp_path / "logs").exists()


def test_stop_kills_the_whole_group_even_when_it_ignores_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], start_new_session=True)
    deadline = time.monotonic() + 30
    while len(group := _group(proc.pid)) < 2:
        assert time.monotonic() < deadline, "the stub never started its child"
        time.sleep(0.1)
    stack.stop([proc], grace=1)
    assert proc.returncode is not None
    assert not [pid for pid in group if _alive(pid)]


def _group(pgid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found
