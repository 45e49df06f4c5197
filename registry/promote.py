"""Blue-green moves of `@champion`, under a lock, each with an append-only promotion record.

MLflow has no compare-and-set on aliases (STACK_NOTES), so every move holds a lock, reads,
compares, sets and reads back. The lock is an OS file lock: the kernel releases it when
its holder dies, so a crashed cycle cannot leak it.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

from filelock import FileLock

from core import jsonl
from core.names import CHAMPION, PREVIOUS  # also read as promotion.CHAMPION by flows/
from registry import cards, history
from registry.store import Registry
from registry.versions import aliases

LOCK_TIMEOUT_S = 120
SHORT_TEXT = 100  # a free-text tag on a version, cut: the whole text is on its card


class PromotionError(RuntimeError):
    """A move that was refused; the champion is as it was."""


def records(reg: Registry) -> list[dict[str, Any]]:
    """The promotion log, oldest first (a torn last line from a crash is skipped)."""
    return history.read(reg.promotions_path, reg.model_name)


def _append(reg: Registry, record: dict[str, Any]) -> dict[str, Any]:
    """Add a record to the promotion log, fsynced: a move is never forgotten."""
    jsonl.append(reg.promotions_path, record)
    return record


def _move(reg: Registry, *, action: str, to: int, previous: int | None, reason: str,
          by: str | None, metrics: dict[str, float] | None, batches: list[str] | None,
          expected_from: int | None = None, check_expected: bool = False) -> dict[str, Any]:
    """Set champion (and previous) under the lock, verify, then record the move."""
    with FileLock(str(reg.lock_path), timeout=LOCK_TIMEOUT_S):
        return _move_locked(reg, aliases(reg), action=action, to=to, previous=previous,
                            reason=reason, by=by, metrics=metrics, batches=batches,
                            expected_from=expected_from, check_expected=check_expected)


def _move_locked(reg: Registry, now: dict[str, int], *, action: str, to: int,
                 previous: int | None, reason: str, by: str | None,
                 metrics: dict[str, float] | None, batches: list[str] | None,
                 expected_from: int | None, check_expected: bool,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The move itself; the caller holds the lock and has just read the aliases (`now`)."""
    current = now.get(CHAMPION)
    if current == to:
        moves = [r for r in records(reg) if "to" in r]
        if moves and moves[-1]["to"] == to:
            return moves[-1]  # already done: promotion is idempotent
        # The aliases moved but the holder died before recording it: the move set
        # @previous first, so that is where the champion came from. Record it now.
        current, previous = now.get(PREVIOUS), now.get(PREVIOUS)
    elif check_expected and current != expected_from:
        raise PromotionError(f"champion moved meanwhile (expected v{expected_from}, found "
                             f"v{current}); not promoting v{to}")
    if previous is not None:
        reg.client.set_registered_model_alias(reg.model_name, PREVIOUS, str(previous))
    reg.client.set_registered_model_alias(reg.model_name, CHAMPION, str(to))
    if aliases(reg).get(CHAMPION) != to:
        raise PromotionError(f"champion did not move to v{to} (read back "
                             f"v{aliases(reg).get(CHAMPION)})")
    return _append(reg, {
        "at": datetime.now(UTC).isoformat(timespec="seconds"), "model": reg.model_name,
        "action": action, "from": current if current != to else None, "to": to,
        "previous": previous, "by": by or getpass.getuser(), "reason": reason,
        "metrics": metrics or {}, "batches": batches or [], **(extra or {}),
    })


def promote(reg: Registry, version: int, *, reason: str, by: str | None = None,
            metrics: dict[str, float] | None = None, batches: list[str] | None = None,
            expected_from: int | None = None, action: str = "promote") -> dict[str, Any]:
    """Make `version` the champion and keep the old champion as `previous` for rollback.

    `expected_from` is the champion the gate compared against: if another cycle moved the
    champion since, this promotion is refused rather than silently overwriting it.
    `action` names the path in the record: `promote` (a cycle, an approval) or `canary`
    (a canary ramp that reached 100%).
    """
    current = aliases(reg).get(CHAMPION)
    record = _move(reg, action=action, to=version,
                   previous=current if current not in (None, version) else None,
                   reason=reason, by=by, metrics=metrics, batches=batches,
                   expected_from=expected_from, check_expected=True)
    cards.refresh(reg, version, record.get("from"))
    return record


