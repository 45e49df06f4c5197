"""The serving bounds under abuse: aborted uploads, stalled uploads, a lone surrogate.

A real uvicorn configured as `greenlight serve` configures it (serving/guards.py:
`server_config`, the default bounds) in this process, over a state dir with a champion.
It reports, for N clients each: how many log lines (and tracebacks) N uploads abandoned
mid-body cost, how long N stalled uploads held their connections and what they were
answered, and the counters /metrics shows. Issue 32's figures were 2,001 aborts giving
114,059 log lines and 2,000 stalled uploads still open after 65 s.

    uv run python benchmarks/serving_abuse.py                 # N = 2000, a fresh state dir
    uv run python benchmarks/serving_abuse.py -n 500 --home DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.app import create_app  # noqa: E402
from tests.approval_helpers import registry  # noqa: E402
from tests.serving_helpers import records, running, two_versions_direct  # noqa: E402

ENV = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
       "MLFLOW_LOGGING_LEVEL": "ERROR", "GIT_PYTHON_REFRESH": "quiet"}


class Lines(logging.Handler):
    """Every line the service and uvicorn log (what a console would show)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _head(length: int) -> bytes:
    return (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _drain(sock: socket.socket) -> str:
    """The status the server answered before closing, or why nothing came."""
    sock.settimeout(120)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except OSError as exc:
        return type(exc).__name__
    return got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP") else "closed"


def abuse(home: Path, n: int) -> None:
    reg = registry(home)
    log = Lines()
    with running(create_app(reg, Path(tempfile.mkdtemp(prefix="gl-abuse-")))) as url:
        # after uvicorn configured its loggers (that replaces their handlers): counted here
        # instead of printed
        for name in ("greenlight.serving", "uvicorn.error", "uvicorn", "uvicorn.asgi"):
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = [log], False
        port = int(url.rsplit(":", 1)[1])
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(_head(1000) + b'{"market": "no')
            sock.close()
        deadline = time.monotonic() + 120
        while sum("disconnected" in line for line in log.lines) < n and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        tracebacks = sum("Traceback" in line or "Exception in ASGI" in line
                         for line in log.lines)
        print(f"{n} uploads aborted mid-body: {len(log.lines)} log lines, {tracebacks} "
              "tracebacks")
        log.lines.clear()
        socks = []
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(_head(1000) + b"[")
            socks.append(sock)
        opened = time.monotonic()
        answers: dict[str, int] = {}
        for sock in socks:
            status = _drain(sock)
            answers[status] = answers.get(status, 0) + 1
            sock.close()
        print(f"{n} stalled uploads: all closed by the server {time.monotonic() - opened:.1f} s "
              f"after the last was opened; answered {answers}; {len(log.lines)} log lines "
              f"({sum('concurrency limit' in line for line in log.lines)} of them uvicorn's "
              "`Exceeded concurrency limit.`)")
        body = json.dumps({**records(n=1)[0], "market": "M"}).replace('"M"', '"\\ud800"')
        r = httpx.post(f"{url}/predict", content=body.encode(),
                       headers={"content-type": "application/json"})
        print(f'a lone surrogate ("\\ud800"): {r.status_code} {r.json()["error"]}')
        metrics = httpx.get(f"{url}/metrics").text.splitlines()
        print("\n".join(line for line in metrics if line.startswith("greenlight_errors_total")
                        or (line.startswith("greenlight_requests_total")
                            and 'variant="none"' in line)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="Clients of each kind.")
    ap.add_argument("--home", type=Path, help="State dir with @champion (else one is built).")
    opts = ap.parse_args()
    os.environ.update(ENV)
    home = opts.home or Path(tempfile.mkdtemp(prefix="gl-bench-abuse-")) / "gl"
    if not opts.home:
        print(f"building a champion in {home} ...", flush=True)
        two_versions_direct(home)
    abuse(home, opts.n)


if __name__ == "__main__":
    main()
