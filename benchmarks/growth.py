"""How a cycle's cost grows with the batch: time per step and peak RSS at 1e5, 1e6, 1e7 rows.

Each size runs in two fresh processes, so one size's memory never shows in another's:
- set-up (not timed): a small first batch makes the champion through a real cycle, then
  `--history-factor` batches of N rows each are filed in the lake as already decided (the
  history a retrain reads), and one new N-row batch of the synthetic stream lands (parquet);
- measure: a warm-up flow starts embedded Prefect, then one full cycle runs with
  force_retrain and min_delta=-1 (ingest, validate, monitor, recipe, train, gate, register,
  promote all run) and prints the per-step seconds the cycle records
  (`core.steps.Steps`), the wall and CPU time of the cycle and the peak RSS of the
  process (`resource.getrusage`, imports included).

Per-row cost is cycle seconds / (batch + history rows). Goals (issue 8): a 1M-row batch
with 5M rows of history in <= 3 min and <= 6 GB; per-row cost at 1e7 within 1.2x of 1e5.

    uv run python benchmarks/growth.py --sizes 1e6              # the 3-minute goal: 5x history
    uv run python benchmarks/growth.py --history-factor 1       # 1e5, 1e6, 1e7 (1e7 + 5e7
                                                                # rows do not fit in 24 GB)
    uv run python benchmarks/growth.py --dask --sizes 1e6,1e7 --history-factor 1

With `--dask` every heavy step goes to Dask (`scale.dask_min_rows=1`): a LocalCluster of one
single-threaded worker process per core, started by the measuring process after the warm-up
(so the workers report to its Prefect API), read, validate and write the landed batch and
monitor it from the lake (tasks/scale/landed.py), and train with lightgbm.dask. The peak RSS
is then the flow's process (the scheduler runs in it) and the workers' peaks summed (each
worker's own `getrusage`, asked before the cluster closes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUIET = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
         "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GIT_PYTHON_REFRESH": "quiet",
         "PREFECT_LOGGING_LEVEL": "WARNING", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
         "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
         "GREENLIGHT_SETTLE_SECONDS": "0", "GREENLIGHT_MAX_BATCH_BYTES": str(64 << 30)}
CHAMPION_ROWS = 20_000  # the first champion's batch: small, so set-up stays cheap
STEPS = ("ingest+validate", "label check", "late labels", "monitor", "recipe", "train", "gate",
         "estimator", "refit", "register", "promote")


def peak_rss_gb() -> float:
    """This process's peak resident set (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)


def cpu_seconds() -> float:
    """CPU time of this process: on a shared machine, less noisy than wall time (the fits
    use one thread, so on an idle machine the two are close)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def set_up(root: Path, rows: int, factor: int) -> None:
    """Champion from a small batch, `factor` N-row batches of history, one N-row batch landed."""
    from flows.cycle import cycle
    from tasks.data import ingest, lake, manifest
    from tasks.data import replay as sources
    from tasks.data.home import Home
    from tasks.data.spec import load_spec

    home, spec = Home.from_env(root).ensure(), load_spec("synthetic")
    sources.write_batch(sources.synthetic_batch(0, rows=CHAMPION_ROWS), home.landing, "parquet")
    cycle(dataset="synthetic", home=str(root))
    for index in range(1, factor + 1):
        batch = sources.synthetic_batch(index, rows=rows)
        kept, _ = ingest.tidy(batch.frame, spec)
        batch_id = f"history{index:02d}"
        lake.write_partition(home.lake, batch_id, kept)
        times = kept[spec.time_column]
        # with its content hash, as accept records it: else the new batch's duplicate check
        # hashes this one from the lake, in the flow's process, once (a legacy batch's cost)
        manifest.append(home.manifest, batch_id, file=f"{batch.label}.parquet", status="accepted",
                        rows=len(kept), time_min=times.min(), time_max=times.max(),
                        content=ingest.content_hash(kept, spec),
                        decision="history (benchmark set-up)")
    sources.write_batch(sources.synthetic_batch(factor + 1, rows=rows), home.landing, "parquet")


def _worker_peak_kib() -> int:
    """Run on each Dask worker: its own peak resident set."""
    import resource as res

    return res.getrusage(res.RUSAGE_SELF).ru_maxrss


def _cluster() -> object:
    """The benchmark's LocalCluster: one single-threaded worker process per core, as the cycle
    would start, reporting to this process's (embedded) Prefect API."""
    from distributed import LocalCluster
    from prefect import get_client

    api_url = str(get_client(sync_client=True).api_url or "")
    return LocalCluster(n_workers=max(1, os.cpu_count() or 1), threads_per_worker=1,
                        processes=True, dashboard_address=":0",
                        env={"PREFECT_API_URL": api_url} if api_url else {})


