"""Probation (baking) after a promotion: where it stands, and its two endings.

After any promotion (a cycle's, an approval's, a canary's), the new champion is on
probation and `@previous` stays as it was, so it can take over again. The cycle judges
the pair on what is new (tasks/gate/probation.py) and ends probation here, under the
same lock as every move: `bake` records that the champion held, `auto_rollback` swaps
back and records why, with the figures. The state is read from the promotion log alone,
so every process and `greenlight status` see the same probation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from filelock import FileLock

from core import events
from registry import cards, history, promote
from registry.store import Registry

ON_PROBATION = ("promote", "canary")  # moves that put the new champion on probation
BAKED, CHECKED, AUTO_ROLLBACK = "baked", "probation", "auto-rollback"


@dataclass(frozen=True)
class Probation:
    """The champion on probation: since when, what it replaced, the batches judged so far,
    and the batches its promotion was decided on (never evidence about it afterwards)."""

    version: int
    previous: int | None
    since: datetime
    judged: list[str] = field(default_factory=list)
    decided_on: list[str] = field(default_factory=list)

    def left(self, batches: int, hours: float | None) -> str:
        """What is left of the baking span, in words (for status and the cycle's line)."""
        parts = [f"{max(0, batches - len(self.judged))} more batch(es)"]
        if hours is not None:
            until = self.since + timedelta(hours=hours)
            parts.append(f"until {until.isoformat(timespec='minutes')}")
        return " or ".join(parts)

    def over(self, batches: int, hours: float | None, now: datetime | None = None) -> bool:
        """True once the span is served: enough batches judged, or (if set) the hours."""
        now = now or datetime.now(UTC)
        return len(self.judged) >= batches or (
            hours is not None and now - self.since >= timedelta(hours=hours))


def current(reg: Registry) -> Probation | None:
    """The champion's probation, or None when it is not on one (baked, rolled back, never
    promoted by a cycle, an approval or a canary, or a first champion: with no champion
    before it there is nothing to judge it against or fall back to)."""
    log = promote.records(reg)
    moves = [i for i, r in enumerate(log) if "to" in r]
    if (not moves or log[moves[-1]].get("action") not in ON_PROBATION
            or log[moves[-1]].get("from") is None or log[moves[-1]].get(history.NAMED)):
        return None
    start = moves[-1]
    move = log[start]
    after = [r for r in log[start + 1:] if r.get("version") == move["to"]]
    if any(r.get("action") == BAKED for r in after):
        return None
    judged = [b for r in after if r.get("action") == CHECKED for b in r.get("batches", [])]
    return Probation(int(move["to"]), move.get("from"), datetime.fromisoformat(move["at"]),
                     list(dict.fromkeys(judged)), list(move.get("batches") or []))


def _note(reg: Registry, action: str, version: int, *, reason: str, batches: list[str],
          figures: dict[str, Any]) -> dict[str, Any]:
    record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "model": reg.model_name,
              "action": action, "version": version, "by": "greenlight", "reason": reason,
              "batches": batches, "metrics": figures}
    with FileLock(str(reg.lock_path), timeout=promote.LOCK_TIMEOUT_S):
        promote._append(reg, record)  # noqa: SLF001 (the log's one writer)
    cards.refresh(reg, version)
    return record


def checked(reg: Registry, version: int, *, batches: list[str], reason: str,
            figures: dict[str, Any]) -> dict[str, Any]:
    """Record that the champion held on these batches; it stays on probation."""
    return _note(reg, CHECKED, version, reason=reason, batches=batches, figures=figures)


def bake(reg: Registry, version: int, *, batches: list[str], reason: str,
         figures: dict[str, Any]) -> dict[str, Any]:
    """End probation with the champion kept: it served its span and held."""
    return _note(reg, BAKED, version, reason=reason, batches=batches, figures=figures)


def auto_rollback(reg: Registry, version: int, *, dataset: str, reason: str,
                  batches: list[str], figures: dict[str, Any],
                  link: str | None = None) -> dict[str, Any]:
    """End probation by walking back to the champion before, as `greenlight rollback` does but
    recorded as `auto-rollback` with the reason and figures; refused (PromotionError) if
    the champion is no longer `version`. Raises the rollback event for the people told."""
    record = promote.rollback(reg, reason=reason, by="greenlight", expected_from=version,
                              action=AUTO_ROLLBACK, metrics=figures, batches=batches)
    events.emit(events.ROLLBACK_EVENT, dataset, {
        "version": record["to"], "from": version, "reason": reason, "link": link,
        "action": AUTO_ROLLBACK, "batches": batches})
    return record


def try_auto_rollback(reg: Registry, version: int, **kwargs: Any) -> dict[str, Any]:
    """`auto_rollback`, with a refusal (the champion moved meanwhile, e.g. a person rolled
    back first) returned as `{"refused": reason}`: a decision no retry can change. Failures
    (a store that is down) still raise, so the caller's retries apply to them only."""
    try:
        return auto_rollback(reg, version, **kwargs)
    except promote.PromotionError as exc:
        return {"refused": str(exc)}
