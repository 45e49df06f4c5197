"""cli.stack without servers: a failure is one line naming the log; stop leaves no orphans."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import stack

REPO = Path(__file__).resolve().parents[1]

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


def test_commands_find_the_servers_up_records_and_ignore_a_stale_record(
        prefect_server, mlflow_server, tmp_path, monkeypatch):
    """16.1: beside `greenlight up`, a command on the same state dir uses its servers with
    nothing exported; explicit settings win; a record whose writer or server is gone is
    ignored (the embedded defaults apply)."""
    from tasks.data.home import Home, adopt_servers

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = Home(tmp_path / "gl")
    sqlite = f"sqlite:///{home.mlflow_db}"
    assert home.tracking_uri == sqlite and home.running_servers() == {}
    home.record_servers({"PREFECT_API_URL": prefect_server.api_url,
                         "MLFLOW_TRACKING_URI": mlflow_server.url},
                        {"PREFECT_API_URL": f"{prefect_server.api_url}/health",
                         "MLFLOW_TRACKING_URI": f"{mlflow_server.url}/health"})
    assert home.tracking_uri == mlflow_server.url
    env: dict[str, str] = {}
    assert adopt_servers(home.root, env) == {"PREFECT_API_URL": prefect_server.api_url,
                                             "MLFLOW_TRACKING_URI": mlflow_server.url}
    mine = {"MLFLOW_TRACKING_URI": "http://elsewhere:5000"}
    assert adopt_servers(home.root, mine) == {"PREFECT_API_URL": prefect_server.api_url}
    assert mine["MLFLOW_TRACKING_URI"] == "http://elsewhere:5000"  # explicit wins

    # the real command, in a fresh process with nothing exported: status reads up's registry
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    done = subprocess.run([sys.executable, "-c", "from cli.main import main; main()",
                           "status", "--json", "--home", str(home.root)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tracking_uri"] == mlflow_server.url

    record = json.loads(home.servers_file.read_text())
    silent = f"http://127.0.0.1:{stack.free_port()}"  # a server that does not answer
    home.servers_file.write_text(json.dumps({**record, "settings": {
        **record["settings"], "MLFLOW_TRACKING_URI": silent}, "health": {
        **record["health"], "MLFLOW_TRACKING_URI": f"{silent}/health"}}))
    assert home.tracking_uri == sqlite
    assert home.running_servers() == {"PREFECT_API_URL": prefect_server.api_url}
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its writer is gone (a kill -9 of `up`): nothing in the record is used
    home.servers_file.write_text(json.dumps({**record, "pid": gone.pid}))
    assert home.running_servers() == {} and home.tracking_uri == sqlite
    home.record_servers(record["settings"], record["health"])
    home.forget_servers()  # a clean stop
    assert not home.servers_file.exists()
