"""Canary state and guards: the share of traffic the challenger serves, and when to stop.

The state is a small JSON file under GREENLIGHT_HOME/serving/, so `greenlight canary` and
every running service agree on it without a network call; every change is also appended to
`canary.jsonl` with its reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core import jsonl
from core.files import replacing
from core.names import CHALLENGER, CHAMPION
from registry.locks import promotion_lock
from registry.promote import PromotionError, clear_alias, promote
from registry.store import Registry
from registry.versions import aliases
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


def set_fraction(home: Path, fraction: float, reason: str, **extra: Any) -> dict[str, Any]:
    """Write the new share whole (`replacing`: a temp name per process, so two writers never
    share one) and append it to the canary history."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"canary fraction {fraction}: must be between 0 and 1")
    state = {"fraction": fraction, "reason": reason,
             "at": datetime.now(UTC).isoformat(timespec="milliseconds"), **extra}
    with replacing(_dir(home) / "canary.json") as tmp:
        tmp.write_text(json.dumps(state), encoding="utf-8")
    jsonl.append(_dir(home) / "canary.jsonl", state)
    return state


def note(home: Path, reason: str, **extra: Any) -> dict[str, Any]:
    """A line in the canary history that leaves the share as it is (a gate overridden with
    `--force`, say), so the history tells why a ramp began as well as how it went."""
    line = {"fraction": read_state(home)["fraction"], "reason": reason, "note": True,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"), **extra}
    jsonl.append(_dir(home) / "canary.jsonl", line)
    return line


def history(home: Path) -> list[dict[str, Any]]:
    """Every change of the share, oldest first (a line torn by a crash is skipped)."""
    return list(jsonl.read(_dir(home) / "canary.jsonl"))


@dataclass(frozen=True)
class Guards:
    """Limits a canary step must hold to go on to the next step."""

    max_error_rate: float = 0.01
    latency_factor: float = 2.0  # canary p99 may be at most this times the champion's...
    latency_slack_ms: float = 20.0  # ...plus this, so sub-millisecond noise does not trip it
    # Kolmogorov-Smirnov distance between canary and champion scores. Measured, not chosen
    # (benchmarks/canary_ks.py): the smallest limit a challenger as good as the champion
    # passes in 99% of steps down to 20 canary rows. No limit separates a worse model from a
    # good one (their KS overlap at every step size): this guard sees gross change only,
    # and quality is the quality guard's (tasks/gate/canary_quality.py). Multiclass: the
    # largest per-class KS (`output_ks`); a good challenger trips as rarely (docs/serving.md).
    max_ks: float = 0.45
    min_predictions: int = 20


def _output(rec: dict[str, Any]) -> float | None:
    out = rec.get("output") or {}
    value = out.get("score", out.get("prediction"))
    return float(value) if isinstance(value, int | float) else None


def _probabilities(rec: dict[str, Any]) -> dict[str, float] | None:
    """A multiclass answer's probability per class (serving/models.py `per_class`), else None."""
    found = (rec.get("output") or {}).get("probabilities")
    return found if isinstance(found, dict) and found else None


def output_ks(canary: list[dict[str, Any]], champ: list[dict[str, Any]]
              ) -> tuple[float, str | None] | None:
    """The KS between the two variants' answers, and the class it was found on.

    Binary and regression: the KS of the scores (class None). Multiclass (both variants
    answered with `probabilities`): the largest KS over the class-probability columns both
    answer, naming that class. The confidence alone (the largest probability) cannot see a
    challenger that calls billing what the champion calls shipping: both are as sure, of
    different classes. Each column is a probability as a binary score is, so `max_ks` keeps
    its meaning per class. A class only one model answers (a class `init --update` added)
    is left out: the champion cannot give it, and the challenger was trained to."""
    from scipy.stats import ks_2samp  # here: `greenlight canary --ramp 0` never needs it

    probs_a = [p for p in map(_probabilities, canary) if p is not None]
    probs_b = [p for p in map(_probabilities, champ) if p is not None]
    if probs_a and probs_b:
        shared = [c for c in dict.fromkeys(k for p in probs_b for k in p)
                  if any(c in p for p in probs_a)]
        best: tuple[float, str | None] | None = None
        for name in shared:
            a = [float(p[name]) for p in probs_a if isinstance(p.get(name), int | float)]
            b = [float(p[name]) for p in probs_b if isinstance(p.get(name), int | float)]
            if a and b:
                ks = float(ks_2samp(a, b).statistic)
                best = (ks, name) if best is None or ks > best[0] else best
        if best is not None:
            return best
    a = [v for v in map(_output, canary) if v is not None]
    b = [v for v in map(_output, champ) if v is not None]
    if a and b:
        return float(ks_2samp(a, b).statistic), None  # the largest gap between the CDFs
    return None


def figures(canary: list[dict[str, Any]], champ: list[dict[str, Any]]) -> dict[str, float]:
    """The numbers the guards judge: counts, canary error rate, p99 latencies, output KS
    (`output_ks`: multiclass, the largest per-class KS)."""
    return _judged(canary, champ)[0]


def _judged(canary: list[dict[str, Any]], champ: list[dict[str, Any]]
            ) -> tuple[dict[str, float], str | None]:
    """`figures`, and the class whose probability the KS was found on (None: a score)."""
    out: dict[str, float] = {"canary_predictions": len(canary),
                             "champion_predictions": len(champ)}
    if canary:
        out["canary_errors"] = sum(1 for r in canary if r.get("error"))
        out["canary_error_rate"] = out["canary_errors"] / len(canary)
        out["canary_p99_ms"] = float(np.percentile([r["latency_ms"] for r in canary], 99))
    if champ:
        out["champion_p99_ms"] = float(np.percentile([r["latency_ms"] for r in champ], 99))
    found = output_ks(canary, champ)
    if found is not None:
        out["ks"] = found[0]
    return out, None if found is None else found[1]


def check(records: list[dict[str, Any]], guards: Guards,
          baseline: list[dict[str, Any]] | None = None) -> tuple[str, str]:
    """('ok' | 'wait' | 'trip', why) from the prediction-log lines of one canary step.

    `baseline`: champion lines to compare with instead of the step's own (at 100% the
    champion answers nobody, so the ramp compares with its earlier steps)."""
    canary = [r for r in records if r.get("variant") == "canary"]
    champ = [r for r in (records if baseline is None else baseline)
             if r.get("variant") == "champion"]
    f, ks_class = _judged(canary, champ)
    if len(canary) < guards.min_predictions or len(champ) < guards.min_predictions:
        return "wait", (f"{len(canary)} canary / {len(champ)} champion predictions: need "
                        f"{guards.min_predictions} of each")
    rate, lat_c, lat_b = f["canary_error_rate"], f["canary_p99_ms"], f["champion_p99_ms"]
    if rate > guards.max_error_rate:
        return "trip", f"canary error rate {rate:.1%} > {guards.max_error_rate:.1%}"
    if lat_c > guards.latency_factor * lat_b + guards.latency_slack_ms:
        return "trip", (f"canary p99 latency {lat_c:.1f} ms > {guards.latency_factor} x "
                        f"champion {lat_b:.1f} ms + {guards.latency_slack_ms} ms")
    on = "" if ks_class is None else f" on class {ks_class!r}'s probability"
    if f.get("ks", 0.0) > guards.max_ks:
        return "trip", f"canary output distribution differs from champion's: KS " \
                       f"{f['ks']:.2f}{on} > {guards.max_ks}"
    ks = "" if "ks" not in f else (f", score KS {f['ks']:.2f}" if ks_class is None else
                                   f", class-probability KS {f['ks']:.2f} (largest on "
                                   f"{ks_class!r})")
    return "ok", (f"{len(canary)} canary predictions, {int(f['canary_errors'])} errors, p99 "
                  f"{lat_c:.1f} ms (champion {lat_b:.1f} ms){ks}")


def ramp(home: Path, steps: list[float], every_s: float, guards: Guards = Guards(), *,
         reg: Registry | None = None, by: str | None = None, max_waits: int = 3,
         sleep: Callable[[float], None] = time.sleep,
         say: Callable[[str], None] = print,
         quality: Callable[[str], tuple[str, str]] | None = None) -> dict[str, Any]:
    """Step the canary share up while the guards hold; on a trip set 0% and record why.

    `quality`, given the ramp's start time, judges the challenger's quality on what was
    served since ('ok' or 'trip', why): it needs tasks/ (labels, the gate, the estimators),
    which serving/ may not import, so `greenlight canary` builds it
    (tasks/gate/canary_quality.py). It is asked once a step's other guards hold.

    A ramp that holds at 100% with `reg` given completes the rollout: the challenger is
    promoted blue-green (see `complete`) and the share goes back to 0%."""
    began = aliases(reg) if reg is not None else {}
    first_at: str | None = None
    held: list[dict[str, Any]] = []
    for fraction in steps:
        state = set_fraction(home, fraction, f"ramp step {fraction:.0%}")
        first_at = first_at or state["at"]
        say(f"canary at {fraction:.0%}")
        for _ in range(max_waits + 1):
            sleep(every_s)
            step = list(plog.read(home, since=state["at"]))
            # The champion's lines since the ramp began: at 100% it answers nobody.
            baseline = [r for r in plog.read(home, since=first_at)
                        if r.get("variant") == "champion"]
            verdict, why = check(step, guards, baseline)
            say(f"  {verdict}: {why}")
            if verdict == "ok" and quality is not None:
                verdict, why = quality(first_at)
                say(f"  quality {verdict}: {why}")
            if verdict != "wait":
                break
        else:
            verdict, why = "trip", f"not enough traffic to judge after {max_waits + 1} waits " \
                                   f"({why})"
        if verdict == "trip":
            return set_fraction(home, 0.0, f"rolled back at {fraction:.0%}: {why}")
        held.append({"fraction": fraction, **figures(
            [r for r in step if r.get("variant") == "canary"], baseline)})
    if steps[-1] == 1.0 and reg is not None:
        return complete(home, reg, began, held, by=by)
    return set_fraction(home, steps[-1], f"ramp complete at {steps[-1]:.0%}: guards held")


def complete(home: Path, reg: Registry, began: dict[str, int], held: list[dict[str, Any]],
             *, by: str | None = None) -> dict[str, Any]:
    """The rollout's last move: promote the challenger the ramp judged, with a `canary`
    promotion record carrying every step's guard figures, drop its @challenger alias, then
    set 0%. If either alias moved during the ramp, the figures judged another pairing:
    nothing is promoted and the share goes back to 0%.

    All of it holds the promotion lock a cycle's promotion holds (a Prefect slot with a
    server, `registry.locks`), around the file lock `promote` takes: a cycle on another
    machine cannot move @champion between this check and this move."""
    with promotion_lock(reg.model_name):
        return _complete_locked(home, reg, began, held, by=by)


def _complete_locked(home: Path, reg: Registry, began: dict[str, int],
                     held: list[dict[str, Any]], *, by: str | None) -> dict[str, Any]:
    """`complete`, with the promotion lock held: compare the aliases, promote, record."""
    version, champion, now = began.get(CHALLENGER), began.get(CHAMPION), aliases(reg)
    if version is None or now.get(CHALLENGER) != version or now.get(CHAMPION) != champion:
        return set_fraction(home, 0.0, f"held at 100%, not promoted: aliases moved during the "
                                       f"ramp ({began} -> {now})")
    metrics = {f"canary.{h['fraction'] * 100:g}pct.{k}": float(v)
               for h in held for k, v in h.items() if k != "fraction"}
    steps = ",".join(f"{h['fraction'] * 100:g}" for h in held)
    try:
        promote(reg, version, reason=f"canary ramp {steps}% held its guards", by=by,
                metrics=metrics, expected_from=champion, action="canary")
    except PromotionError as exc:
        return set_fraction(home, 0.0, f"held at 100%, not promoted: {exc}")
    clear_alias(reg, CHALLENGER, version)
    return set_fraction(home, 0.0, f"ramp complete: v{version} promoted to @champion "
                                   f"(@previous v{champion}); canary back to 0%",
                        promoted=version)
