"""Judging a champion on probation against `@previous`, on what is new since its promotion.

The evidence is the gate's, with the roles set for the question asked: is the old
champion proven better? `@previous` is scored as the challenger against the new champion
on the newly labelled rows, with the same paired bootstrap and margin as the gate; a
`clear` verdict for it means the promotion was a mistake. Served predictions that fail
above the monitoring threshold are a mistake too, labels or not. Otherwise the champion
holds, and once it has held for its span it is baked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.gate.gate import Scorer, gate

Action = Literal["rollback", "hold", "baked"]


@dataclass(frozen=True)
class Verdict:
    """What probation decided this cycle, why, and the figures behind it."""

    action: Action
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def judge(champion: Scorer, previous: Scorer, rows: pd.DataFrame, spec: DatasetSpec, *,
          min_delta: float, min_rows: int, failed_share: float | None = None,
          max_failed: float | None = None, span_over: bool = False) -> Verdict:
    """Roll back, hold or bake the champion, from the labelled `rows` that are new since
    its promotion and the share of its served predictions that failed.

    `span_over` says the baking span has been served (batches or hours, counted by the
    caller from the promotion log); a champion that holds then is baked."""
    if failed_share is not None and max_failed is not None and failed_share > max_failed:
        return Verdict("rollback", f"{failed_share:.1%} of its served predictions failed "
                                   f"(limit {max_failed:.1%})",
                       {"failed_share": failed_share, "max_failed": max_failed})
    labelled = rows[rows[spec.target].notna()] if len(rows) else rows
    figures: dict[str, Any] = {"rows": int(len(labelled))}
    if len(labelled) >= min_rows:
        result = gate(previous, champion, labelled, spec, min_delta=min_delta,
                      min_rows=min_rows)
        figures |= {"metric": result.metric, "champion": result.champion,
                    "previous": result.challenger, "gain_of_previous": result.gain,
                    "ci_low": result.ci_low, "ci_high": result.ci_high}
        if result.verdict == "clear":
            return Verdict("rollback", f"@previous is better on {len(labelled):,} newly "
                                       f"labelled rows: {result.metric} "
                                       f"{result.challenger:.4g} against {result.champion:.4g}"
                                       f" (gain {result.gain:+.1%}, 95% CI from "
                                       f"{result.ci_low:+.1%})", figures)
    if span_over:
        return Verdict("baked", f"held through its baking span ({len(labelled):,} newly "
                                "labelled rows judged)", figures)
    return Verdict("hold", f"holds on {len(labelled):,} newly labelled rows", figures)


def failed_share(served: list[Any], version: int) -> float | None:
    """The share of the champion's served predictions that failed since the last cycle,
    over every variant it served in; None when it served nothing."""
    mine = [s for s in served if s.version == version and s.count]
    total = sum(s.count for s in mine)
    return sum(s.failed_share * s.count for s in mine) / total if total else None


def new_rows(frames: dict[str, pd.DataFrame], spec: DatasetSpec,
             judged: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The labelled rows of the batches not judged yet, and those batches' ids: a batch
    counts towards the baking span once it has labels to judge on."""
    fresh = {b: f[f[spec.target].notna()] for b, f in frames.items() if b not in judged}
    fresh = {b: f for b, f in fresh.items() if len(f)}
    rows = pd.concat(fresh.values(), ignore_index=True) if fresh else pd.DataFrame()
    return rows, list(fresh)
