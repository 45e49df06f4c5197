"""Fixed costs: each command next to its floor, measured in the same run (issue "light").

Floors, each in its own process (or in-process for drift):
- F_mlflow: a `python -c` that imports mlflow and reads @champion from the same store.
- F_stack:  a `python -c` that imports pandas, lightgbm, mlflow, prefect, evidently and
  great_expectations.
- F_drift:  Evidently's DataDriftPreset alone on the same batch and reference, in-process
  (benchmarks/monitoring_speed.py `monitor_vs_drift`).

Goals: status, rollback, approve and serve start-up <= 1.2x F_mlflow; `--help` and an empty
`run` <= 1 s and <= 0.2x F_stack; `run` on one new 3,000-row batch (no retrain, fresh
process) <= 1.3x F_stack; the monitor step <= 2x F_drift; `greenlight demo` <= 90 s on an
idle machine. Commands and floors alternate, so load hits both alike; medians are printed,
wall and CPU (user + system of the process and the children it waited for).

    uv run python benchmarks/fixed_cost.py                      # everything, 3 repeats
    uv run python benchmarks/fixed_cost.py --repeats 5 --skip demo,retrain
    uv run python benchmarks/fixed_cost.py --tree /path/to/other/checkout   # its commands

`--tree` runs the commands of another checkout (its .venv), for a before/after on one
machine; the in-process figures always come from this checkout.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUIET_ENV = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
             "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GIT_PYTHON_REFRESH": "quiet",
             "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
STACK = "import pandas, lightgbm, mlflow, prefect, evidently, great_expectations"
MODEL = "greenlight-synthetic"
DEMO_GOAL_S = 90.0
# Measured on the code before this work (69ee1c9), same machine, 2026-12-01, load ~1:
# `uv run greenlight demo` 132 s inside (146 s wall).
DEMO_BEFORE_S = 132.0


class Timer:
    """Wall and CPU seconds of whole processes, kept per name."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def run(self, name: str, argv: list[str], env: dict[str, str], check: bool = True) -> str:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if check and done.returncode != 0:
            raise SystemExit(f"{name}: exit {done.returncode}: {done.stderr.strip()[-400:]}")
        self.add(name, wall, (after.ru_utime - before.ru_utime)
                 + (after.ru_stime - before.ru_stime))
        return done.stdout

    def add(self, name: str, wall: float, cpu: float | None = None) -> None:
        self.wall.setdefault(name, []).append(wall)
        if cpu is not None:
            self.cpu.setdefault(name, []).append(cpu)

    def median(self, name: str, cpu: bool = False) -> float:
        values = (self.cpu if cpu else self.wall).get(name, [])
        return statistics.median(values) if values else float("nan")


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    return {**env, **QUIET_ENV, "GREENLIGHT_HOME": str(home),
            "PREFECT_HOME": str(home / "prefect"), **extra}


def build_state(tree: Path, work: Path, timer: Timer) -> Path:
    """The demo's state (20 synthetic batches, 4 versions): timed, it is the demo figure."""
    home = work / "demo"
    out = timer.run("greenlight demo", [str(tree / ".venv/bin/greenlight"), "demo", "--home",
                                        str(home)], env_for(home))
    table = [line for line in out.splitlines() if "│" in line or "champion:" in line]
    print("\n".join(table))
    return home


def copy_state(home: Path, work: Path, name: str) -> Path:
    target = work / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(home, target, symlinks=True)
    return target


def land_stable_batch(home: Path) -> None:
    """One more 3,000-row week of the synthetic stream, after the last change point."""
    from tasks.data import replay as sources

    sources.write_batch(sources.synthetic_batch(20, seed=7), home / "landing")
    old = time.time() - 60  # settled: the scan takes it at once
    for path in (home / "landing").iterdir():
        os.utime(path, (old, old))


def registry_figures(tree: Path, home: Path, work: Path, timer: Timer, repeats: int) -> None:
    gl, py = str(tree / ".venv/bin/greenlight"), str(tree / ".venv/bin/python")
    floor = (f"import mlflow; c = mlflow.MlflowClient('sqlite:///{home}/mlflow.db'); "
             f"print(c.get_model_version_by_alias('{MODEL}', 'champion').version)")
    rolled = copy_state(home, work, "rollback")
    unreachable = {"PREFECT_API_URL": "http://127.0.0.1:9/api"}
    for i in range(repeats):
        timer.run("F_mlflow", [py, "-c", floor], env_for(home))
        timer.run("F_stack", [py, "-c", STACK], env_for(home))
        timer.run("status", [gl, "status", "--home", str(home)], env_for(home))
        timer.run("rollback", [gl, "rollback", "--home", str(rolled), "--by", "bench",
                               "--reason", f"benchmark {i}"], env_for(rolled))
        # approve's start-up: imports and the reachability check, up to the first request
        timer.run("approve", [gl, "approve", "00000000-0000-0000-0000-000000000000",
                              "--approve", "--by", "bench"], env_for(home, **unreachable),
                  check=False)
        timer.run("--help", [gl, "--help"], env_for(home))
        timer.run("run, nothing new", [gl, "run", "--home", str(home)], env_for(home))
        fresh = copy_state(home, work, "one-batch")
        land_stable_batch(fresh)
        out = timer.run("run, one 3,000-row batch", [gl, "run", "--home", str(fresh)],
                        env_for(fresh))
        if '"decision": "no action"' not in out and "no action" not in out:
            print(f"  warning: the one-batch run did not end in 'no action': {out[-300:]}")


