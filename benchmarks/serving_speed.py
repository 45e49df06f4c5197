"""Serving speed: single-row latency, throughput against `mlflow models serve` on the same
model (single-row and 100-row requests), a load run with three alias switches (failed
requests must be 0), and optionally `greenlight serve`'s start-up time.

It builds its own state dir (v1, then v2 as champion, trained, registered and promoted by the
loop's own code, with no Prefect: a busy machine made Prefect's temporary server miss its
start limit), unless `--home` points at one that has a champion and a previous.

    uv run python benchmarks/serving_speed.py                         # the figures in the note
    uv run python benchmarks/serving_speed.py --seconds 5 --concurrency 4
    uv run python benchmarks/serving_speed.py --startup 3             # + start-up, 3 launches
    uv run python benchmarks/serving_speed.py --startup 5 --only-startup  # start-up alone
    uv run python benchmarks/serving_speed.py --ensemble 20           # an ensemble champion

`--ensemble N` first promotes an ensemble of N members as the champion: N copies of the
champion's booster (the same trees, so the same cost per member as N recipes' boosters of
the default size; a real ensemble's members differ in what they learned, not in size),
weighted equally, registered and served like any version (tasks.training.model
`GreenlightModel.ensemble`). The default recipe grid has 10 recipes, 20 with leaf refits.
"""

from __future__ import annotations

import argparse
import json
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

from cli import stack
from registry.promote import promote, rollback
from registry.versions import aliases
from serving.app import create_app
from tests.approval_helpers import registry
from tests.serving_helpers import records, two_versions_direct

ROOT = Path(__file__).resolve().parents[1]
ENV = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "MLFLOW_LOGGING_LEVEL": "ERROR",
       "GIT_PYTHON_REFRESH": "quiet", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
BATCH = 100  # rows per request in the batch throughput run


def pct(values: list[float]) -> str:
    return f"p50 {np.percentile(values, 50):.2f} ms  p99 {np.percentile(values, 99):.2f} ms"


def start(args: list[str], env: dict[str, str], health: str, log: Path,
          poll: float = 0.5) -> subprocess.Popen:
    """A server process; returns once `health` answers 200 (asked every `poll` seconds)."""
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
        time.sleep(poll)
    proc.terminate()
    raise RuntimeError(f"{health} never answered; see {log}")


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group: a
    server's own cost per request, which the other loads on a shared machine barely move
    (its throughput moves with them)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def load(url: str, body: Callable[[int], Any], seconds: float, concurrency: int,
         during: Callable[[], None] | None = None, pgid: int | None = None) -> dict[str, Any]:
    """`concurrency` clients posting `body(i)` for `seconds`; counts and latencies.

    The bodies are encoded once, before the clock starts (a cycle of 64): the clients share
    the 2 cores with the servers, and JSON-encoding 100 rows per request in the load
    generator would charge both servers for work that is not theirs."""
    encoded = [json.dumps(body(i)).encode() for i in range(64)]
    headers = {"content-type": "application/json"}
    stop, lock = threading.Event(), threading.Lock()
    lat: list[float] = []
    fails: list[str] = []

    def client(worker: int) -> None:
        with httpx.Client(timeout=30) as http:
            i = worker
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    r = http.post(url, content=encoded[i % len(encoded)], headers=headers)
                    ok, why = r.status_code == 200, f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                with lock:
                    (lat.append((time.perf_counter() - t) * 1000) if ok else fails.append(why))
                i += concurrency

    threads = [threading.Thread(target=client, args=(w,)) for w in range(concurrency)]
    cpu0 = group_cpu_seconds(pgid) if pgid else 0.0
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
    cpu = group_cpu_seconds(pgid) - cpu0 if pgid else float("nan")
    return {"ok": len(lat), "failed": len(fails), "rps": len(lat) / elapsed, "lat": lat,
            "why": sorted(set(fails))[:3], "cpu_ms": cpu * 1000 / max(len(lat), 1)}


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


