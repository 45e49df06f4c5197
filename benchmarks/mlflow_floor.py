"""What F_mlflow is made of: MLflow's import, its SQLite store, and the same read on a server.

F_mlflow (benchmarks/fixed_cost.py) is a `python -c` that imports mlflow and reads
`@champion`. This splits it, each case in its own process, alternating, medians of wall and
CPU seconds: an empty interpreter; `import mlflow`; the import plus a SQLite client's first
call (SQLAlchemy and alembic's migration check on creating the store); F_mlflow on SQLite;
and, with `--server`, F_mlflow against an MLflow server on the same store.

    uv run python benchmarks/mlflow_floor.py --home .greenlight [--server http://127.0.0.1:5000]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MODEL = "greenlight-synthetic"
ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def cases(store: str, server: str | None) -> dict[str, str]:
    read = "print(c.get_model_version_by_alias({model!r}, 'champion').version)"
    out = {"python -c pass": "pass",
           "import mlflow": "import mlflow",
           "import mlflow + SQLite client's first call":
               f"import mlflow; c = mlflow.MlflowClient({store!r}); "
               "c.search_experiments(max_results=1)",
           "F_mlflow (SQLite)": f"import mlflow; c = mlflow.MlflowClient({store!r}); "
                                + read.format(model=MODEL)}
    if server:
        out["F_mlflow (server)"] = (f"import mlflow; c = mlflow.MlflowClient({server!r}); "
                                    + read.format(model=MODEL))
    return out


def timed(code: str) -> tuple[float, float]:
    """Wall and CPU seconds of `python -c code` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, **ENV})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a state dir with a champion")
    parser.add_argument("--server", default=None, help="an MLflow server on the same store")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    store = f"sqlite:///{args.home.resolve() / 'mlflow.db'}"
    runs = cases(store, args.server)
    walls: dict[str, list[float]] = {k: [] for k in runs}
    cpus: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, code in runs.items():
            wall, cpu = timed(code)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"{time.strftime('%Y-%m-%d')}, load {os.getloadavg()[0]:.1f}, medians of "
          f"{args.repeats}\n\n| what | wall | CPU |\n|---|---|---|")
    for name in runs:
        print(f"| {name} | {statistics.median(walls[name]):.2f} s | "
              f"{statistics.median(cpus[name]):.2f} s |")


if __name__ == "__main__":
    main()
