"""Multiclass prediction drift: the class probabilities against the predicted class alone.

For a multiclass champion, monitor_batch judges the predicted class (PSI) and each class's
probability; a class whose probability rises without yet winning rows moves only in its
probability. This counts, on the seeded ticket stream (tasks/data/replay_multiclass.py),
how many of `--draws` draws of week 4 (`--rows` rows each, seeds 100..) drift by the
predicted class alone (the drift summary's `prediction_drifted`, `summary.json`) and by
the class or any probability (MonitorResult.prediction_drifted), with `device_age_days`
scaled (it drives the technical team's odds). The champion: weeks 0-3 (600 rows a week),
by the loop's own `train_challenger`; its reference is the challenger's reference sample.

    uv run python benchmarks/probability_drift.py              # the table in docs/monitoring.md
    uv run python benchmarks/probability_drift.py --draws 3    # a quick check

`--quality-cost` times instead what Evidently's multiclass classification quality report
(tasks/monitoring/evidently_metrics.py, drawn once a batch has labels) adds to monitor_batch:
the same week-4 batch labelled against with its labels removed, alternated, medians of
`--repeats` after a warm-up, per batch size in `--sizes`:

    uv run python benchmarks/probability_drift.py --quality-cost --repeats 5
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DO_NOT_TRACK", "true")

from tasks.data.lake import BATCH_COLUMN  # noqa: E402
from tasks.data.replay_multiclass import multiclass_batch  # noqa: E402
from tasks.data.spec import load_spec  # noqa: E402
from tasks.monitoring.monitor import monitor_batch  # noqa: E402
from tasks.training.train import Challenger, train_challenger  # noqa: E402

REGISTERED = 0.6  # the champion's registered accuracy: decay is not what is measured here
FACTORS = (("as drawn", 1.0), ("devices 1.25x as old", 1.25), ("devices 1.5x as old", 1.5))


def champion(spec) -> Challenger:
    """A champion of weeks 0-3 and its reference sample, as a retrain makes them."""
    parts = [multiclass_batch(i, rows=600) for i in range(4)]
    history = pd.concat([b.frame.assign(**{BATCH_COLUMN: b.label}) for b in parts],
                        ignore_index=True)
    return train_challenger(history, spec, gate_rows=300, reference_rows=1000,
                            batch_column=BATCH_COLUMN, lgbm={"n_estimators": 40},
                            half_life_days=None, window_days=None)


def detection(model: Challenger, spec, draws: int, rows: int, out: Path) -> None:
    """Drift verdicts per scaling of device age: the predicted class alone vs any probability."""
    print(f"{draws} draws of week 4 at {rows:,} rows; champion: weeks 0-3")
    print(f"{'week 4':22} {'predicted class alone drifted':>30} {'class or probabilities':>23}")
    for label, factor in FACTORS:
        alone = either = 0
        for seed in range(draws):
            batch = multiclass_batch(4, rows=rows, seed=100 + seed).frame
            batch = batch.assign(device_age_days=batch.device_age_days * factor)
            result = monitor_batch("b", batch, model.reference, model.model, REGISTERED,
                                   spec, out)
            summary = json.loads((out / "summary.json").read_text())
            alone += bool(summary["prediction_drifted"])
            either += bool(result.prediction_drifted)
        print(f"{label:22} {f'{alone}/{draws}':>30} {f'{either}/{draws}':>23}")


def quality_cost(model: Challenger, spec, sizes: list[int], repeats: int, out: Path) -> None:
    """monitor_batch's wall time on a labelled batch (drift + the quality report) against the
    same batch unlabelled (drift alone), alternated so load drifts hit both alike."""
    print(f"monitor_batch, median of {repeats} (wall s), load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores:")
    for rows in sizes:
        labelled = multiclass_batch(4, rows=rows).frame
        cases = {"labelled": labelled, "unlabelled": labelled.assign(**{spec.target: None})}
        monitor_batch("b", labelled, model.reference, model.model, REGISTERED, spec, out)
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(repeats):
            for name, batch in cases.items():
                start = time.perf_counter()
                monitor_batch("b", batch, model.reference, model.model, REGISTERED, spec, out)
                times[name].append(time.perf_counter() - start)
        with_q, without = (statistics.median(times[k]) for k in cases)
        print(f"  {rows:6,} rows: labelled {with_q:.2f}, unlabelled {without:.2f}, "
              f"the quality report adds {with_q - without:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--quality-cost", action="store_true",
                        help="time the multiclass quality report inside monitor_batch")
    parser.add_argument("--sizes", default="3000,30000", help="batch rows, --quality-cost")
    parser.add_argument("--repeats", type=int, default=5, help="--quality-cost")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    spec = load_spec("synthetic_multiclass")
    model = champion(spec)
    with tempfile.TemporaryDirectory() as tmp:
        if args.quality_cost:
            quality_cost(model, spec, [int(s) for s in args.sizes.split(",")], args.repeats,
                         Path(tmp))
        else:
            detection(model, spec, args.draws, args.rows, Path(tmp))


if __name__ == "__main__":
    main()
