"""Pipeline metrics: duration and rows in/out of every step of a flow run.

One small recorder, used as `with steps.step("train", rows_in=n) as s: ...; s.rows_out = m`,
so each stage of a multi-stage pipeline can be watched on its own (a slow step, a step that
drops rows) without timing code copied into every step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass


@dataclass
class StepMetric:
    name: str
    seconds: float = 0.0
    rows_in: int | None = None
    rows_out: int | None = None
    calls: int = 0


def _add(a: int | None, b: int | None) -> int | None:
    return a if b is None else (b if a is None else a + b)


class Steps:
    """Per-step metrics of one run; a step entered twice accumulates."""

    def __init__(self) -> None:
        self.steps: dict[str, StepMetric] = {}

    @contextmanager
    def step(self, name: str, rows_in: int | None = None) -> Iterator[StepMetric]:
        """Time a step; set `.rows_out` on the yielded record (defaults to rows_in)."""
        now = StepMetric(name, rows_in=rows_in)
        start = time.perf_counter()
        try:
            yield now
        finally:
            total = self.steps.setdefault(name, StepMetric(name))
            total.seconds = round(total.seconds + time.perf_counter() - start, 3)
            total.rows_in = _add(total.rows_in, now.rows_in)
            total.rows_out = _add(total.rows_out, now.rows_in if now.rows_out is None
                                  else now.rows_out)
            total.calls += 1

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per step, the shape earlier manifests and reports used."""
        return {name: m.seconds for name, m in self.steps.items()}

    def rows(self) -> list[dict]:
        """One row per step, for a table artifact or a markdown table."""
        return [asdict(m) for m in self.steps.values()]

    def mlflow_metrics(self) -> dict[str, float]:
        """`step.<name>.seconds|rows_in|rows_out`, so MLflow charts each stage over runs."""
        out: dict[str, float] = {}
        for m in self.steps.values():
            key = "step." + "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in m.name)
            out[f"{key}.seconds"] = m.seconds
            for attr in ("rows_in", "rows_out"):
                if getattr(m, attr) is not None:
                    out[f"{key}.{attr}"] = float(getattr(m, attr))
        return out
