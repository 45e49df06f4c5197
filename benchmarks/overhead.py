"""What Prefect costs: one full cycle on a weekly Elec2 batch, as a flow against a running
Prefect server and as plain function calls, in the same process, from the same state.

Set-up (not timed): a Prefect server on loopback (`cli.stack`, as `greenlight up` and
the test fixtures start it), then the first `--warmup` weeks of Elec2 make the champion
through a real cycle, and the state dir is copied aside. Every repetition restores that
copy, lands the next week and runs one cycle with force_retrain, min_delta=-1 and a gate
window of 60% of the week (the gate wants 200 rows; the set-up cycle uses the same), so
ingest, validate, monitor, recipe, train, gate, register and promote all run every time:
- flow: `flows.cycle.cycle` as users run it (task runs, logs, artifacts, events and the
  promotion lock on the server);
- plain: the same flow body (`cycle.fn`) with every task replaced by its function
  (`.fn`), Prefect's logger by a standard one, artifacts and events by no-ops, and the
  promotion lock by the file lock alone (as embedded).
The two alternate, after one discarded run of each; the ratio is of the medians. The flow
runs as greenlight runs it: with Prefect's flow-run heartbeat off (flows/heartbeat.py), since
nothing reads heartbeats unless a zombie-run automation is set up. A third kind, `flow,
heartbeat on`, sets PREFECT_FLOWS_HEARTBEAT_FREQUENCY as a team with such an automation
would: Prefect 3.8 and 3.9 join the heartbeat thread when a run ends, and that thread
sleeps in 1 s steps (`prefect/flow_engine.py`, `_send_heartbeats`), so each run then pays
up to a second. Then a fresh process runs the same cycle embedded (no server) twice: the
first run's extra time is Prefect's cold start (the temporary server), reported apart.

    uv run python benchmarks/overhead.py [--repeats 5] [--warmup 26]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.growth import QUIET  # noqa: E402

DATASET = "elec2"


def batches(warmup: int) -> tuple[list, object]:
    """The warm-up weeks and the week each timed cycle lands."""
    from tasks.data import replay as sources
    from tasks.data.spec import load_spec

    weeks = sources.cut_batches(sources.load_dataset(DATASET), load_spec(DATASET), "W")
    return weeks[:warmup], weeks[warmup]


def training():
    """Forced promotion: min_delta=-1 makes every sane challenger pass the gate, and a gate
    window of 60% of the week is 201 rows, above the gate's 200-row minimum."""
    from flows.params import Training

    return Training(min_delta=-1.0, gate_fraction=0.6)


def restore_state(snapshot: Path, root: Path) -> None:
    """Back to a saved state, at the same paths (the MLflow store holds absolute ones).

    The SQLite store is copied in place with SQLite's backup API: MLflow keeps its
    connections open, and a replaced file would leave them on the deleted one."""
    import sqlite3

    root.mkdir(parents=True, exist_ok=True)
    for path in root.iterdir():
        if path.name != "mlflow.db":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in snapshot.iterdir():
        if path.name == "mlflow.db":
            with sqlite3.connect(path) as src, sqlite3.connect(root / path.name) as dst:
                src.backup(dst)
        elif path.is_dir():
            shutil.copytree(path, root / path.name)
        else:
            shutil.copy2(path, root / path.name)


def restore(snapshot: Path, root: Path, week: object) -> None:
    """Back to the champion's state, with the timed week landed."""
    from tasks.data import replay as sources

    restore_state(snapshot, root)
    sources.write_batch(week, root / "landing")


@contextlib.contextmanager
def without_prefect() -> Iterator[None]:
    """The cycle's steps as plain calls: no task runs, logs, artifacts, events or lease."""
    from prefect import Task

    import flows.cycle as fc
    import flows.retrain as fr
    from tasks.monitoring import alarms

    logger = logging.getLogger("greenlight.plain")
    with contextlib.ExitStack() as stack:
        for module in (fc, fr):
            for name, value in vars(module).items():
                if isinstance(value, Task):
                    stack.enter_context(mock.patch.object(module, name, value.fn))
            stack.enter_context(mock.patch.object(module, "get_run_logger", lambda: logger))
        stack.enter_context(mock.patch.object(fc, "create_markdown_artifact", lambda **_: None))
        stack.enter_context(mock.patch.object(fr, "create_table_artifact", lambda **_: None))
        stack.enter_context(mock.patch.object(fr, "promotion_lock",
                                              lambda _name: contextlib.nullcontext()))
        stack.enter_context(mock.patch.object(
            alarms, "emit", lambda raised, **_: sorted({a.event for a in raised})))
        yield


KINDS = ("plain", "flow", "flow, heartbeat on")


