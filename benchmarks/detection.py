"""Detection delays and false alarms of greenlight's monitoring on the synthetic stream.

Replays the seeded synthetic stream (tasks/data/replay.py: covariate change at batch 5, prior at
10, concept at 15; batch 8 is malformed and quarantined by the flow, so skipped here) for
`--batches` weekly batches, through the same task functions the flow runs:
monitor_batch (Evidently drift, prediction drift, adversarial validation, decay) and
alarms.check with the flow's default thresholds (flows/params.py). The champion is trained
as the flow trains it (train_challenger, the spec's recipe, its gate window giving the
registered metric); on an alarm that retrains it is replaced by one trained on the history
so far, as an `auto` cycle whose gate passes would do. Every batch after the last change is
stable, so a long stream gives many stable batches to count false alarms on.

Prints, per batch, the alarm kinds; then per change point the detection delay in batches
(0 = caught on the batch where it happens) and the false-alarm count and rate.

    uv run python benchmarks/detection.py [--batches 45] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.params import Thresholds  # noqa: E402
from tasks.data.replay import SYNTHETIC_CHANGE_POINTS, SYNTHETIC_MALFORMED, synthetic_batch  # noqa: E402
from tasks.data.spec import load_spec, suite_path  # noqa: E402
from tasks.monitoring import alarms  # noqa: E402
from tasks.monitoring.drift import StatTests  # noqa: E402
from tasks.monitoring.monitor import Limits, MonitorResult, monitor_batch  # noqa: E402
from tasks.monitoring.quality import load_ranges  # noqa: E402
from tasks.training.train import train_challenger  # noqa: E402

BATCH = "_batch_id"


@dataclass
class Replay:
    results: dict[int, MonitorResult] = field(default_factory=dict)
    alarms: dict[int, list[alarms.Alarm]] = field(default_factory=dict)
    retrained_at: list[int] = field(default_factory=list)

    def retrain_kinds(self, i: int) -> list[str]:
        return sorted({a.kind for a in self.alarms.get(i, []) if a.kind in alarms.RETRAIN_KINDS})

    def delays(self) -> dict[str, int | None]:
        """Per change point: batches from the change to the first retraining alarm."""
        out = {}
        for kind, c in SYNTHETIC_CHANGE_POINTS.items():
            hit = next((i for i in sorted(self.results) if i >= c and self.retrain_kinds(i)), None)
            out[kind] = None if hit is None else hit - c
        return out

    def stable(self) -> list[int]:
        """Batches with no change: every monitored batch that is not a change point."""
        return [i for i in sorted(self.results) if i not in SYNTHETIC_CHANGE_POINTS.values()]

    def false_alarms(self) -> list[int]:
        return [i for i in self.stable() if self.retrain_kinds(i)]


def _train(history: pd.DataFrame, spec, thresholds_rows: int = 1000):
    rows = history[BATCH].value_counts().iloc[0]
    ch = train_challenger(history, spec, gate_rows=int(0.3 * rows),
                          half_life_days=spec.training.half_life_days,
                          window_days=spec.training.window_days,
                          reference_rows=thresholds_rows, batch_column=BATCH)
    from tasks.training.evaluate import evaluate

    registered = evaluate(ch.model, ch.split.gate, spec)[spec.primary_metric]
    return ch.model, ch.reference, registered


def replay(n_batches: int = 45, seed: int = 7, rows: int = 3000,
           thresholds: Thresholds | None = None, out_dir: Path | None = None) -> Replay:
    """Monitor every batch after the first against the live champion; retrain on alarms."""
    t = thresholds or Thresholds()
    spec = load_spec("synthetic")
    limits = Limits(label_drift=t.label_drift, prediction_drift=t.prediction_drift,
                    adversarial_auc=t.adversarial_auc,
                    tests=StatTests(t.num_method, t.cat_method, t.per_column_method,
                                    t.column_threshold))
    ranges = load_ranges(suite_path("synthetic"))
    out_dir = out_dir or Path(tempfile.mkdtemp(prefix="greenlight-detection-"))
    history = synthetic_batch(0, seed, rows).frame.assign(**{BATCH: "0000"})
    model, reference, registered = _train(history, spec)
    run = Replay()
    for i in range(1, n_batches):
        if i == SYNTHETIC_MALFORMED:
            continue  # quarantined by the suite in the flow: never monitored
        frame = synthetic_batch(i, seed, rows).frame
        result = monitor_batch(f"{i:04d}", frame, reference, model, registered, spec,
                               out_dir / f"{i:04d}", limits=limits, ranges=ranges)
        run.results[i] = result
        run.alarms[i] = alarms.check(
            result, drift_share=t.drift_share, max_decay=t.max_decay,
            max_missing_share=t.max_missing_share, max_out_of_range=t.max_out_of_range,
            max_failed_predictions=t.max_failed_predictions)
        history = pd.concat([history, frame.assign(**{BATCH: f"{i:04d}"})], ignore_index=True)
        if run.retrain_kinds(i):
            model, reference, registered = _train(history, spec)
            run.retrained_at.append(i)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=45)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    start = time.perf_counter()
    run = replay(args.batches, args.seed)
    print(f"{'batch':>5}  {'drift':>5} {'label':>6} {'pred':>6} {'AV AUC':>6} {'decay':>7}  "
          "alarms (retrain kinds)  [AV top features]")
    for i, r in sorted(run.results.items()):
        mark = next((k for k, c in SYNTHETIC_CHANGE_POINTS.items() if c == i), "")
        decay = "" if r.decay is None else f"{r.decay:+.3f}"
        print(f"{i:>5}  {r.drift_share:5.2f} {r.label_score or 0:6.3f} "
              f"{r.prediction_score or 0:6.3f} {r.adversarial_auc:6.3f} {decay:>7}  "
              f"{','.join(run.retrain_kinds(i)) or '-':<22} "
              f"[{','.join(r.adversarial_features)}] {mark}")
    stable, false = run.stable(), run.false_alarms()
    print("\ndetection delay (batches after the change; 0 = the change batch itself):")
    for kind, delay in run.delays().items():
        print(f"  {kind:<10} at batch {SYNTHETIC_CHANGE_POINTS[kind]:>2}: "
              f"{'missed' if delay is None else delay}")
    print(f"false alarms: {len(false)} of {len(stable)} stable batches "
          f"({len(false) / len(stable):.1%}) at {false}")
    print(f"({time.perf_counter() - start:.0f} s, seed {args.seed}, {args.batches} batches)")


if __name__ == "__main__":
    main()
