"""The Dask path against the single-process path on the same big batches: verdicts, gate
metrics and the time of each.

On the synthetic stream at `--rows` rows per batch (same schema and suite as the demo):
- validation of a good and a malformed batch (GX per partition, combined);
- monitoring of a stable batch and the covariate, prior and concept change points (drift,
  label, prediction and adversarial verdicts, and the input metrics);
- training on `--rows` rows of history (four batches) with recency weights, gated on the
  newest rows: every gate metric of both challengers and their difference.

The Dask side runs the same functions the cycle runs (tasks/scale/distributed.py) on a plain
`distributed.Client`, without Prefect, so the times compare the work and not orchestration.
With `--address` it uses that scheduler, else a LocalCluster of one worker per core.

    uv run python benchmarks/dask_agreement.py                    # 1,000,000 rows a batch
    uv run python benchmarks/dask_agreement.py --rows 200000 --address tcp://host:8786
    uv run python benchmarks/dask_agreement.py --real             # training on Elec2, Bike
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from tasks.data import lake
from tasks.data import replay as sources
from tasks.data.spec import load_spec, suite_path
from tasks.data.validate import read_suite, validate_frame, with_time_checks
from tasks.gate.gate import gate
from tasks.monitoring.monitor import monitor_batch
from tasks.monitoring.quality import load_ranges
from tasks.scale import distributed
from tasks.training import train

SPEC = load_spec("synthetic")
VERDICTS = ("drifted_features", "label_drifted", "prediction_drifted", "adversarial_drifted")


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def validation(run, rows: int, partition_rows: int) -> list[tuple]:
    suite = with_time_checks(read_suite(suite_path("synthetic")), SPEC.time_column)
    warm = sources.synthetic_batch(1, rows=200).frame  # GX's import and set-up, both sides
    validate_frame(warm, suite, source="warm-up")
    distributed.validate_partitions(warm, suite, source="warm-up", time_column=None,
                                    partition_rows=50, run=run)
    out = []
    for name, index in (("good", 1), ("malformed", sources.SYNTHETIC_MALFORMED)):
        frame = sources.synthetic_batch(index, rows=rows).frame
        one, t_one = timed(validate_frame, frame, suite, source=name)
        dask, t_dask = timed(distributed.validate_partitions, frame, suite, source=name,
                             time_column=None, partition_rows=partition_rows, run=run)
        same = (one.success == dask.success and sorted(
            (f.expectation, f.column, f.unexpected_count) for f in one.failures) == sorted(
            (f.expectation, f.column, f.unexpected_count) for f in dask.failures))
        out.append((f"validate {name}", "pass" if one.success else "fail",
                    "pass" if dask.success else "fail", same, t_one, t_dask))
    return out


def monitoring(run, rows: int, partition_rows: int, tmp: Path) -> list[tuple]:
    champion = train.fit(sources.synthetic_batch(0, rows=20_000).frame, SPEC, None)
    reference = sources.synthetic_batch(0, rows=3000).frame
    ranges = load_ranges(suite_path("synthetic"))
    out = []
    cases = {"stable": 1, **sources.SYNTHETIC_CHANGE_POINTS}
    for name, index in cases.items():
        batch = sources.synthetic_batch(index, rows=rows).frame
        one, t_one = timed(monitor_batch, name, batch, reference, champion, 0.76, SPEC,
                           tmp / f"{name}-one", ranges=ranges)
        start = time.perf_counter()
        sample, inputs = distributed.profile_partitions(batch, SPEC, ranges,
                                                        partition_rows=partition_rows, run=run)
        dask = monitor_batch(name, sample, reference, champion, 0.76, SPEC,
                             tmp / f"{name}-dask", ranges=ranges, inputs=inputs)
        t_dask = time.perf_counter() - start
        for verdict in VERDICTS:
            a, b = getattr(one, verdict), getattr(dask, verdict)
            out.append((f"monitor {name}: {verdict}", a, b, a == b, t_one if verdict == VERDICTS[0]
                        else None, t_dask if verdict == VERDICTS[0] else None))
        gap = max(abs((one.feature_scores[c] or 0) - (dask.feature_scores[c] or 0))
                  for c in SPEC.features)
        print(f"  monitor {name}: prediction PSI single {one.prediction_score:.3f}, dask "
              f"{dask.prediction_score:.3f}; largest feature drift score difference {gap:.4f}")
    return out


def training(address: str, rows: int) -> tuple[list[tuple], list[tuple]]:
    history = pd.concat([sources.synthetic_batch(i, rows=rows // 4).frame.assign(
        **{lake.BATCH_COLUMN: f"b{i}"}) for i in range(1, 5)], ignore_index=True)
    kwargs = dict(gate_rows=int(0.3 * rows // 4), half_life_days=7.0, window_days=None,
                  reference_rows=1000, batch_column=lake.BATCH_COLUMN)
    one, t_one = timed(train.train_challenger, history, SPEC, **kwargs)
    dask, t_dask = timed(train.train_challenger, history, SPEC,
                         fitter=distributed.DaskFitter(address), **kwargs)
    g_one = gate(one.model, None, one.split.gate, SPEC, min_delta=0.005)
    g_dask = gate(dask.model, None, dask.split.gate, SPEC, min_delta=0.005)
    metrics = [(name, v, g_dask.challenger_metrics[name], g_dask.challenger_metrics[name] - v)
               for name, v in g_one.challenger_metrics.items()]
    verdict = [("train + gate verdict", g_one.verdict, g_dask.verdict,
                g_one.verdict == g_dask.verdict, t_one, t_dask)]
    return verdict, metrics


def real_training(address: str) -> None:
    """Training only, on the real datasets: every month as a batch, the newest 3000 rows
    gated. Elec2's continuous features drift, which is where per-worker histogram bins show."""
    for name in ("elec2", "bike_sharing"):
        spec = load_spec(name)
        try:
            frame = sources.load_dataset(name)
        except ValueError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        history = pd.concat([b.frame.assign(**{lake.BATCH_COLUMN: b.label})
                             for b in sources.cut_batches(frame, spec, "M")], ignore_index=True)
        kwargs = dict(gate_rows=3000, half_life_days=spec.training.half_life_days,
                      window_days=None, reference_rows=1000, batch_column=lake.BATCH_COLUMN)
        one, t_one = timed(train.train_challenger, history, spec, **kwargs)
        dask, t_dask = timed(train.train_challenger, history, spec,
                             fitter=distributed.DaskFitter(address), **kwargs)
        g_one = gate(one.model, None, one.split.gate, spec, min_delta=0.005)
        g_dask = gate(dask.model, None, dask.split.gate, spec, min_delta=0.005)
        metrics = ", ".join(f"{k} {v:.4f} / {g_dask.challenger_metrics[k]:.4f}"
                            for k, v in g_one.challenger_metrics.items())
        print(f"{name}: {len(history):,} rows; verdict {g_one.verdict} / {g_dask.verdict}; "
              f"single / dask: {metrics}; time {t_one:.1f} s / {t_dask:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per batch")
    parser.add_argument("--partition-rows", type=int, default=250_000)
    parser.add_argument("--address", default=os.environ.get(distributed.ADDRESS_ENV),
                        help="Dask scheduler (default: GREENLIGHT_DASK_ADDRESS, else a "
                             "LocalCluster with one worker per core)")
    parser.add_argument("--real", action="store_true",
                        help="only training on Elec2 and Bike Sharing (../shared/data)")
    args = parser.parse_args()
    from distributed import Client

    if args.real:
        with distributed.DaskEngine(1, args.address) as engine:
            real_training(engine.scheduler())
        return

    with distributed.DaskEngine(1, args.address) as engine, Client(engine.scheduler()) as client:
        workers = len(client.scheduler_info()["workers"])
        print(f"{args.rows:,} rows a batch, partitions of {args.partition_rows:,}, {workers} "
              f"Dask workers at {engine.scheduler()}; load average {os.getloadavg()[0]:.1f}")
        run = distributed.client_mapper(client)
        with tempfile.TemporaryDirectory() as tmp:
            rows = validation(run, args.rows, args.partition_rows)
            rows += monitoring(run, args.rows, args.partition_rows, Path(tmp))
        verdict, metrics = training(engine.scheduler(), args.rows)
        rows += verdict
    print(f"\n{'check':<44} {'single':>14} {'dask':>14} agree {'t single':>9} {'t dask':>8}")
    for name, a, b, same, t_a, t_b in rows:
        a, b = (f"{len(v)} columns" if isinstance(v, list) else v for v in (a, b))
        times = (f"{t_a:8.1f}s {t_b:7.1f}s" if t_a is not None else "")
        print(f"{name:<44} {str(a)[:14]:>14} {str(b)[:14]:>14} {'yes' if same else 'NO':>5} "
              f"{times}")
    print(f"\nverdicts agree: {sum(r[3] for r in rows)} of {len(rows)}")
    print(f"\n{'gate metric':<12} {'single':>9} {'dask':>9} {'diff':>9}")
    for name, a, b, diff in metrics:
        print(f"{name:<12} {a:9.4f} {b:9.4f} {diff:+9.4f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