@contextlib.contextmanager
def heartbeat_on() -> Iterator[None]:
    """Prefect's flow-run heartbeat at its minimum of 30 s, as with a zombie-run automation."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        yield


def run_cycle(root: Path, kind: str) -> tuple[float, dict]:
    from flows.cycle import cycle

    kwargs = dict(dataset=DATASET, home=str(root), force_retrain=True, training=training())
    start = time.perf_counter()
    if kind == "plain":
        with without_prefect():
            summary = cycle.fn(**kwargs)
    elif kind == "flow":
        summary = cycle(**kwargs)
    else:
        with heartbeat_on():
            summary = cycle(**kwargs)
    seconds = time.perf_counter() - start
    if "promoted_version" not in summary:
        raise SystemExit(f"cycle did not promote ({summary.get('verdict')}): not comparable")
    return seconds, summary


def embedded(snapshot: Path, root: Path, warmup: int) -> dict:
    """Child process, no server: import time, the cold first cycle, then a warm one."""
    start = time.perf_counter()
    import flows.cycle  # noqa: F401

    imports = time.perf_counter() - start
    _, week = batches(warmup)
    out = {"imports": imports}
    for label in ("cold", "warm"):
        restore(snapshot, root, week)
        out[label] = run_cycle(root, "flow")[0]
    return out


def empty_flow_seconds(repeats: int = 3) -> float:
    """Median wall time of a flow run with no work: the fixed part of the overhead.

    With the heartbeat on, Prefect 3.8 adds up to a second: the heartbeat thread sleeps in
    1 s steps and is joined when the run ends."""
    from prefect import flow

    @flow(name="greenlight-empty")
    def empty() -> None:
        """Nothing: what is left is Prefect's own cost per flow run."""

    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        empty()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


@contextlib.contextmanager
def prefect_server(work: Path) -> Iterator[float]:
    """A server on loopback for this process; stopped (its process group) afterwards."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from cli import stack

    port = stack.free_port()
    start = time.perf_counter()
    proc = stack.start_prefect_server(work / "server", port)
    try:
        api = f"http://127.0.0.1:{port}/api"
        stack.wait_healthy(f"{api}/health", 180, proc)
        os.environ["PREFECT_API_URL"] = api
        with temporary_settings(updates={PREFECT_API_URL: api}):
            yield time.perf_counter() - start
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        stack.stop([proc])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each kind")
    parser.add_argument("--warmup", type=int, default=26, help="weeks before the timed one")
    parser.add_argument("--embedded", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(QUIET)
    if args.embedded:
        print(json.dumps(embedded(*args.embedded, args.warmup)))
        return
    work = Path(tempfile.mkdtemp(prefix="greenlight-overhead-"))
    root, snapshot = work / "home", work / "snapshot"
    os.environ["PREFECT_HOME"] = str(work / "prefect-client")
    first, week = batches(args.warmup)
    print(f"overhead: Elec2, champion from {len(first)} weeks, timed cycle on week {week.label} "
          f"({len(week.frame)} rows); load {os.getloadavg()[0]:.2f}", flush=True)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    steps: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    try:
        with prefect_server(work) as startup:
            print(f"Prefect server up in {startup:.1f} s", flush=True)
            from flows.cycle import cycle
            from tasks.data import replay as sources

            for b in first:
                sources.write_batch(b, root / "landing")
            made = cycle(dataset=DATASET, home=str(root), training=training())
            if "promoted_version" not in made:
                raise SystemExit(f"no champion from the warm-up weeks: {made.get('gate')}")
            shutil.copytree(root, snapshot)
            for i in range(args.repeats + 1):
                for kind in KINDS:
                    restore(snapshot, root, week)
                    seconds, summary = run_cycle(root, kind)
                    if i:  # the first of each warms caches and clients: discarded
                        times[kind].append(seconds)
                        steps[kind].append(summary["timings"])
                    print(f"  {kind:<18} run {i}: {seconds:.2f} s"
                          f"{'' if i else ' (discarded)'}", flush=True)
            empty = empty_flow_seconds()
            with heartbeat_on():
                empty_beating = empty_flow_seconds()
        child = subprocess.run(
            [sys.executable, __file__, "--embedded", str(snapshot), str(root),
             "--warmup", str(args.warmup)], capture_output=True, text=True, check=True,
            env={**os.environ, "PREFECT_HOME": str(work / "prefect-embedded")})
        cold = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plain, flow, beating = (statistics.median(times[kind]) for kind in KINDS)
    print("\nper step, median s (plain | flow): " + ", ".join(
        f"{s} {statistics.median(t[s] for t in steps['plain']):.2f} | "
        f"{statistics.median(t[s] for t in steps['flow']):.2f}"
        for s in steps["flow"][0] if s in steps["plain"][0]))
    print(f"plain calls  median {plain:.2f} s  ({', '.join(f'{t:.2f}' for t in times['plain'])})")
    print(f"flow+server  median {flow:.2f} s  ({', '.join(f'{t:.2f}' for t in times['flow'])})")
    print(f"flow+server, heartbeat on  median {beating:.2f} s  "
          f"({', '.join(f'{t:.2f}' for t in times['flow, heartbeat on'])})")
    print(f"overhead ratio flow/plain: {flow / plain:.2f}x (goal <= 1.3x); overhead "
          f"{flow - plain:.2f} s, of which an empty flow run costs {empty:.2f} s; "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"with Prefect's heartbeat on: {beating / plain:.2f}x; an empty flow run costs "
          f"{empty_beating:.2f} s")
    print(f"embedded (no server), fresh process: imports {cold['imports']:.1f} s, first cycle "
          f"{cold['cold']:.2f} s, second {cold['warm']:.2f} s: cold start "
          f"{cold['cold'] - cold['warm']:.1f} s")


if __name__ == "__main__":
    main()