def serve_startup_once(home: Path, tree: Path = ROOT) -> float:
    """Seconds from launching `<tree>/.venv/bin/greenlight serve --home HOME --port P` until
    /health answers 200 (`home` must hold a champion): what a restart costs a service. The
    script itself, as benchmarks/fixed_cost.py times every command: `uv run` would add its
    own start-up to the figure."""
    port = stack.free_port()
    with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as log:
        t = time.perf_counter()
        proc = start([str(tree / ".venv/bin/greenlight"), "serve", "--home", str(home),
                      "--port", str(port), "--poll-seconds", "3600"], {},
                     f"http://127.0.0.1:{port}/health", Path(log.name), poll=0.05)
        seconds = time.perf_counter() - t
    os.killpg(proc.pid, 15)
    proc.wait(30)
    Path(log.name).unlink()
    return seconds


def serve_startup_seconds(home: Path, repeats: int = 3, tree: Path = ROOT) -> float:
    """Median of `repeats` launches (`serve_startup_once`)."""
    return float(np.median([serve_startup_once(home, tree) for _ in range(repeats)]))


def mlflow_floor_once(home: Path) -> float:
    """F_mlflow: seconds of a `python -c` that imports mlflow and reads @champion."""
    reg = registry(home)
    code = (f"import mlflow; c = mlflow.MlflowClient(tracking_uri={reg.tracking_uri!r}); "
            f"print(c.get_model_version_by_alias({reg.model_name!r}, 'champion').version)")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env={**os.environ, **ENV}, check=True,
                   capture_output=True)
    return time.perf_counter() - t


def mlflow_floor_seconds(home: Path, repeats: int = 3) -> float:
    """Median of `repeats` F_mlflow runs (`mlflow_floor_once`)."""
    return float(np.median([mlflow_floor_once(home) for _ in range(repeats)]))


def startup_vs_floor(home: Path, repeats: int) -> None:
    """Serve start-up against F_mlflow, alternated (a load change on the shared machine hits
    both), as medians and the median of the pairs' ratios."""
    pairs = [(mlflow_floor_once(home), serve_startup_once(home)) for _ in range(repeats)]
    floor, boot = (float(np.median(side)) for side in zip(*pairs, strict=True))
    ratios = [b / f for f, b in pairs]
    print(f"\n`greenlight serve` start-up until /health is 200: {boot:.2f} s (median of "
          f"{repeats}); F_mlflow {floor:.2f} s; ratio of medians {boot / floor:.2f}x, median "
          f"of pair ratios {np.median(ratios):.2f}x (pairs: "
          f"{', '.join(f'{x:.2f}' for x in ratios)}; goal <= 1.2x)")


def compare(gl: tuple[str, int], ml: tuple[str, int], rows: list[dict[str, Any]], size: int,
            seconds: float, concurrency: int, rounds: int) -> None:
    """Throughput of both services on requests of `size` rows: `rounds` A/B pairs of
    `seconds` each, alternated so a load change on the shared machine hits both; the ratio
    is the median of the pairs' ratios."""
    def chunk(i: int) -> Any:
        start = (i * size) % (len(rows) - size + 1)
        return rows[start] if size == 1 else rows[start:start + size]

    pairs = [(load(gl[0], chunk, seconds, concurrency, pgid=gl[1]),
              load(ml[0], lambda i: {"dataframe_records": [chunk(i)] if size == 1 else chunk(i)},
                   seconds, concurrency, pgid=ml[1])) for _ in range(rounds)]
    kind = "single-row" if size == 1 else f"{size}-row"
    print(f"throughput, {kind} requests, one worker process each ({rounds} alternated pairs "
          f"of {seconds:g} s):")
    for name, side in (("greenlight serve", 0), ("mlflow models serve", 1)):
        runs = [pair[side] for pair in pairs]
        rps = [r["rps"] for r in runs]
        lat = [x for r in runs for x in r["lat"]]
        print(f"  {name:20s} {np.median(rps):7.1f} req/s  {np.median(rps) * size:8.0f} rows/s"
              f"  {pct(lat)}  CPU {np.median([r['cpu_ms'] for r in runs]):.2f} ms/req"
              f"  failed {sum(r['failed'] for r in runs)}"
              f"  (runs: {', '.join(f'{x:.0f}' for x in rps)})")
    ratios = [ours["rps"] / max(theirs["rps"], 1e-9) for ours, theirs in pairs]
    cpu = [theirs["cpu_ms"] / max(ours["cpu_ms"], 1e-9) for ours, theirs in pairs]
    print(f"  ratio {np.median(ratios):.2f}x (median; pairs: "
          f"{', '.join(f'{x:.2f}' for x in ratios)}); server CPU per request: "
          f"mlflow / greenlight {np.median(cpu):.2f}x\n")


