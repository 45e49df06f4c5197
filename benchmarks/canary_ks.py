"""Which score KS separates a good canary from a bad one on 5% of traffic? (issue 36)

The canary's score-distribution guard trips when the Kolmogorov-Smirnov distance between
the scores the challenger answered with and the champion's exceeds `--max-ks`. Its default
was chosen (0.3), not measured. This measures it on the seeded synthetic stream, with the
models the demo's loop makes (trained by the loop's own `train_challenger`):

- champion: trained on batches 0 and 15 (after the concept change), as v2 in the tests;
- good challengers, as good as the champion: its twin (the same model: KS is the sampling
  noise alone), and the next retrain (batches 0, 15, 16);
- bad challenger: the bootstrap model on batch 0 alone (v1: 0.75 accuracy against 0.99 on
  the new concept).

Traffic is the rows of later batches (17-19), in time order. A step of `--requests`
one-row requests goes 5% to the canary (as the router's hash does: a random 5% of keys);
the KS of the canary's scores against the champion's on the rest is computed as the guard
computes it (serving.canary.figures, scipy's ks_2samp). Repeated over `--seeds` samples for
step sizes from `min_predictions` (20 canary rows) up. Printed: the KS quantiles per
challenger and step, and the share of steps each candidate limit would trip.

    uv run python benchmarks/canary_ks.py                 # the figures in docs/serving.md
    uv run python benchmarks/canary_ks.py --seeds 500 --share 0.05
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DO_NOT_TRACK", "true")

from flows.params import Training  # noqa: E402
from serving.canary import figures  # noqa: E402
from tasks.data import replay as sources  # noqa: E402
from tasks.data.lake import BATCH_COLUMN  # noqa: E402
from tasks.data.spec import load_spec  # noqa: E402
from tasks.training.evaluate import evaluate  # noqa: E402
from tasks.training.train import train_challenger  # noqa: E402

LIMITS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
FALSE_TRIPS = 0.01  # the most a good challenger may trip per step at any step size


def fit(stream: list, batches: list[int], spec, training: Training):
    """The loop's own training on these batches (no registry: only the scores matter)."""
    history = pd.concat([stream[i].frame.assign(**{BATCH_COLUMN: stream[i].label})
                         for i in batches], ignore_index=True)
    return train_challenger(history, spec, gate_rows=int(training.gate_fraction * len(history)),
                            half_life_days=None, window_days=None,
                            reference_rows=training.reference_rows,
                            batch_column=BATCH_COLUMN).model


def ks_of_step(canary: np.ndarray, champion: np.ndarray) -> float:
    """The guard's own KS (serving.canary.figures) from two score arrays."""
    lines = [{"output": {"score": float(s)}, "latency_ms": 1.0} for s in canary]
    base = [{"output": {"score": float(s)}, "latency_ms": 1.0} for s in champion]
    return figures(lines, base)["ks"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=300)
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--steps", default="400,1000,2250,6000",
                        help="requests per step (75 req/s x 30 s = 2,250)")
    args = parser.parse_args()
    spec, training = load_spec("synthetic"), Training()
    stream = sources.synthetic_stream(seed=7)
    champion = fit(stream, [0, 15], spec, training)
    challengers = {"twin (good)": champion, "retrain 0,15,16 (good)": fit(stream, [0, 15, 16],
                                                                          spec, training),
                   "v1 on batch 0 (bad)": fit(stream, [0], spec, training)}
    traffic = pd.concat([stream[i].frame for i in (17, 18, 19)], ignore_index=True)
    truth = {"champion": evaluate(champion, traffic, spec)[spec.primary_metric]}
    scores = {"champion": champion.score(traffic)}
    for name, model in challengers.items():
        scores[name] = model.score(traffic)
        truth[name] = evaluate(model, traffic, spec)[spec.primary_metric]
    print(f"traffic: synthetic batches 17-19, {len(traffic):,} rows; {spec.primary_metric}: "
          + ", ".join(f"{k} {v:.3f}" for k, v in truth.items()))
    print(f"canary share {args.share:.0%}, {args.seeds} samples per step size")
    print(f"{'challenger':26} {'requests':>8} {'canary':>6}  {'KS p50':>6} {'p95':>6} "
          f"{'p99':>6}  " + " ".join(f"{'>' + str(x):>5}" for x in LIMITS))
    good_trips: dict[float, float] = dict.fromkeys(LIMITS, 0.0)
    for n in (int(s) for s in args.steps.split(",")):
        n = min(n, len(traffic) - 1)
        for name in challengers:
            ks, sizes = [], []
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                start = rng.integers(0, len(traffic) - n)
                rows = np.arange(start, start + n)  # a stretch of time, as a step is
                to_canary = rng.random(n) < args.share
                if to_canary.sum() < 1:
                    continue
                sizes.append(int(to_canary.sum()))
                ks.append(ks_of_step(scores[name][rows[to_canary]],
                                     scores["champion"][rows[~to_canary]]))
            ks_arr = np.array(ks)
            trips = " ".join(f"{(ks_arr > x).mean():5.0%}" for x in LIMITS)
            if "(good)" in name:
                for x in LIMITS:
                    good_trips[x] = max(good_trips[x], float((ks_arr > x).mean()))
            print(f"{name:26} {n:8,} {int(np.median(sizes)):6}  "
                  f"{np.percentile(ks_arr, 50):6.3f} {np.percentile(ks_arr, 95):6.3f} "
                  f"{np.percentile(ks_arr, 99):6.3f}  {trips}")
    chosen = min((x for x in LIMITS if good_trips[x] <= FALSE_TRIPS), default=None)
    print(f"smallest limit that trips a good challenger in at most {FALSE_TRIPS:.0%} of steps "
          f"at every step size: {chosen}")


if __name__ == "__main__":
    main()