def in_process(timer: Timer, repeats: int, skip: set[str]) -> None:
    """The figures the helpers of the other benchmarks measure in one process."""
    optional: list[tuple[str, str, str, Callable[[dict], None]]] = [
        ("monitor", "benchmarks.monitoring_speed", "monitor_vs_drift",
         lambda r: (timer.add("monitor step", r["monitor_s"]),
                    timer.add("F_drift", r["drift_s"]))),
        ("retrain", "benchmarks.retrain_speed", "retrain_seconds",
         lambda r: timer.add("retrain", r["total"])),
    ]
    for key, module, name, keep in optional:
        if key in skip:
            continue
        try:
            fn = getattr(__import__(module, fromlist=[name]), name)
        except (ImportError, AttributeError):
            print(f"  ({module}.{name} not available: {key} skipped)")
            continue
        keep(fn(repeats=repeats))


def serve_figure(home: Path, timer: Timer, repeats: int) -> None:
    """`greenlight serve` of this checkout until /health answers (benchmarks/serving_speed.py)."""
    try:
        from benchmarks.serving_speed import serve_startup_seconds
    except (ImportError, AttributeError):
        print("  (benchmarks.serving_speed.serve_startup_seconds not available: serve skipped)")
        return
    timer.add("serve start-up", serve_startup_seconds(home, repeats=repeats))


def row(timer: Timer, name: str, floor: str | None, goal: float | None,
        absolute: float | None = None) -> str:
    wall, cpu = timer.median(name), timer.median(name, cpu=True)
    text = f"| {name} | {wall:.2f} s | {cpu:.2f} s |"
    if floor is None:
        return text + " | | " + (f"<= {absolute:.0f} s" if absolute else "") + " |"
    ratio = wall / timer.median(floor)
    goal_text = f"<= {goal}x {floor}" + (f" and <= {absolute:.0f} s" if absolute else "")
    met = ratio <= goal and (absolute is None or wall <= absolute)
    return text + f" {ratio:.2f}x {floor} | {goal_text} {'(met)' if met else '(NOT met)'} |"


def report(timer: Timer) -> None:
    print(f"\n{time.strftime('%Y-%m-%d')}, load {os.getloadavg()[0]:.1f}, "
          f"medians of {len(timer.wall.get('F_mlflow', [])) or '-'} alternating runs\n")
    print("| what | wall | CPU | ratio | goal |\n|---|---|---|---|---|")
    for name in ("F_mlflow", "F_stack", "F_drift"):
        if name in timer.wall:
            print(row(timer, name, None, None))
    lines = [("status", "F_mlflow", 1.2, None), ("rollback", "F_mlflow", 1.2, None),
             ("approve", "F_mlflow", 1.2, None), ("serve start-up", "F_mlflow", 1.2, None),
             ("--help", "F_stack", 0.2, 1.0), ("run, nothing new", "F_stack", 0.2, 1.0),
             ("run, one 3,000-row batch", "F_stack", 1.3, None),
             ("monitor step", "F_drift", 2.0, None)]
    for name, floor, goal, absolute in lines:
        if name in timer.wall:
            print(row(timer, name, floor, goal, absolute))
    if "retrain" in timer.wall:
        print(row(timer, "retrain", None, None))
    if "greenlight demo" in timer.wall:
        print(row(timer, "greenlight demo", None, None, DEMO_GOAL_S)
              + f" (before: {DEMO_BEFORE_S:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma list of: demo, registry, serve, "
                                                   "monitor, retrain")
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="checkout whose commands are timed (default: this one)")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    timer = Timer()
    with tempfile.TemporaryDirectory(prefix="greenlight-fixed-cost-") as tmp:
        work = Path(tmp)
        home = build_state(args.tree.resolve(), work, timer)
        if "demo" in skip:
            timer.wall.pop("greenlight demo", None)
        if "registry" not in skip:
            registry_figures(args.tree.resolve(), home, work, timer, args.repeats)
        if "serve" not in skip:
            serve_figure(home, timer, args.repeats)
        in_process(timer, args.repeats, skip)
    report(timer)


if __name__ == "__main__":
    main()
