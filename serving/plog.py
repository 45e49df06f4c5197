"""The prediction log: append-only JSON lines under GREENLIGHT_HOME/predictions/.

The format, for every reader (the canary guards here; monitoring and harvest read it with
pandas in tasks/data/predictions.py, which may not import serving/): one file per UTC day,
`YYYY-MM-DD.jsonl`, one JSON object per scored record with

- `request_id` (hex), `index` (the record's place in the request), `prediction_id`
  (`<request_id>-<index>`: the key the record's label is joined on when it lands);
- `at`: ISO 8601 UTC with milliseconds, when it was scored; all lines of a request share it;
- `model`, `version` (int), `variant`: `champion`, `canary` (answered by @challenger) or
  `shadow` (@challenger, silent);
- `input`: the validated record; `output`: `prediction`, `score` and `confidence`
  (classification) or `prediction` (regression), and `needs_review`; null if it failed;
- `needs_review` (bool), `latency_ms` (the request's), `error` (null, or why it failed).

A request's lines go out in one write; a line torn by a crash is skipped by readers. Lines
are standard JSON (a NaN or an infinity is written as null) and ASCII: a non-ASCII
character is escaped, so no line separator other than \\n (U+2028, U+0085...) ever sits
inside a line for `str.splitlines` to cut.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from core import jsonl

_SURROGATE = re.compile("[\ud800-\udfff]")


class PredictionLog:
    """Thread-safe appender: each request's lines go out in one write, flushed to the OS."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "predictions"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, lines: list[dict[str, Any]]) -> None:
        """A request's lines, in one write, not fsynced: a request must not wait for the disk
        (a killed service loses nothing written; a power cut may lose the last lines)."""
        path = self.dir / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
        encoded = [encode(line) for line in lines]
        with self._lock:
            jsonl.append_lines(path, encoded, durable=False)


def encode(line: dict[str, Any]) -> bytes:
    """One line of the log. pydantic-core's encoder is ~8x faster than `json.dumps` (4 ms
    for a 100-record request on this machine, most of a request's own cost); `str` for
    anything that is not JSON, as before. The rare line with a non-ASCII character is
    re-encoded by `json.dumps`, which escapes it. A string that is not text (a lone UTF-16
    surrogate, which UTF-8 cannot carry and made the encoder raise) is written with each
    lone surrogate replaced by U+FFFD: the line is still written, and every reader (pandas
    too) reads it."""
    try:
        text = to_json(line, fallback=str, inf_nan_mode="null")
    except ValueError:  # PydanticSerializationError: a lone surrogate somewhere
        text = to_json(_replace_surrogates(line), fallback=str, inf_nan_mode="null")
    return text if text.isascii() else json.dumps(json.loads(text)).encode()


def _replace_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate in its strings (keys too) made U+FFFD."""
    if isinstance(value, str):
        return value if _is_text(value) else _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_surrogates(v) for v in value]
    return value


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read(root: Path, since: str | None = None) -> Iterator[dict[str, Any]]:
    """Logged predictions, oldest file first, at or after ISO time `since` (torn lines skipped)."""
    for path in sorted((root / "predictions").glob("*.jsonl")):
        if since and path.stem < since[:10]:
            continue
        for rec in jsonl.read(path):
            if since is None or rec.get("at", "") >= since:
                yield rec
