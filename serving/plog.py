"""The prediction log: append-only JSON lines under GREENLIGHT_HOME/predictions/.

One line per scored record (request id, time, model version, variant, input, output,
latency), one file per UTC day. Monitoring reads it for output metrics; joined with late
labels it becomes training data, and the canary guards read it too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class PredictionLog:
    """Thread-safe appender: each request's lines go out in one write, flushed to the OS."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "predictions"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, lines: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(line, default=str) + "\n" for line in lines)
        path = self.dir / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
        with self._lock, path.open("a", encoding="utf-8") as fh:
            fh.write(text)


def read(root: Path, since: str | None = None) -> Iterator[dict[str, Any]]:
    """Logged predictions, oldest file first, at or after ISO time `since` (torn lines skipped)."""
    for path in sorted((root / "predictions").glob("*.jsonl")):
        if since and path.stem < since[:10]:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if since is None or rec.get("at", "") >= since:
                yield rec
