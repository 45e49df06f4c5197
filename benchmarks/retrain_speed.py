"""What a retrain costs on the demo's data: the W07 retrain of `greenlight demo`.

Set-up (not timed): the demo's synthetic stream (seed 7) runs through real cycles
(`flows.cycle.cycle`, as `greenlight demo` runs them) up to W06, so v1 is the champion
trained on W02, then W07 is landed and the state dir is copied aside. Each repetition
restores that copy at the same paths and runs W07's cycle, in this process: W07 drifts, the
retrain runs (recipe backtest, train, gate, refit, register, then promote) and the cycle's
own step timings (`core.steps.Steps`, the `step.*` metrics the demo logs in MLflow) give
each step's seconds; the process CPU time of the retrain call is taken too, since on a
shared machine wall time follows the load. The first repetition is discarded (warm-up of
the retrain's code paths).

    uv run python benchmarks/retrain_speed.py [--repeats 3] [--profile retrain.prof]
        [--best-recipe | --ensemble | --compare]

`--compare` runs the best recipe alone, the leaf-refit ensemble with full members (the
default until 2026-12-08), the same ensemble with light members (Training.member_trees
light) and with light members in the refit only (light_refit, the default) in turn in
every repetition of one run, from the same state, so their figures and their ratio
(`ratio`: the median over repetitions of each one's total over the best recipe's) come
from the same load.

`--profile` also writes a cProfile of the last repetition's retrain call (read it with
`python -m pstats`), to see where the remaining time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEPS = ("recipe", "train", "gate", "refit", "register")
BEST_RECIPE = {"recipe_mode": "best", "leaf_refit": False, "backtest_folds": 3}
ENSEMBLE = {"recipe_mode": "ensemble", "leaf_refit": True, "backtest_folds": 6,
            "ensemble_tau": 0.1, "member_trees": "full"}  # the default until 2026-12-08
LIGHT = {**ENSEMBLE, "member_trees": "light"}  # Training.member_trees light
LIGHT_REFIT = {**ENSEMBLE, "member_trees": "light_refit"}  # the default: light after the gate
TIMED_WEEK = "2026-W07"
SEED = 7
QUIET = {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
         "MLFLOW_LOGGING_LEVEL": "ERROR", "PREFECT_LOGGING_LEVEL": "WARNING",
         "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GIT_PYTHON_REFRESH": "quiet",
         "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
         "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Warnings and errors only, from Prefect and MLflow, while the benchmark runs."""
    loggers = [logging.getLogger(n) for n in ("prefect", "mlflow", "greenlight")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _restore(snapshot: Path, root: Path) -> None:
    """Back to the state before W07's cycle (benchmarks/overhead.py `restore_state`)."""
    from benchmarks.overhead import restore_state

    restore_state(snapshot, root)


def _set_up(root: Path, snapshot: Path) -> None:
    """The demo's cycles up to the week before TIMED_WEEK, then TIMED_WEEK landed."""
    from cli.demo import WARMUP, batches_for
    from flows.cycle import cycle
    from tasks.data import replay as sources
    from tasks.data.home import Home

    home = Home.from_env(root).ensure()
    stream = batches_for("synthetic", None, "W", SEED)
    timed = next(i for i, b in enumerate(stream) if b.label == TIMED_WEEK)
    first = WARMUP["synthetic"]
    for group in [stream[:first]] + [[b] for b in stream[first:timed]]:
        for batch in group:
            sources.write_batch(batch, home.landing)
        cycle(dataset="synthetic", home=str(root))
    sources.write_batch(stream[timed], home.landing)
    shutil.copytree(root, snapshot)


@contextlib.contextmanager
def _retrain_cpu(spent: list[float], profile: Path | None = None) -> Iterator[None]:
    """Appends the process CPU seconds of each `flows.retrain.retrain` call the cycle makes:
    on a shared machine wall time follows the load, CPU time much less. With `profile`, the
    call also runs under cProfile, its stats written there (the CPU figure then includes
    the profiler's overhead)."""
    import cProfile

    import flows.cycle as fc

    retrain = fc.retrain

    def timed(*args: object, **kwargs: object) -> object:
        profiler = cProfile.Profile() if profile else None
        start = time.process_time()
        try:
            if profiler is None:
                return retrain(*args, **kwargs)
            return profiler.runcall(retrain, *args, **kwargs)
        finally:
            spent.append(time.process_time() - start)
            if profiler is not None:
                profiler.dump_stats(str(profile))

    fc.retrain = timed
    try:
        yield
    finally:
        fc.retrain = retrain


@contextlib.contextmanager
def _step_cpu(spent: dict[str, float]) -> Iterator[None]:
    """Adds each `core.steps.Steps.step`'s process CPU seconds to `spent[name]`: the
    step's own threads included (the backtest fits on two), so a step that only moved its
    work to another thread shows no saving here."""
    from core.steps import Steps

    step = Steps.step

    @contextlib.contextmanager
    def timed(self: Steps, name: str, rows_in: int | None = None) -> Iterator[object]:
        start = time.process_time()
        try:
            with step(self, name, rows_in) as metric:
                yield metric
        finally:
            spent[name] = spent.get(name, 0.0) + time.process_time() - start

    Steps.step = timed
    try:
        yield
    finally:
        Steps.step = step


def _timed_cycle(root: Path, profile: Path | None = None, training: dict | None = None
                 ) -> dict[str, float]:
    """W07's cycle; its retrain's step seconds and CPU, checked to be the demo's outcome.
    `training` overrides the flow's Training settings (e.g. the best recipe alone)."""
    from flows.cycle import cycle
    from flows.params import Training

    spent: list[float] = []
    cpu: dict[str, float] = {}
    with _retrain_cpu(spent, profile), _step_cpu(cpu):
        summary = cycle(dataset="synthetic", home=str(root), training=Training(**(training or {})))
    if summary.get("verdict") != "clear" or summary.get("promoted_version") != 2:
        raise RuntimeError(f"{TIMED_WEEK} did not retrain to a clear v2 as in the demo: "
                           f"{summary.get('verdict')}, {summary.get('promoted_version')}")
    timings = {s: summary["timings"].get(s, 0.0) for s in STEPS}
    return {**timings, "total": sum(timings.values()), "cpu": sum(spent),
            **{f"cpu.{s}": cpu.get(s, 0.0) for s in STEPS}}


def retrain_seconds(repeats: int = 3, profile: Path | None = None,
                    training: dict | None = None) -> dict[str, float]:
    """`compare_seconds` for one setting alone (module docstring)."""
    return compare_seconds(repeats, profile, {"only": training})["only"]


def compare_seconds(repeats: int = 3, profile: Path | None = None,
                    settings: dict[str, dict | None] | None = None
                    ) -> dict[str, dict[str, float]]:
    """Median seconds per retrain step on the demo's W07 retrain, their total, `cpu`: the
    process CPU seconds of the whole retrain call (recipe to promote), and `cpu.<step>`:
    each step's process CPU seconds.

    Builds the demo's state in a temporary dir (about a minute: 6 cycles), then runs
    W07's cycle `repeats` + 1 times from the same state, the first discarded; `profile`
    profiles the last one. With several `settings` (name: Training overrides) each
    repetition runs every one of them in turn from the same state, so their figures come
    from the same run, at the same load; `ratio.<name>` is the median over repetitions of
    that setting's total over the first setting's."""
    settings = settings or {"default": None}
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    with tempfile.TemporaryDirectory(prefix="greenlight-retrain-") as tmp, _quiet():
        work = Path(tmp)
        os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
        root, snapshot = work / "home", work / "snapshot"
        _set_up(root, snapshot)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
        for i in range(repeats + 1):
            for name, training in settings.items():
                _restore(snapshot, root)
                runs[name].append(_timed_cycle(root, profile if i == repeats else None,
                                               training))
        runs = {name: r[1:] for name, r in runs.items()}
    keys = (*STEPS, "total", "cpu", *(f"cpu.{s}" for s in STEPS))
    out = {name: {k: round(statistics.median(r[k] for r in rs), 3) for k in keys}
           for name, rs in runs.items()}
    first = next(iter(runs))
    for name, rs in runs.items():
        out[name]["ratio"] = round(statistics.median(
            a["total"] / b["total"] for a, b in zip(rs, runs[first], strict=True)), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a cProfile of the last repetition's retrain call here")
    parser.add_argument("--best-recipe", action="store_true",
                        help="the best recipe alone (recipe_mode best, no leaf refits, 3 "
                             "folds: the default until 2026-12-07) instead of the ensemble")
    parser.add_argument("--ensemble", action="store_true",
                        help="the leaf-refit ensemble on six folds at tau 0.1, full members")
    parser.add_argument("--compare", action="store_true",
                        help="the best recipe alone, the leaf-refit ensemble (full members, "
                             "light members, light members in the refit only), in turn in each "
                             "repetition of one run; prints each one's medians and its total "
                             "over the best recipe's")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if args.compare:
        both = compare_seconds(args.repeats, args.profile,
                               {"best recipe": BEST_RECIPE, "ensemble": ENSEMBLE,
                                "light members": LIGHT, "light refit": LIGHT_REFIT})
        print(f"retrain of the demo's {TIMED_WEEK}, median of {args.repeats} (seconds; load "
              f"{load:.1f} -> {os.getloadavg()[0]:.1f}):")
        print(f"  {'':>28} " + " ".join(f"{name:>12}" for name in both))
        for key in next(iter(both.values())):
            print(f"  {key:>28} " + " ".join(f"{r[key]:12.3f}" for r in both.values()))
        return
    training = BEST_RECIPE if args.best_recipe else ENSEMBLE if args.ensemble else None
    result = retrain_seconds(args.repeats, args.profile, training)
    print(f"retrain of the demo's {TIMED_WEEK}"
          f"{' (best recipe alone)' if args.best_recipe else ''}"
          f"{' (leaf-refit ensemble, 6 folds, full members)' if args.ensemble else ''}"
          f", median of {args.repeats} (seconds; load "
          f"{load:.1f} -> {os.getloadavg()[0]:.1f}):")
    labels = {"total": "total (wall, the five steps)", "cpu": "CPU of the retrain call",
              **{f"cpu.{s}": f"CPU of {s}" for s in STEPS}}
    for key, value in result.items():
        print(f"  {labels.get(key, key):>28} {value:7.3f}")

if __name__ == "__main__":
    main()