def rollback(reg: Registry, *, reason: str, by: str | None = None,
             expected_from: int | None = None, action: str = "rollback",
             metrics: dict[str, float] | None = None,
             batches: list[str] | None = None, to: int | None = None) -> dict[str, Any]:
    """Move `@champion` back in its history: to the champion before it by the promotion log,
    never forward, never to a version rolled back since.

    `expected_from` is the champion the caller saw when it started (and means to leave).
    Two rollbacks at once would otherwise walk back twice, so the target and the champion
    are read under the lock, and a champion that is not that version any more refuses the
    rollback with who moved it and when. `to` is a version a person names: it may be any
    registered version, and is recorded as that person's promotion (not put on probation:
    a person chose it over the champion it leaves)."""
    with FileLock(str(reg.lock_path), timeout=LOCK_TIMEOUT_S):
        current = aliases(reg)
        champion = current.get(CHAMPION)
        log = records(reg)
        if expected_from is not None and champion != expected_from:
            raise PromotionError(history.moved_away(log, expected_from, champion))
        if to is None:
            target = history.rollback_target(log, champion)
            if target is None:
                raise PromotionError(
                    f"{reg.model_name}: nothing to roll back to (no champion before "
                    f"v{champion} in the promotion log that was not rolled back since; "
                    "name one with --to V)")
        elif to == champion:
            raise PromotionError(f"{reg.model_name}: v{to} is already the champion")
        else:
            _registered(reg, to)
            target, action = to, "promote"
        record = _move_locked(reg, current, action=action, to=target, previous=champion,
                              reason=reason, by=by, metrics=metrics, batches=batches,
                              expected_from=champion, check_expected=True,
                              extra={history.NAMED: True} if to is not None else None)
    cards.refresh(reg, target, champion)
    return record


def _registered(reg: Registry, version: int) -> None:
    """Refuse, in one line, a version a person names that the registry does not hold."""
    from mlflow.exceptions import MlflowException

    from registry.store import absent

    try:
        reg.client.get_model_version(reg.model_name, str(version))
    except MlflowException as exc:
        if not absent(exc):
            raise
        raise PromotionError(f"{reg.model_name}: there is no v{version} to roll back to "
                             "(see `greenlight history` and the MLflow registry)") from None


def try_promote(reg: Registry, version: int, *, reason: str, **kwargs: Any) -> dict[str, Any]:
    """`promote`, with a refusal returned as `{"refused": reason}` instead of raised.

    A refusal (the champion moved meanwhile) is a decision that no retry can change: the
    cycle records it and goes on. Failures (a store that is down) still raise, so the
    caller's retries apply to them only."""
    try:
        return promote(reg, version, reason=reason, **kwargs)
    except PromotionError as exc:
        return {"refused": str(exc)}


def set_alias(reg: Registry, alias: str, version: int) -> None:
    """Point a non-champion alias (such as `challenger`) at a version, under the same lock."""
    if alias in (CHAMPION, PREVIOUS):
        raise PromotionError(f"{alias} moves only through promote() or rollback()")
    with FileLock(str(reg.lock_path), timeout=LOCK_TIMEOUT_S):
        reg.client.set_registered_model_alias(reg.model_name, alias, str(version))


def clear_alias(reg: Registry, alias: str, version: int) -> bool:
    """Drop a non-champion alias if it still points at `version` (a challenger that has
    just become champion); an alias moved meanwhile is left alone. True if dropped."""
    if alias in (CHAMPION, PREVIOUS):
        raise PromotionError(f"{alias} moves only through promote() or rollback()")
    with FileLock(str(reg.lock_path), timeout=LOCK_TIMEOUT_S):
        if aliases(reg).get(alias) != version:
            return False
        reg.client.delete_registered_model_alias(reg.model_name, alias)
        return True


def record_decision(reg: Registry, version: int, *, outcome: str, by: str | None,
                    reason: str) -> dict[str, Any]:
    """A person's (or a timeout's) verdict on a version: tagged on it and kept in the log.

    The champion does not move here; approval moves it through `promote`."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    for key, value in {"greenlight.approval": outcome, "greenlight.approval_by": by or "",
                       "greenlight.approval_reason": reason[:SHORT_TEXT]}.items():
        reg.client.set_model_version_tag(reg.model_name, str(version), key, value)
    with FileLock(str(reg.lock_path), timeout=LOCK_TIMEOUT_S):
        record = _append(reg, {"at": at, "model": reg.model_name, "action": outcome,
                               "version": version, "by": by, "reason": reason})
    cards.refresh(reg, version)  # the time and the whole reason are on the card and the log
    return record