def promote_ensemble(home: Path, members: int) -> int:
    """Register an ensemble of `members` copies of the champion and promote it (above)."""
    import copy

    from registry.register import register
    from registry.versions import load_model
    from tasks.data import replay as sources
    from tasks.training.model import GreenlightModel

    reg = registry(home)
    champion = aliases(reg)["champion"]
    one = load_model(reg, champion)
    model = GreenlightModel.ensemble([copy.deepcopy(one) for _ in range(members)],
                                     [1.0] * members)
    example = one.example(sources.synthetic_stream(seed=7)[15].frame.head(20))
    version = register(reg, python_model=model, input_example=example,
                       output_example=model.predict(None, example), reference=example,
                       batch_set=f"bench-ensemble-{members}", params={}, metrics={}, tags={},
                       experiment=f"{reg.model_name}-training").version
    promote(reg, version, reason=f"benchmark: an ensemble of {members}",
            expected_from=champion)
    return version


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, help="State dir with @champion and @previous.")
    ap.add_argument("--seconds", type=float, default=5.0, help="Length of each load run.")
    ap.add_argument("--rounds", type=int, default=3,
                    help="Alternated greenlight/mlflow pairs per request size.")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency-requests", type=int, default=500)
    ap.add_argument("--startup", type=int, default=0, metavar="N",
                    help="Also time N launches of `greenlight serve` against F_mlflow.")
    ap.add_argument("--only-startup", action="store_true",
                    help="Skip latency, throughput and switches: the start-up figure alone.")
    ap.add_argument("--ensemble", type=int, default=0, metavar="N",
                    help="Serve an ensemble of N members as the champion (docstring).")
    opts = ap.parse_args()
    os.environ.update(ENV)
    home = opts.home or Path(tempfile.mkdtemp(prefix="gl-bench-serving-")) / "gl"
    if not opts.home:
        print(f"building two versions in {home} ...", flush=True)
        two_versions_direct(home)
    if opts.ensemble:
        print(f"champion: an ensemble of {opts.ensemble} members, "
              f"v{promote_ensemble(home, opts.ensemble)}", flush=True)
    reg = registry(home)
    champion = aliases(reg)["champion"]
    rows = records(n=500)
    if opts.only_startup:
        startup_vs_floor(home, opts.startup or 3)
        return
    print(f"model {reg.model_name} v{champion}, {opts.concurrency} clients, "
          f"{opts.seconds:.0f} s per load run, {os.cpu_count()} cores\n")
    latency(home, rows, opts.latency_requests)

    logs = home / "bench-logs"
    logs.mkdir(exist_ok=True)
    gl_port, ml_port = stack.free_port(), stack.free_port()
    gl = start([sys.executable, "-m", "cli.main", "serve", "--port", str(gl_port),
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
            for size in (1, BATCH):
                compare((f"http://127.0.0.1:{gl_port}/predict", gl.pid),
                        (f"http://127.0.0.1:{ml_port}/invocations", ml.pid), rows, size,
                        opts.seconds, opts.concurrency, opts.rounds)
        finally:
            os.killpg(ml.pid, 15)
            ml.wait(30)

        path, switch_seconds = [aliases(reg)["champion"]], 2 * opts.seconds

        def switches() -> None:
            gap = switch_seconds / 4
            for move in ("rollback", "promote", "rollback"):
                time.sleep(gap)
                if move == "rollback":
                    rollback(reg, reason="benchmark: alias switch under load")
                else:
                    promote(reg, champion, reason="benchmark: alias switch under load",
                            expected_from=aliases(reg)["champion"])
                path.append(aliases(reg)["champion"])

        run = load(f"http://127.0.0.1:{gl_port}/predict", lambda i: rows[i % len(rows)],
                   switch_seconds, opts.concurrency, during=switches)
        served = httpx.get(f"http://127.0.0.1:{gl_port}/model").json()["serving"]["champion"]
        print(f"load with 3 alias switches ({' -> '.join(f'v{v}' for v in path)}): "
              f"{run['ok']} ok, "
              f"{run['failed']} failed {run['why'] or ''}; serving v{served['version']} after")
    finally:
        os.killpg(gl.pid, 15)
        gl.wait(30)
    if opts.startup:
        startup_vs_floor(home, opts.startup)


if __name__ == "__main__":
    main()
