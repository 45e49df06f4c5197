"""What "why" adds to a cycle: attribution drift and per-segment monitoring on every
monitored batch (tasks/monitoring/why.py `explained`), and the champion-vs-challenger
explanation on a cycle that retrains (tasks/gate/explain.py `explain`).

On 3,000 rows and 10 features: the synthetic stream's 7 plus 3 numeric noise columns, a
champion trained on weeks 0-3 (200 trees, 31 leaves, as LGBM_PARAMS), batch W07 (index 5, a
new market: three segments), the challenger trained on weeks 0-5 less the gate window.
Each part is timed `--repeats` times in one warm process; the medians are printed.

    uv run python benchmarks/attribution_cost.py
    uv run python benchmarks/attribution_cost.py --repeats 9 --rows 3000

`first batch` includes the champion's attribution on its reference (computed once per
champion and reference, then cached); `each batch` is every later batch of a cycle.

`--multiclass` times one batch's attribution instead (attribution.mean_abs on the 200-row
sample, raw margins, and in score space), for a binary champion on the synthetic stream and
a multiclass one on the ticket stream, both trained by `fit` on weeks 0-3 and measured on
week 4: a multiclass booster grows a tree per class each round, so its cost scales with the
classes (the figure in tasks/monitoring/attribution.py's docstring):

    uv run python benchmarks/attribution_cost.py --multiclass --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

NOISE = ("noise_1", "noise_2", "noise_3")


def _ten_features(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame.assign(**{c: rng.normal(0, 1, len(frame)) for c in NOISE})


def _timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process: on a shared machine the wall
    time counts the other processes' turns too, the CPU time is what the work costs."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, used = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - used)
    return statistics.median(wall), statistics.median(cpu)


def _one_batch(model: object, rows: pd.DataFrame, repeats: int
               ) -> tuple[tuple[float, float], tuple[float, float]]:
    """A batch's attribution as monitoring computes it (raw margins) and in score space,
    after a warm call: the first pays for imports and LightGBM's set-up."""
    from tasks.monitoring import attribution

    attribution.mean_abs(model, rows)
    sample = attribution.sample_for(model, rows)
    return (_timed(lambda: attribution.mean_abs(model, rows), repeats),
            _timed(lambda: attribution.contributions(model, sample, "score"), repeats))


def multiclass_cost(repeats: int) -> None:
    """One batch's attribution, binary against multiclass: the per-class trees are the cost
    a multiclass champion adds to every monitored batch."""
    from tasks.data.replay import synthetic_batch
    from tasks.data.replay_multiclass import multiclass_batch
    from tasks.data.spec import load_spec
    from tasks.monitoring import attribution
    from tasks.training.train import fit

    streams: dict[str, Callable[[int], pd.DataFrame]] = {
        "synthetic": lambda i: synthetic_batch(i).frame,
        "synthetic_multiclass": lambda i: multiclass_batch(i, rows=1500).frame}
    print(f"one batch's attribution ({attribution.ATTRIBUTION_ROWS}-row sample), median of "
          f"{repeats} (wall s / CPU s), load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores:")
    for name, batch in streams.items():
        spec = load_spec(name)
        model = fit(pd.concat([batch(i) for i in range(4)]), spec, 7.0)
        rows = batch(4)
        raw, score = _one_batch(model, rows, repeats)
        print(f"  {name:21} {model.booster.num_trees():4} trees: raw margins "
              f"{raw[0]:.3f} / {raw[1]:.3f}, score space {score[0]:.3f} / {score[1]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--multiclass", action="store_true",
                        help="one batch's attribution, binary vs multiclass champion")
    args = parser.parse_args()
    if args.multiclass:
        multiclass_cost(args.repeats)
        return

    from tasks.data.replay import synthetic_batch
    from tasks.data.spec import load_spec
    from tasks.gate.explain import explain
    from tasks.monitoring import attribution
    from tasks.monitoring.estimation import fit_estimator
    from tasks.monitoring.monitor import Limits
    from tasks.monitoring.why import explained
    from tasks.training.evaluate import evaluate
    from tasks.training.train import fit, split_gate_window

    base = load_spec("synthetic")
    spec = base.model_copy(update={"features": [*base.features, *NOISE]})
    weeks = [_ten_features(synthetic_batch(i, rows=args.rows).frame, i) for i in range(6)]
    champion = fit(pd.concat(weeks[:4]), spec, 7.0)
    champion.performance = fit_estimator(champion, weeks[4], spec).to_json()
    registered = evaluate(champion, weeks[4], spec)[spec.primary_metric]
    reference, batch = weeks[3], weeks[5]
    scores = champion.score(batch)
    limits = Limits(max_decay=0.05, max_estimated_decay=0.05)

    def monitor_part() -> object:
        return explained(champion, batch, scores, reference, spec, registered, limits)

    def first_batch() -> object:
        attribution._REFERENCE.clear()  # a new champion: its reference is attributed again
        return monitor_part()

    split = split_gate_window(pd.concat(weeks), spec, int(0.3 * args.rows), None)
    challenger = fit(split.train, spec, 7.0)
    monitor_part()  # warm: imports, the reference's attribution
    each = _timed(monitor_part, args.repeats)
    first = _timed(first_batch, args.repeats)
    gate = _timed(lambda: explain(champion, challenger, split.gate, spec), args.repeats)
    print(f"{args.rows} rows x {len(spec.features)} features, median of {args.repeats} "
          f"(wall s / CPU s), load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores:")
    print(f"  monitoring, each later batch (attribution drift + segments): "
          f"{each[0]:.3f} / {each[1]:.3f}")
    print(f"  monitoring, first batch of a process (+ the reference's attribution): "
          f"{first[0]:.3f} / {first[1]:.3f}")
    print(f"  retrain cycle, gate explanation ({len(split.gate)} gate rows): "
          f"{gate[0]:.3f} / {gate[1]:.3f}")
    print(f"  a cycle (one process, one batch) adds {first[0]:.3f} / {first[1]:.3f}; one that "
          f"retrains adds {first[0] + gate[0]:.3f} / {first[1] + gate[1]:.3f}")


if __name__ == "__main__":
    main()
