"""The retraining decision: a pure function of the monitoring numbers and the thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.monitoring import alarms
from tasks.monitoring.monitor import MonitorResult


@dataclass(frozen=True)
class Decision:
    action: str  # "bootstrap" | "retrain" | "no action"
    reasons: list[str] = field(default_factory=list)
    kinds: frozenset[str] = frozenset()  # what triggered: alarms.RETRAIN_KINDS, or forced

    @property
    def retrain(self) -> bool:
        return self.action != "no action"


def decide(results: list[MonitorResult], raised: list[alarms.Alarm], *, has_champion: bool,
           force: bool = False, acknowledged: frozenset[str] = frozenset()) -> Decision:
    """Retrain when any batch crosses a threshold; every reason is kept for the record.

    `raised` are the cycle's alarms (`tasks.monitoring.watch.raised_alarms`, or
    `alarms.check` per batch), computed once so the decision and the events agree; only
    the kinds in alarms.RETRAIN_KINDS retrain. `acknowledged` are drift kinds (data,
    label) the live champion has already answered: a retrain on them found no better model.
    The same drift against the same champion then does not retrain again on every batch;
    decay always does, since it is the model failing. A batch too small to judge
    (`MonitorResult.not_judged`) raises nothing; its reason is kept, so the record says
    "not enough rows" rather than nothing, or drift."""
    if not has_champion:
        return Decision("bootstrap", ["no champion yet"], frozenset({"bootstrap"}))
    found = [(a.kind, a.reason) for a in raised if a.kind in alarms.RETRAIN_KINDS]
    if force:
        found.append(("forced", "forced by the caller"))
    live = [(k, why) for k, why in found
            if k not in acknowledged or k in ("decay", "estimated_decay", "forced")]
    known = [f"{why} [known: champion already re-validated]" for k, why in found
             if (k, why) not in live]
    unjudged = [f"{r.batch_id}: {r.not_judged}" for r in results if r.not_judged]
    if not live:
        return Decision("no action", known + unjudged)
    return Decision("retrain", [why for _, why in live] + known + unjudged,
                    frozenset(k for k, _ in live))


REFRESH_ON = ("drift", "decay", "never")  # Training.refresh_on, the default first


def champion_stale(decision: Decision, *, refresh_on: str, newer: bool) -> bool:
    """Must the champion prove itself against this challenger (gate verdict refresh)?

    Only against a challenger that learned from newer rows, and only on the evidence
    `refresh_on` names. "drift" (the default): monitoring saw the world move (any retrain
    trigger but a forced one). A champion kept under drift ages by a batch every time, and a
    gate window rarely proves a gain of a few percent, so waiting for proof kept stale
    champions (benchmarks/adaptation.py). A retrain with no drift behind it (forced,
    scheduled) still asks the challenger for proof. "decay": only once the champion's
    metric on a batch fell more than max_decay below the one it was registered with, so an
    equal challenger stays out while the champion scores as registered. "never": every
    challenger proves its gain."""
    if refresh_on not in REFRESH_ON:
        raise ValueError(f"refresh_on must be one of {REFRESH_ON}, not {refresh_on!r}")
    evidence = {"never": frozenset(), "decay": frozenset({"decay"}),
                "drift": alarms.RETRAIN_KINDS}[refresh_on]
    return newer and bool(decision.kinds & evidence)
