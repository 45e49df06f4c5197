"""The cycle lines of the synthetic stream, W02..W17, with what each retrain's challenger
does differently: real cycles (Prefect, MLflow, Evidently) under policy `auto` in a fresh
state dir, one week landed per cycle, the recipe pinned as the tests pin it.

    uv run python benchmarks/why_lines.py /tmp/why-lines

Prints each cycle's line (cli/views.py `cycle_line`) and, after a retrain, the first two
lines of its explanation (tasks/gate/explain.py). docs/monitoring.md and docs/approval.md
quote W07 and W17 from it (2026-12-07)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

PINNED = {"GREENLIGHT_TRAINING__RECIPE_MODE": "best", "GREENLIGHT_TRAINING__LEAF_REFIT": "false",
          "GREENLIGHT_TRAINING__BACKTEST_FOLDS": "3"}


def main(root: Path, weeks: int = 16) -> None:
    os.environ.update(PINNED)
    from cli.views import cycle_line
    from flows.cycle import cycle
    from tasks.data.home import Home
    from tasks.data.replay import synthetic_batch, write_batch

    home = Home(root).ensure()
    for i in range(weeks):
        path = write_batch(synthetic_batch(i), home.landing)
        old = time.time() - 60  # settled: not a file still being written
        os.utime(path, (old, old))
        summary = cycle(dataset="synthetic", policy="auto", home=str(home.root))
        print(cycle_line(summary, "synthetic"), flush=True)
        if summary.get("why"):
            print("  " + "\n  ".join(summary["why"]["lines"][:2]), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".greenlight-why-lines"))