def measure(root: Path, dask: bool = False) -> dict:
    """One forced cycle on what set_up left, after a warm-up flow (embedded Prefect start)."""
    from prefect import flow

    from flows.cycle import cycle
    from flows.params import Scale, Training

    @flow(name="warm-up")
    def warm_up() -> None:
        """Starts embedded Prefect, so its ~10 s cold start is not in the cycle's time."""

    warm_up()
    cluster = _cluster() if dask else None
    scale = Scale(dask_min_rows=1, dask_address=cluster.scheduler_address) if dask else Scale()
    start, cpu = time.perf_counter(), cpu_seconds()
    # min_delta=-1: the gate passes, so register and promote run at every size too
    summary = cycle(dataset="synthetic", home=str(root), force_retrain=True,
                    training=Training(min_delta=-1.0), scale=scale)
    seconds = time.perf_counter() - start
    workers_gb = 0.0
    if cluster is not None:
        from distributed import Client

        with Client(cluster) as client:
            workers_gb = sum(client.run(_worker_peak_kib).values()) / (1 << 20)
        cluster.close()
    return {"seconds": seconds, "cpu": cpu_seconds() - cpu, "timings": summary["timings"],
            "rss_gb": peak_rss_gb(), "workers_gb": workers_gb, "load": os.getloadavg()[0],
            "decision": summary.get("decision"), "verdict": summary.get("verdict"),
            "promoted": summary.get("promoted_version")}


def _child(args: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"growth {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_size(rows: int, factor: int, work: Path, dask: bool = False) -> dict:
    root, env = work / f"n{rows}", {**os.environ, **QUIET,
                                    "PREFECT_HOME": str(work / f"prefect-{rows}")}
    start = time.perf_counter()
    _child(["--set-up", str(rows), "--history-factor", str(factor), "--root", str(root)], env)
    setup = time.perf_counter() - start
    result = _child(["--measure", "--root", str(root), *(["--dask"] if dask else [])], env)
    return {**result, "rows": rows, "history": rows * factor, "setup_seconds": setup}


def print_table(results: list[dict]) -> None:
    steps = [s for s in STEPS if any(s in r["timings"] for r in results)]
    head = f"{'batch':>10}{'history':>11}" + "".join(f"{s[:9]:>10}" for s in steps)
    print(head + f"{'cycle s':>9}{'CPU s':>8}{'RSS GB':>8}{'wkr GB':>8}{'us/row':>8}"
                 f"{'load':>6}  verdict")
    for r in results:
        rows = r["rows"] + r["history"]
        r["us_per_row"], r["cpu_us_per_row"] = r["seconds"] / rows * 1e6, r["cpu"] / rows * 1e6
        cells = "".join(f"{r['timings'].get(s, float('nan')):>10.1f}" for s in steps)
        print(f"{r['rows']:>10,}{r['history']:>11,}{cells}{r['seconds']:>9.1f}{r['cpu']:>8.1f}"
              f"{r['rss_gb']:>8.2f}{r.get('workers_gb', 0.0):>8.2f}{r['us_per_row']:>8.2f}"
              f"{r['load']:>6.1f}  {r['decision']}, "
              f"gate {r['verdict']}, promoted v{r['promoted']}")
    if len(results) > 1:
        small, big = results[0], results[-1]
        print(f"per-row cost at {big['rows']:,} / at {small['rows']:,}: wall "
              f"{big['us_per_row'] / small['us_per_row']:.2f}x, CPU "
              f"{big['cpu_us_per_row'] / small['cpu_us_per_row']:.2f}x (goal <= 1.2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,1e6,1e7", help="batch rows, comma-separated")
    parser.add_argument("--history-factor", type=int, default=5,
                        help="history = this many earlier batches of the same size")
    parser.add_argument("--keep", action="store_true", help="keep the state dirs")
    parser.add_argument("--dask", action="store_true",
                        help="every heavy step on a LocalCluster (scale.dask_min_rows=1)")
    parser.add_argument("--set-up", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.set_up:
        set_up(args.root, args.set_up, args.history_factor)
        print(json.dumps({"ok": True}))
        return
    if args.measure:
        print(json.dumps(measure(args.root, args.dask), default=str))
        return
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="greenlight-growth-"))
    engine = " on Dask" if args.dask else ""
    print(f"growth{engine}: synthetic batches of {', '.join(f'{n:,}' for n in sizes)} rows, "
          f"history "
          f"{args.history_factor}x; state in {work}; load {os.getloadavg()[0]:.2f}")
    results = []
    for rows in sizes:
        results.append(run_size(rows, args.history_factor, work, args.dask))
        r = results[-1]
        print(f"  {rows:,}: cycle {r['seconds']:.1f} s, peak RSS {r['rss_gb']:.2f} GB "
              f"(+ workers {r['workers_gb']:.2f} GB) "
              f"(set-up {r['setup_seconds']:.0f} s); {json.dumps(r['timings'])}", flush=True)
    print_table(results)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
