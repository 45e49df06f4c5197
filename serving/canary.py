"""Canary state and guards: the share of traffic the challenger serves, and when to stop.

The state is a small JSON file under GREENLIGHT_HOME/serving/, so `greenlight canary` and
every running service agree on it without a network call; every change is also appended to
`canary.jsonl` with its reason.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from serving import plog


def _dir(home: Path) -> Path:
    return home / "serving"


def read_state(home: Path) -> dict[str, Any]:
    """The current canary state; no file (or a torn one) means 0%."""
    try:
        state = json.loads((_dir(home) / "canary.json").read_text(encoding="utf-8"))
        return {**state, "fraction": min(max(float(state["fraction"]), 0.0), 1.0)}
    except (OSError, ValueError, KeyError, TypeError):
        return {"fraction": 0.0}


def set_fraction(home: Path, fraction: float, reason: str) -> dict[str, Any]:
    """Write the new share atomically (rename) and append it to the canary history."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"canary fraction {fraction}: must be between 0 and 1")
    _dir(home).mkdir(parents=True, exist_ok=True)
    state = {"fraction": fraction, "reason": reason,
             "at": datetime.now(UTC).isoformat(timespec="milliseconds")}
    tmp = _dir(home) / "canary.json.tmp"
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, _dir(home) / "canary.json")
    with (_dir(home) / "canary.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(state) + "\n")
    return state


def history(home: Path) -> list[dict[str, Any]]:
    path = _dir(home) / "canary.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@dataclass(frozen=True)
class Guards:
    """Limits a canary step must hold to go on to the next step."""

    max_error_rate: float = 0.01
    latency_factor: float = 2.0  # canary p99 may be at most this times the champion's...
    latency_slack_ms: float = 20.0  # ...plus this, so sub-millisecond noise does not trip it
    max_ks: float = 0.3  # Kolmogorov-Smirnov distance between canary and champion scores
    min_predictions: int = 20


def _output(rec: dict[str, Any]) -> float | None:
    out = rec.get("output") or {}
    value = out.get("score", out.get("prediction"))
    return float(value) if isinstance(value, int | float) else None


def _ks(a: list[float], b: list[float]) -> float:
    """Two-sample KS statistic: the largest gap between the two empirical CDFs."""
    a_s, b_s = np.sort(a), np.sort(b)
    grid = np.concatenate([a_s, b_s])
    cdf_a = np.searchsorted(a_s, grid, side="right") / len(a_s)
    cdf_b = np.searchsorted(b_s, grid, side="right") / len(b_s)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def check(records: list[dict[str, Any]], guards: Guards) -> tuple[str, str]:
    """('ok' | 'wait' | 'trip', why) from the prediction-log lines of one canary step."""
    canary = [r for r in records if r.get("variant") == "canary"]
    champ = [r for r in records if r.get("variant") == "champion"]
    if len(canary) < guards.min_predictions or len(champ) < guards.min_predictions:
        return "wait", (f"{len(canary)} canary / {len(champ)} champion predictions: need "
                        f"{guards.min_predictions} of each")
    errors = sum(1 for r in canary if r.get("error"))
    if errors / len(canary) > guards.max_error_rate:
        return "trip", f"canary error rate {errors / len(canary):.1%} > {guards.max_error_rate:.1%}"
    lat_c = float(np.percentile([r["latency_ms"] for r in canary], 99))
    lat_b = float(np.percentile([r["latency_ms"] for r in champ], 99))
    if lat_c > guards.latency_factor * lat_b + guards.latency_slack_ms:
        return "trip", (f"canary p99 latency {lat_c:.1f} ms > {guards.latency_factor} x "
                        f"champion {lat_b:.1f} ms + {guards.latency_slack_ms} ms")
    a = [v for v in map(_output, canary) if v is not None]
    b = [v for v in map(_output, champ) if v is not None]
    if a and b and (ks := _ks(a, b)) > guards.max_ks:
        return "trip", f"canary output distribution differs from champion's: KS {ks:.2f} > " \
                       f"{guards.max_ks}"
    return "ok", (f"{len(canary)} canary predictions, {errors} errors, p99 {lat_c:.1f} ms "
                  f"(champion {lat_b:.1f} ms)")


def ramp(home: Path, steps: list[float], every_s: float, guards: Guards = Guards(), *,
         max_waits: int = 3, sleep: Callable[[float], None] = time.sleep,
         say: Callable[[str], None] = print) -> dict[str, Any]:
    """Step the canary share up while the guards hold; on a trip set 0% and record why."""
    for fraction in steps:
        state = set_fraction(home, fraction, f"ramp step {fraction:.0%}")
        say(f"canary at {fraction:.0%}")
        for _ in range(max_waits + 1):
            sleep(every_s)
            verdict, why = check(list(plog.read(home, since=state["at"])), guards)
            say(f"  {verdict}: {why}")
            if verdict != "wait":
                break
        else:
            verdict, why = "trip", f"not enough traffic to judge after {max_waits + 1} waits " \
                                   f"({why})"
        if verdict == "trip":
            return set_fraction(home, 0.0, f"rolled back at {fraction:.0%}: {why}")
    return set_fraction(home, steps[-1], f"ramp complete at {steps[-1]:.0%}: guards held")
