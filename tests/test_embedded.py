"""Embedded mode: `greenlight run` with no Prefect server starts its own temporary one,
from a process that never imports Prefect's server, and stops it when the run ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tasks.data import replay as sources
from tests.test_idle import REPO

# The run process prints what it imported and which API its flow run used, then exits.
PROBE = """
import sys
from cli import main as cli
sys.argv = ['greenlight', *sys.argv[1:]]
try:
    cli.app()
except SystemExit as e:
    code = e.code
else:
    code = 0
from prefect.settings import PREFECT_API_URL
print('PROBE', {'server_module': 'prefect.server.api.server' in sys.modules,
                'api': PREFECT_API_URL.value()}, file=sys.stderr)
sys.exit(code or 0)
"""


def _servers_of(home: Path) -> list[str]:
    """Temporary Prefect servers still running for this state dir (by their environment)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if b"prefect.server.api.server:create_app" in cmd and str(home).encode() in env:
            found.append(pid)
    return found


def test_an_embedded_run_starts_stops_its_own_server_without_importing_it(champion_home):
    sources.write_batch(sources.synthetic_batch(1, seed=7), champion_home / "landing")
    settled = time.time() - 60
    for path in (champion_home / "landing").iterdir():
        os.utime(path, (settled, settled))
    env = {**os.environ, "GREENLIGHT_HOME": str(champion_home),
           "PREFECT_HOME": str(champion_home / "prefect")}
    env.pop("PREFECT_API_URL", None)  # no server: embedded, as a cron job runs it

    done = subprocess.run([sys.executable, "-c", PROBE, "run", "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["decision"] == "no action" and len(summary["batches"]) == 1
    probe = eval(next(x for x in done.stderr.splitlines() if x.startswith("PROBE ")
                      ).removeprefix("PROBE "))
    # the flow ran against a server on loopback that this process started...
    assert probe["api"].startswith("http://127.0.0.1:") and probe["api"].endswith("/api")
    # ...without loading the server's code here (seconds of CPU, paid by its own process)
    assert probe["server_module"] is False
    # a temporary server serves no UI: no dead "View at" link on the console
    assert "View at" not in done.stderr
    assert (champion_home / "prefect" / "temporary-server.log").exists()
    # and it is gone once the run is: nothing is left running
    deadline = time.monotonic() + 10
    while _servers_of(champion_home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_of(champion_home) == []


def test_a_temporary_server_is_not_taken_for_a_real_one(monkeypatch):
    """Approval and Prefect's concurrency leases need a server that outlives the run."""
    from cli import embedded
    from flows.policies import approval_needs_server

    monkeypatch.setenv(embedded.TEMPORARY_ENV, "http://127.0.0.1:8123/api")
    assert embedded.real_api_url("http://127.0.0.1:8123/api") is None
    assert embedded.real_api_url("http://127.0.0.1:4200/api") == "http://127.0.0.1:4200/api"
    assert approval_needs_server("manual", embedded.real_api_url("http://127.0.0.1:8123/api"))


def test_a_temporary_server_that_does_not_come_up_is_one_line(home):
    """No traceback when Prefect's server cannot start in time: one line naming its log,
    exit 3 (retry later), and the half-started server is stopped."""
    sources.write_batch(sources.synthetic_batch(0), home.landing)
    settled = time.time() - 60
    for path in home.landing.iterdir():
        os.utime(path, (settled, settled))
    env = {**os.environ, "GREENLIGHT_HOME": str(home.root),
           "PREFECT_HOME": str(home.root / "prefect"),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0"}
    env.pop("PREFECT_API_URL", None)

    done = subprocess.run([sys.executable, "-m", "cli.main", "run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)

    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "temporary Prefect server did not answer" in lines[0]
    assert "temporary-server.log" in lines[0]
    assert any(home.landing.iterdir())  # nothing was taken: the next run takes the batch
    deadline = time.monotonic() + 10
    while _servers_of(home.root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_of(home.root) == []
