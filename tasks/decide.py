"""The retraining decision: a pure function of the monitoring numbers and the thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.monitor import MonitorResult


@dataclass(frozen=True)
class Decision:
    action: str  # "bootstrap" | "retrain" | "no action"
    reasons: list[str] = field(default_factory=list)
    kinds: frozenset[str] = frozenset()  # what triggered: data, label, decay, forced

    @property
    def retrain(self) -> bool:
        return self.action != "no action"


def decide(results: list[MonitorResult], *, has_champion: bool, drift_share: float,
           max_decay: float, force: bool = False,
           acknowledged: frozenset[str] = frozenset()) -> Decision:
    """Retrain when any batch crosses a threshold; every reason is kept for the record.

    `acknowledged` are drift kinds (data, label) the live champion has already answered: a
    retrain on them found no better model. The same drift against the same champion then
    does not retrain again on every batch; decay always does, since it is the model failing."""
    if not has_champion:
        return Decision("bootstrap", ["no champion yet"], frozenset({"bootstrap"}))
    found: list[tuple[str, str]] = []
    for r in results:
        if r.drift_share >= drift_share:
            found.append(("data", f"{r.batch_id}: data drift share {r.drift_share:.2f} >= "
                                  f"{drift_share} ({', '.join(r.drifted_features)})"))
        if r.label_drifted:
            found.append(("label", f"{r.batch_id}: label drift (score {r.label_score:.3f})"))
        if r.decay >= max_decay:
            found.append(("decay", f"{r.batch_id}: champion decayed {r.decay:.1%} >= "
                                   f"{max_decay:.0%} ({r.champion_metric:.4f} vs registered "
                                   f"{r.registered_metric:.4f})"))
    if force:
        found.append(("forced", "forced by the caller"))
    live = [(k, why) for k, why in found if k not in acknowledged or k in ("decay", "forced")]
    known = [f"{why} [known: champion already re-validated]" for k, why in found
             if (k, why) not in live]
    if not live:
        return Decision("no action", known)
    return Decision("retrain", [why for _, why in live] + known,
                    frozenset(k for k, _ in live))


def route(policy: str, verdict: str) -> str:
    """What happens to a challenger, given the policy and the gate's verdict.

    Returns "promote", "ask" (pause for a person), "challenger" (shadow), or "none".
    The first model (verdict "bootstrap") is promoted under every policy but monitor:
    with no champion there is nothing to protect and nothing to serve."""
    if policy == "monitor" or verdict in ("fail", "insufficient"):
        return "none"
    if verdict == "bootstrap":
        return "promote"
    table = {"auto": {"clear": "promote"},
             "partial": {"clear": "promote", "marginal": "ask"},
             "manual": {"clear": "ask"},
             "shadow": {"clear": "challenger"}}
    return table.get(policy, {}).get(verdict, "none")
