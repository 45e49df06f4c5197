"""The canary's quality guard: is the challenger worse than the champion on what it served?

A canary's other guards (errors, latency, score KS: serving/canary.py) see whether a model
runs, not whether it is right: a clearly worse v1 ramped to 100% past all of them (issue
36). This guard judges quality on the rows served since the ramp began, scored by BOTH
models (each variant answered some of them; the other model's score for the same rows is
one local call), so every comparison is paired:

- labels, where they have landed for served rows (the labels feed keyed by
  `prediction_id`, as the harvest joins them): the gate's paired bootstrap with the roles
  swapped, as probation asks it (`tasks.gate.probation.judge`): the champion scored as the
  challenger, with the gate's margin. A `clear` verdict for the champion means the
  challenger is proven worse: trip. Enough labelled rows and not proven worse: ok, whatever
  the estimate says (labels are the truth the estimate guesses at).
- before enough labels: each model's label-free estimate of its own primary metric (CBPE
  or DLE, the estimator it carries, `tasks.monitoring.estimation`) on the same rows; a
  challenger whose whole band lies below the champion's estimate by more than the gate's
  margin trips (`tasks.gate.probation.estimated_worse`, the rule probation rolls back on).

The estimate is judged on every row served during the ramp, not only the challenger's 5%:
it depends on the inputs alone, the challenger's share is a random sample of the same
traffic (the router hashes the request key), and 20 times the rows narrow the band by
about 4.5 times. The estimate cannot see concept drift (P(y | x) moving): a model that is
confident and wrong is estimated as right, which is what the labels are for.

The guard lives in tasks/ (it needs the gate and the estimators); serving/ may not import
tasks/, so `greenlight canary` builds it here and hands it to `serving.canary.ramp` as a
callable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tasks.data.harvest import served_rows
from tasks.data.home import Home
from tasks.data.spec import DatasetSpec
from tasks.gate.gate import MIN_CLASS_ROWS, Scorer, gate
from tasks.gate.probation import estimate_pair, estimated_worse


@dataclass(frozen=True)
class Quality:
    """The guard's answer for one step: 'ok' or 'trip', why, and the figures behind it."""

    verdict: str
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def since(rows: pd.DataFrame, spec: DatasetSpec, at: str) -> pd.DataFrame:
    """The served rows scored at or after ISO time `at` (the ramp's first step)."""
    start = pd.Timestamp(at)
    start = start.tz_convert("UTC").tz_localize(None) if start.tzinfo else start
    return rows[pd.to_datetime(rows[spec.time_column]) >= start].reset_index(drop=True)


def _labelled(rows: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The rows whose label landed, with the target as the dataset's values: the labels
    feed is CSV, so a class may arrive as text."""
    labelled = rows[rows[spec.target].notna()].copy()
    numeric = pd.to_numeric(labelled[spec.target], errors="coerce")
    if numeric.notna().all():
        labelled[spec.target] = numeric
    return labelled


def judge(challenger: Scorer, champion: Scorer, rows: pd.DataFrame, spec: DatasetSpec, *,
          min_delta: float, min_rows: int, min_class_rows: int = MIN_CLASS_ROWS) -> Quality:
    """Trip or not on `rows` (served rows, with labels where they landed): the labels when
    there are enough to judge, else the label-free estimates (module docstring)."""
    margin = max(min_delta, 0.0)  # a negative min_delta forgives challengers; never trips
    labelled = _labelled(rows, spec) if len(rows) else rows
    figures: dict[str, Any] = {"served_rows": int(len(rows)), "labelled_rows": int(len(labelled))}
    if len(labelled):
        # The champion as the challenger: `clear` means it is better by the margin.
        result = gate(champion, challenger, labelled, spec, min_delta=margin,
                      min_rows=min_rows, min_class_rows=min_class_rows)
        if result.verdict != "insufficient" and result.ci_low is not None:
            figures |= {"metric": result.metric, "challenger": result.champion,
                        "champion": result.challenger, "champion_gain": result.gain,
                        "ci_low": result.ci_low, "ci_high": result.ci_high}
            stats = (f"{result.metric} {result.champion:.4f} against the champion's "
                     f"{result.challenger:.4f} on {len(labelled):,} labelled served rows "
                     f"(champion's gain {result.gain:+.2%}, 95% CI {result.ci_low:+.2%}.."
                     f"{result.ci_high:+.2%}, margin {margin:+.2%})")
            if result.verdict == "clear":
                return Quality("trip", f"challenger proven worse on labels: {stats}", figures)
            return Quality("ok", f"not proven worse on labels: {stats}", figures)
    pair = estimate_pair(challenger, champion, rows)
    if pair is None:
        return Quality("ok", f"quality not judged: {len(labelled):,} labelled of "
                             f"{len(rows):,} served rows (the gate needs {min_rows}) and no "
                             f"estimator on both versions", figures)
    mine, theirs = pair
    figures |= {"metric": mine.metric, "estimated": mine.value, "estimated_low": mine.low,
                "estimated_high": mine.high, "champion_estimated": theirs.value}
    stats = (f"estimated {mine.metric} {mine.value:.4f} (band {mine.low:.4f}..{mine.high:.4f})"
             f" against the champion's {theirs.value:.4f} on {mine.rows:,} served rows, "
             f"{len(labelled):,} labelled (margin {margin:+.2%})")
    if estimated_worse(mine, theirs, spec, margin):
        return Quality("trip", f"challenger estimated worse before labels: {stats}", figures)
    return Quality("ok", f"not estimated worse: {stats}", figures)


def guard(home: Home, spec: DatasetSpec, model_name: str, challenger: Scorer,
          champion: Scorer, *, min_delta: float, min_rows: int,
          min_class_rows: int = MIN_CLASS_ROWS) -> Callable[[str], tuple[str, str]]:
    """The callable `serving.canary.ramp` asks at each step: given the ramp's start time, read
    the rows served since (with any labels landed for them) and judge them."""

    def check(began: str) -> tuple[str, str]:
        start = pd.Timestamp(began).to_pydatetime()
        rows = since(served_rows(home, spec, model_name, since=start), spec, began)
        found = judge(challenger, champion, rows, spec, min_delta=min_delta,
                      min_rows=min_rows, min_class_rows=min_class_rows)
        return found.verdict, found.reason

    return check
