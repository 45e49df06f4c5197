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
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

NOISE = ("noise_1", "noise_2", "noise_3")


def _ten_features(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame.assign(**{c: rng.normal(0, 1, len(frame)) for c in NOISE})


def _timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

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
    print(f"{args.rows} rows x {len(spec.features)} features, median of {args.repeats}:")
    print(f"  monitoring, each batch  (attribution drift + segments): {each:.3f} s")
    print(f"  monitoring, first batch (+ the reference's attribution): {first:.3f} s")
    print(f"  retrain cycle, gate explanation ({len(split.gate)} gate rows): {gate:.3f} s")
    print(f"  a monitored cycle adds {each:.3f} s per batch; one that retrains adds "
          f"{first + gate:.3f} s at most (first batch + explanation)")


if __name__ == "__main__":
    main()
