"""Monitoring what the service answered: the prediction log since the last cycle, as
output metrics per model version and variant (shadow and canary included)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tasks.data import predictions
from tasks.data.home import Home
from tasks.data.spec import DatasetSpec


@dataclass(frozen=True)
class ServedWindow:
    """The log window a cycle reads, [since, until), and what it found there."""

    since: datetime | None
    until: datetime
    count: int = 0
    stats: list[predictions.ServedStats] = field(default_factory=list)


def served_window(home: Home, spec: DatasetSpec, model_name: str) -> ServedWindow:
    """The model's predictions logged since the previous cycle stopped reading, with their
    metrics. The window is closed by `predictions.mark_monitored` once it is logged, so a
    crash in between reads it again rather than skipping it."""
    since, until = predictions.last_monitored(home), predictions.window_end()
    log = predictions.read(home, since, until)
    log = log[log["model"] == model_name]
    stats = predictions.served_metrics(log, spec) if not log.empty else []
    return ServedWindow(since, until, len(log), stats)
