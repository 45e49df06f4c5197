"""Multiclass canary: does the per-class KS see what the confidence KS cannot? (docs/serving.md)

A multiclass answer carries each class's probability; the canary's score guard then takes
the largest KS over the class-probability columns (serving.canary.output_ks). The
confidence (the largest probability, `score`) cannot see a challenger that is as sure as
the champion, of another class. This measures both on the seeded ticket stream
(tasks/data/replay_multiclass.py), with models by the loop's own `train_challenger`:

- champion: weeks 0-2 (1,500 rows a week);
- good challengers: its twin (the same model: KS is the sampling noise alone) and the next
  retrain (weeks 0-3);
- bad challenger: weeks 0-3 with the billing and shipping labels swapped (as sure as the
  champion, of the wrong class).

Traffic is week 4's tickets. A step takes `--steps` random rows, `--share` of them to the
canary; the guard's own `output_ks` compares the canary's answers (serving.models.per_class,
as /predict answers) with the champion's on the rest. The confidence KS is the same lines
without `probabilities`. Printed per step size and challenger: the median and p99 of both
and the share of steps past `--max-ks`.

    uv run python benchmarks/canary_ks_multiclass.py              # the table in docs/serving.md
    uv run python benchmarks/canary_ks_multiclass.py --seeds 50   # a quick check
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

from serving.canary import output_ks  # noqa: E402
from serving.models import per_class  # noqa: E402
from tasks.data.lake import BATCH_COLUMN  # noqa: E402
from tasks.data.replay_multiclass import multiclass_batch  # noqa: E402
from tasks.data.spec import load_spec  # noqa: E402
from tasks.training.train import train_challenger  # noqa: E402

WEEK_ROWS = 1500
SWAP = {"billing": "shipping", "shipping": "billing"}


def history(weeks: list[int], swap: bool = False) -> pd.DataFrame:
    """Weeks of tickets as the lake holds them; `swap` trades billing and shipping labels."""
    frame = pd.concat([multiclass_batch(i, rows=WEEK_ROWS).frame.assign(**{BATCH_COLUMN: str(i)})
                       for i in weeks], ignore_index=True)
    if swap:
        frame["team"] = frame["team"].replace(SWAP)
    return frame


def fit(frame: pd.DataFrame, spec) -> object:
    """The loop's own training (no registry: only the answers matter)."""
    return train_challenger(frame, spec, gate_rows=600, reference_rows=300,
                            batch_column=BATCH_COLUMN, lgbm={"n_estimators": 60},
                            half_life_days=None, window_days=None).model


def answers(model, traffic: pd.DataFrame) -> list[dict]:
    """Prediction-log lines as /predict writes them: class, confidence and probabilities."""
    scores = model.score(traffic)
    out = per_class(model.label(scores).tolist(), scores, [str(c) for c in model.labels])
    return [{"output": o} for o in out]


def confidence_only(lines: list[dict]) -> list[dict]:
    """The same lines without `probabilities`: output_ks falls back to the confidence."""
    return [{"output": {"score": r["output"]["score"]}} for r in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=500, help="steps per size and challenger")
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--steps", default="400,2000", help="requests per step")
    parser.add_argument("--max-ks", type=float, default=0.45)
    args = parser.parse_args()
    spec = load_spec("synthetic_multiclass")
    champion = fit(history([0, 1, 2]), spec)
    challengers = {"twin (good)": champion,
                   "next retrain, weeks 0-3 (good)": fit(history([0, 1, 2, 3]), spec),
                   "billing and shipping swapped": fit(history([0, 1, 2, 3], swap=True), spec)}
    traffic = multiclass_batch(4, rows=3000).frame
    base = answers(champion, traffic)
    rng = np.random.default_rng(0)
    print(f"traffic: week 4, {len(traffic):,} tickets; canary share {args.share:.0%}, "
          f"{args.seeds} steps per size; trips = KS > {args.max_ks}")
    print(f"{'challenger':32} {'requests':>8} {'canary':>6}  per-class KS p50   p99  trips"
          f"   confidence KS p50   p99  trips")
    for n in (int(s) for s in args.steps.split(",")):
        for name, model in challengers.items():
            lines = answers(model, traffic)
            full, conf, sizes = [], [], []
            for _ in range(args.seeds):
                rows = rng.choice(len(traffic), n, replace=False)
                to_canary = rng.random(n) < args.share
                if not to_canary.any():
                    continue
                canary = [lines[i] for i in rows[to_canary]]
                rest = [base[i] for i in rows[~to_canary]]
                sizes.append(len(canary))
                full.append(output_ks(canary, rest)[0])
                conf.append(output_ks(confidence_only(canary), confidence_only(rest))[0])
            f, c = np.array(full), np.array(conf)
            print(f"{name:32} {n:8,} {int(np.median(sizes)):6}  "
                  f"{np.median(f):17.2f} {np.quantile(f, .99):5.2f} {np.mean(f > args.max_ks):6.1%}"
                  f"   {np.median(c):17.2f} {np.quantile(c, .99):5.2f} "
                  f"{np.mean(c > args.max_ks):6.1%}")


if __name__ == "__main__":
    main()
