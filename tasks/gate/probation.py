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
from tasks.monitoring.estimation import Estimate, estimate, load_estimator
from tasks.training.evaluate import relative_gain

Action = Literal["rollback", "hold", "baked"]


@dataclass(frozen=True)
class Verdict:
    """What probation decided this cycle, why, and the figures behind it."""

    action: Action
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def judge(champion: Scorer, previous: Scorer, rows: pd.DataFrame, spec: DatasetSpec, *,
          min_delta: float, min_rows: int, failed_share: float | None = None,
          max_failed: float | None = None, span_over: bool = False,
          estimates: tuple[Estimate, Estimate] | None = None) -> Verdict:
    """Roll back, hold or bake the champion, from the labelled `rows` that are new since
    its promotion, the share of its served predictions that failed, and the label-free
    `estimates` (champion's, @previous's) on the new rows whose labels have not landed.

    `span_over` says the baking span has been served (batches or hours, counted by the
    caller from the promotion log); a champion that holds then is baked."""
    if failed_share is not None and max_failed is not None and failed_share > max_failed:
        return Verdict("rollback", f"{failed_share:.1%} of its served predictions failed "
                                   f"(limit {max_failed:.1%})",
                       {"failed_share": failed_share, "max_failed": max_failed})
    if estimates is not None and estimated_worse(*estimates, spec, min_delta):
        mine, theirs = estimates
        return Verdict("rollback", f"estimated without labels on {mine.rows:,} new rows, "
                                   f"its {mine.metric} {mine.value:.4g} (band {mine.low:.4g}.."
                                   f"{mine.high:.4g}) is below @previous's {theirs.value:.4g} "
                                   f"by more than the gate's margin",
                       {"estimated": mine.value, "estimated_low": mine.low,
                        "estimated_high": mine.high, "previous_estimated": theirs.value})
    labelled = rows[rows[spec.target].notna()] if len(rows) else rows
    figures: dict[str, Any] = {"rows": int(len(labelled))}
    if len(labelled) >= min_rows:
        # A negative min_delta is a tolerance for challengers; a rollback needs @previous
        # proven better, never merely not much worse.
        result = gate(previous, champion, labelled, spec, min_delta=max(min_delta, 0.0),
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


def new_rows(frames: dict[str, pd.DataFrame], spec: DatasetSpec, judged: list[str]
             ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The labelled and the unlabelled rows of the batches not judged yet, and the ids of
    those with labels: a batch counts towards the baking span once it has labels."""
    fresh = {b: f for b, f in frames.items() if b not in judged and len(f)}
    labelled = {b: f[f[spec.target].notna()] for b, f in fresh.items()}
    labelled = {b: f for b, f in labelled.items() if len(f)}
    unlabelled = [f[f[spec.target].isna()] for f in fresh.values()]
    return _concat(list(labelled.values())), _concat(unlabelled), list(labelled)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def estimated_worse(mine: Estimate, theirs: Estimate, spec: DatasetSpec,
                    min_delta: float) -> bool:
    """Is the champion estimated worse than @previous on the same unlabelled rows by more
    than the gate's margin, even at the better end of its band? An estimate is noisier
    than a realised metric, so the whole band must be below, not just the point."""
    best = mine.high if spec.higher_is_better else mine.low
    return relative_gain(theirs.value, best, spec.higher_is_better) > max(min_delta, 0.0)


def estimate_pair(champion: Any, previous: Any, rows: pd.DataFrame
                  ) -> tuple[Estimate, Estimate] | None:
    """Both models' label-free estimates on `rows`; None when either has no estimator
    (a version from before estimation) or there are no rows."""
    mine, theirs = (load_estimator(getattr(m, "performance", None))
                    for m in (champion, previous))
    if mine is None or theirs is None or not len(rows):
        return None
    return estimate(mine, champion, rows), estimate(theirs, previous, rows)
