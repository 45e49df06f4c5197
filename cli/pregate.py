"""The gate before a canary ramp, for a challenger set by hand.

A retrain gates its challenger against the champion of the day before registering it. A
version made @challenger through the MLflow client or UI skipped that, and a canary's
default guards (errors, latency, score KS) do not see quality: a clearly worse model
ramped to 100% (issue 36). So before the ramp, a challenger that never passed the gate
against the current champion is gated now, with the cycle's gate (tasks.gate.gate) and
settings, on the newest labelled rows the lake holds that the challenger did not learn
from. Proven worse, failing a sanity check, or without evidence: refused (exit 2), unless
`--force`, which is recorded on the version and in the canary's history.

During the ramp, `quality_guard` builds the quality guard (tasks/gate/canary_quality.py:
labels of served rows, else the label-free estimate) that serving.canary.ramp asks at each
step: serving/ may not import tasks/.

Here in cli/ because it joins serving (the canary), registry and tasks (lake, gate)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from registry import canary_gate, versions
from registry.store import Registry
from serving import canary
from tasks.data import labels, lake, manifest
from tasks.data.home import Home
from tasks.data.spec import DatasetSpec

MAX_BATCHES = 3  # newest decided batches read for the window: enough rows, recent ones


@dataclass(frozen=True)
class Outcome:
    """What the ramp may do: go, or stop with one line (`line` says which and why)."""

    go: bool
    line: str


def labelled_window(home: Home, spec: DatasetSpec, after: pd.Timestamp | None,
                    min_rows: int) -> pd.DataFrame:
    """The newest labelled rows of decided batches, newer than `after` (the challenger's
    last training row: rows it learned from would flatter it), newest batches first until
    `min_rows` rows or MAX_BATCHES batches."""
    decided = [b["id"] for b in manifest.load(home.manifest).values()
               if b.get("status") == "accepted" and b.get("decision")]
    frames: list[pd.DataFrame] = []
    rows = 0
    for batch_id in reversed(decided[-MAX_BATCHES:]):
        frame = labels.attach(lake.read_batches(home.lake, [batch_id]), home, spec)
        frame = frame[frame[spec.target].notna()]
        if after is not None:
            times = pd.to_datetime(frame[spec.time_column])
            if times.dt.tz is None and after.tzinfo is not None:
                after = after.tz_localize(None)
            frame = frame[times > after]
        frames.insert(0, frame)
        rows += len(frame)
        if rows >= min_rows:
            break
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def before_ramp(home: Home, reg: Registry, spec: DatasetSpec, training: Any, *,
                canary_home: Path, force: bool, by: str) -> Outcome:
    """Gate @challenger against @champion unless it already passed against this champion;
    record the verdict on the version; with `force`, record the override (on the version
    and in the canary history under `canary_home`) and go."""
    now = versions.aliases(reg)
    challenger, champion = now.get("challenger"), now.get("champion")
    if challenger is None or champion is None:
        return Outcome(True, "no @challenger and @champion pair to gate")
    info = versions.by_version(reg, challenger)
    done = canary_gate.passed_against(info, champion)
    if done:
        return Outcome(True, f"@challenger v{challenger} passed {done}")
    from tasks.gate.gate import gate  # the cycle's gate; loads scipy and LightGBM

    until = versions.trained_until(reg, info)
    window = labelled_window(home, spec, until, training.gate_min_rows)
    if window.empty:  # nothing to score: the gate's own "insufficient", said plainly
        reason = (f"insufficient: no labelled rows in the newest decided batches newer than "
                  f"v{challenger}'s training (to {until})")
        canary_gate.record_gate(reg, challenger, champion, "insufficient", reason)
        return _refused(reg, canary_home, challenger, champion, "insufficient", reason,
                        force=force, by=by)
    result = gate(versions.load_model(reg, challenger), versions.load_model(reg, champion),
                  window, spec, min_delta=training.min_delta, min_rows=training.gate_min_rows,
                  slice_feature=spec.slice_feature if spec.slice_feature in window else None,
                  stale=True)
    canary_gate.record_gate(reg, challenger, champion, result.verdict, result.reason)
    if result.passed:
        return Outcome(True, f"@challenger v{challenger} gated against @champion "
                             f"v{champion}: {result.reason}")
    return _refused(reg, canary_home, challenger, champion, result.verdict,
                    result.reason, force=force, by=by)


def _refused(reg: Registry, canary_home: Path, challenger: int, champion: int,
             verdict: str, reason: str, *, force: bool, by: str) -> Outcome:
    """The refusal line, or with `force` the override recorded (version tag and canary
    history) and the ramp let go."""
    what = ("has no evidence for it" if verdict == "insufficient"
            else "is proven worse or unsound")
    refusal = (f"@challenger v{challenger} never passed the gate against @champion "
               f"v{champion} and {what} on the newest labelled rows: {reason}")
    if not force:
        return Outcome(False, f"refused: {refusal}; the champion is unchanged (--force to "
                              f"ramp anyway)")
    value = canary_gate.record_forced(reg, challenger, champion, by, reason)
    canary.note(canary_home, f"forced past the gate: v{challenger} {value}",
                forced=challenger, champion=champion, verdict=verdict)
    return Outcome(True, f"forced by {by}: {refusal}")


def quality_guard(home: Home, reg: Registry, spec: DatasetSpec, training: Any
                  ) -> Callable[[str], tuple[str, str]] | None:
    """The ramp's quality guard (tasks/gate/canary_quality.py) for the @challenger and
    @champion of now, with the gate's settings; None when there is no such pair. Both
    models are loaded once here: each step then only reads the log and scores."""
    from tasks.gate.canary_quality import guard

    now = versions.aliases(reg)
    challenger, champion = now.get("challenger"), now.get("champion")
    if challenger is None or champion is None:
        return None
    return guard(home, spec, reg.model_name, versions.load_model(reg, challenger),
                 versions.load_model(reg, champion), min_delta=training.min_delta,
                 min_rows=training.gate_min_rows,
                 min_class_rows=training.gate_min_class_rows)
