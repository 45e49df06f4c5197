"""What reading the prediction log costs a cycle: read, output metrics, and harvest.

Every cycle reads the lines served since the previous one; a harvest reads the whole log
(labels may land long after their prediction). This writes N synthetic lines with the
service's own writer (one request of 10 records per append, 3 variants), labels half of
the answered records, and prints the time of each step.

    uv run python benchmarks/served_loop_speed.py                 # 200,000 lines
    uv run python benchmarks/served_loop_speed.py --lines 1000000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from serving.plog import PredictionLog
from tasks.data import harvest, predictions
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.spec import load_spec

MODEL = "greenlight-synthetic"


def write_log(home: Home, n: int) -> list[str]:
    """`n` lines, 10 records per request; returns the prediction ids callers were answered."""
    spec = load_spec("synthetic")
    frame = sources.synthetic_stream(seed=7)[15].frame
    rows = json.loads(frame[spec.features].to_json(orient="records"))
    rng = np.random.default_rng(0)
    log, answered = PredictionLog(home.root), []
    start = datetime.now(UTC) - timedelta(hours=1)
    for r in range(n // 10):
        rid = uuid.uuid4().hex
        at = (start + timedelta(milliseconds=r)).isoformat(timespec="milliseconds")
        variant = ("champion", "canary", "shadow")[int(rng.integers(0, 3))]
        lines = []
        for i in range(10):
            s = float(rng.random())
            lines.append({"request_id": rid, "index": i, "prediction_id": f"{rid}-{i}",
                          "at": at, "model": MODEL, "version": 2, "variant": variant,
                          "input": rows[(r * 10 + i) % len(rows)],
                          "output": {"prediction": int(s >= 0.5), "score": s,
                                     "confidence": max(s, 1 - s), "needs_review": False},
                          "needs_review": False, "latency_ms": 1.0, "error": None})
            if variant != "shadow":
                answered.append(f"{rid}-{i}")
        log.append(lines)
    return answered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    spec = load_spec("synthetic")
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "gl").ensure()
        t = time.perf_counter()
        answered = write_log(home, args.lines)
        size = sum(p.stat().st_size for p in (home.root / "predictions").iterdir())
        print(f"wrote {args.lines} lines ({size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - t:.1f} s")
        home.labels.mkdir()
        half = answered[::2]
        pd.DataFrame({"prediction_id": half, "converted": np.arange(len(half)) % 2}).to_csv(
            home.labels / "outcomes.csv", index=False)

        t = time.perf_counter()
        log = predictions.read(home)
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        stats = predictions.served_metrics(log, spec)
        metrics_s = time.perf_counter() - t
        print(f"read the log: {read_s:.2f} s ({len(log) / read_s:,.0f} lines/s); output "
              f"metrics for {len(stats)} version/variant groups: {metrics_s:.2f} s")
        t = time.perf_counter()
        first = harvest.harvest(home, spec, MODEL)
        print(f"harvest: {first.rows} rows landed, {first.waiting} waiting for labels, "
              f"{time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        again = harvest.harvest(home, spec, MODEL)
        print(f"harvest again (nothing new): {again.rows} rows, "
              f"{time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
