"""Serving speed: single-row latency, throughput against `mlflow models serve` on the same
model, and a load run with three alias switches (failed requests must be 0).

It builds its own state dir with the real loop (two cycles on the synthetic stream: v1, then
v2 as champion), unless `--home` points at one that has a champion and a previous.

    uv run python benchmarks/serving_speed.py                         # the figures in the note
    uv run python benchmarks/serving_speed.py --seconds 5 --concurrency 4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from flows import stack
from registry.promote import promote, rollback
from registry.versions import aliases
from serving.app import create_app
from tests.approval_helpers import registry
from tests.serving_helpers import records, two_versions

ENV = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_LOGGING_LEVEL": "ERROR",
       "GIT_PYTHON_REFRESH": "quiet"}


def pct(values: list[float]) -> str:
    return f"p50 {np.percentile(values, 50):.2f} ms  p99 {np.percentile(values, 99):.2f} ms"


def start(args: list[str], env: dict[str, str], health: str, log: Path) -> subprocess.Popen:
    """A server process; returns once `health` answers 200."""
    proc = subprocess.Popen(args, env={**os.environ, **ENV, **env}, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{args[0]} exited; see {log}")
        try:
            if httpx.get(health, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"{health} never answered; see {log}")


def load(url: str, body: Callable[[int], Any], seconds: float, concurrency: int,
         during: Callable[[], None] | None = None) -> dict[str, Any]:
    """`concurrency` clients posting single rows for `seconds`; counts and latencies."""
    stop, lock = threading.Event(), threading.Lock()
    lat: list[float] = []
    fails: list[str] = []

    def client(worker: int) -> None:
        with httpx.Client(timeout=30) as http:
            i = worker
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    r = http.post(url, json=body(i))
                    ok, why = r.status_code == 200, f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                with lock:
                    (lat.append((time.perf_counter() - t) * 1000) if ok else fails.append(why))
                i += concurrency

    threads = [threading.Thread(target=client, args=(w,)) for w in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    if during:
        during()
    time.sleep(max(0.0, seconds - (time.perf_counter() - t0)))
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"ok": len(lat), "failed": len(fails), "rps": len(lat) / elapsed, "lat": lat,
            "why": sorted(set(fails))[:3]}


def latency(home: Path, rows: list[dict[str, Any]], n: int) -> None:
    from fastapi.testclient import TestClient

    reg = registry(home)
    app = create_app(reg, home / "bench-inproc", poll_seconds=3600)
    with TestClient(app) as client:
        served = app.state.router.live.champion
        direct = []
        for i in range(n):
            t = time.perf_counter()
            served.score([rows[i % len(rows)]])
            direct.append((time.perf_counter() - t) * 1000)
        inproc = []
        for i in range(n):
            t = time.perf_counter()
            assert client.post("/predict", json=rows[i % len(rows)]).status_code == 200
            inproc.append((time.perf_counter() - t) * 1000)
    print(f"single row, model call only (no HTTP, no validation): {pct(direct)}")
    print(f"single row, in-process (FastAPI TestClient):           {pct(inproc)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, help="State dir with @champion and @previous.")
    ap.add_argument("--seconds", type=float, default=10.0, help="Length of each load run.")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency-requests", type=int, default=500)
    opts = ap.parse_args()
    os.environ.update(ENV)
    home = opts.home or Path(tempfile.mkdtemp(prefix="gl-bench-serving-")) / "gl"
    if not opts.home:
        print(f"building two versions with the real loop in {home} ...", flush=True)
        two_versions(home)
    reg = registry(home)
    champion = aliases(reg)["champion"]
    rows = records(n=500)
    print(f"model {reg.model_name} v{champion}, {opts.concurrency} clients, "
          f"{opts.seconds:.0f} s per load run, {os.cpu_count()} cores\n")
    latency(home, rows, opts.latency_requests)

    logs = home / "bench-logs"
    logs.mkdir(exist_ok=True)
    gl_port, ml_port = stack.free_port(), stack.free_port()
    gl = start([sys.executable, "-m", "flows.cli", "serve", "--port", str(gl_port),
                "--poll-seconds", "0.5"], {"GREENLIGHT_HOME": str(home)},
               f"http://127.0.0.1:{gl_port}/health", logs / "greenlight.log")
    try:
        with httpx.Client() as http:
            seq = []
            for i in range(opts.latency_requests):
                t = time.perf_counter()
                http.post(f"http://127.0.0.1:{gl_port}/predict", json=rows[i % len(rows)])
                seq.append((time.perf_counter() - t) * 1000)
        print(f"single row, over HTTP (uvicorn, loopback, keep-alive): {pct(seq)}\n")
        ml = start([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                    f"models:/{reg.model_name}/{champion}", "--env-manager", "local",
                    "--host", "127.0.0.1", "--port", str(ml_port), "--workers", "1"],
                   {"MLFLOW_TRACKING_URI": reg.tracking_uri},
                   f"http://127.0.0.1:{ml_port}/ping", logs / "mlflow.log")
        try:
            ours = load(f"http://127.0.0.1:{gl_port}/predict", lambda i: rows[i % len(rows)],
                        opts.seconds, opts.concurrency)
            theirs = load(f"http://127.0.0.1:{ml_port}/invocations",
                          lambda i: {"dataframe_records": [rows[i % len(rows)]]},
                          opts.seconds, opts.concurrency)
        finally:
            os.killpg(ml.pid, 15)
            ml.wait(30)
        print("throughput, single-row requests, one worker process each:")
        for name, r in (("greenlight serve", ours), ("mlflow models serve", theirs)):
            print(f"  {name:20s} {r['rps']:7.1f} req/s  {pct(r['lat'])}  failed {r['failed']}")
        print(f"  ratio {ours['rps'] / max(theirs['rps'], 1e-9):.2f}x\n")

        path = [aliases(reg)["champion"]]

        def switches() -> None:
            gap = opts.seconds / 4
            for move in ("rollback", "promote", "rollback"):
                time.sleep(gap)
                if move == "rollback":
                    rollback(reg, reason="benchmark: alias switch under load")
                else:
                    promote(reg, champion, reason="benchmark: alias switch under load",
                            expected_from=aliases(reg)["champion"])
                path.append(aliases(reg)["champion"])

        run = load(f"http://127.0.0.1:{gl_port}/predict", lambda i: rows[i % len(rows)],
                   opts.seconds, opts.concurrency, during=switches)
        served = httpx.get(f"http://127.0.0.1:{gl_port}/model").json()["serving"]["champion"]
        print(f"load with 3 alias switches ({' -> '.join(f'v{v}' for v in path)}): "
              f"{run['ok']} ok, "
              f"{run['failed']} failed {run['why'] or ''}; serving v{served['version']} after")
    finally:
        os.killpg(gl.pid, 15)
        gl.wait(30)


if __name__ == "__main__":
    main()
