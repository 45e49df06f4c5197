"""The champion's history, read from the promotion log alone (no MLflow import: light
commands such as `greenlight rollback` read it before anything heavy loads).

The promotion log is the champion's history; the registry holds its aliases. Every move of
`@champion` (a promotion, an approval, a refresh, a canary, a rollback, an auto-rollback,
a move made outside greenlight) is one record with `from` and `to`. Notes about a version
(approved, rejected, probation, baked, an external move of `@previous`) carry `version`
instead. A rollback only goes back in that history: `rollback_target` says where to.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from core import jsonl

ROLLBACKS = ("rollback", "auto-rollback")  # moves that demote the version they leave
EXTERNAL = "external"  # a move found in the registry that no greenlight command made
NAMED = "named"  # flag on a promotion a person chose with `greenlight rollback --to V`


def read(path: Path, model: str) -> list[dict[str, Any]]:
    """The log's records about one registered model, oldest first (a torn line skipped)."""
    return [r for r in jsonl.read(path) if isinstance(r, dict) and r.get("model") == model]


def moves(log: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that moved `@champion`, oldest first."""
    return [r for r in log if r.get("to") is not None]


def champion(log: list[dict[str, Any]]) -> int | None:
    """The champion by the log: where the last move put it."""
    found = moves(log)
    return int(found[-1]["to"]) if found else None


def previous(log: list[dict[str, Any]]) -> int | None:
    """`@previous` by the log: the last one a move set, or an external move of it found."""
    found = None
    for r in log:
        if r.get("to") is not None and r.get("previous") is not None:
            found = int(r["previous"])
        elif r.get("action") == EXTERNAL and r.get("alias") == "previous":
            found = r.get("version")
    return found


def demotes(record: dict[str, Any]) -> bool:
    """Whether a move demoted the version it left: a rollback or an auto-rollback (a
    person's `--to` is a promotion: the version it left is not judged bad by it)."""
    return record.get("action") in ROLLBACKS


def demoted(log: list[dict[str, Any]]) -> set[int]:
    """Versions rolled back and not promoted again since."""
    out: set[int] = set()
    for r in moves(log):
        if demotes(r) and r.get("from") is not None:
            out.add(int(r["from"]))
        out.discard(int(r["to"]))
    return out


def chain(log: list[dict[str, Any]]) -> list[int]:
    """Every champion in the order it held the alias (a version appears once per time)."""
    found: list[int] = []
    for r in moves(log):
        if not found and r.get("from") is not None:
            found.append(int(r["from"]))
        found.append(int(r["to"]))
    return found


def rollback_target(log: list[dict[str, Any]], current: int | None) -> int | None:
    """The version a rollback from `current` goes to: the newest champion before it, by the
    log, that was not rolled back since. Never forward: only the
    champions that held the alias before `current` last took it are candidates."""
    held = chain(log)
    if current is None or current not in held:
        return None
    last = len(held) - 1 - held[::-1].index(current)
    skip = demoted(log) | {current}
    return next((v for v in reversed(held[:last]) if v not in skip), None)


def named(log: list[dict[str, Any]]) -> set[int]:
    """Every version the log names: a champion, a `@previous`, the subject of a note."""
    out: set[int] = set()
    for r in log:
        for key in ("to", "from", "previous", "version"):
            if isinstance(r.get(key), int):
                out.add(r[key])
    return out


def last_move_from(log: list[dict[str, Any]], version: int) -> dict[str, Any] | None:
    """The newest move that left `version` (who rolled it back, when)."""
    return next((r for r in reversed(moves(log)) if r.get("from") == version), None)


def moved_away(log: list[dict[str, Any]], seen: int, found: int | None) -> str:
    """One line for a rollback refused because the champion is not the one the operator saw:
    what moved it, by whom and when (from the log)."""
    move = last_move_from(log, seen)
    if move is None:
        return (f"@champion is v{found}, not v{seen} as when this command started; "
                "not rolling back (see `greenlight history`)")
    what = ("already rolled back" if move.get("action") in ROLLBACKS
            else f"already moved ({move.get('action')})")
    return (f"champion {what} from v{seen} to v{move['to']} by {move.get('by') or 'unknown'} "
            f"at {move.get('at')}; not rolling back again (see `greenlight history`)")


KINDS = {"promote": "promotion", "canary": "canary", "rollback": "rollback",
         "auto-rollback": "auto-rollback", EXTERNAL: "external"}


def kind(record: dict[str, Any], log: list[dict[str, Any]]) -> str:
    """What a move was, in the words of `greenlight history`: a plain promotion, an
    approval (a person approved the version before it moved), a refresh (the gate judged
    the champion stale), a person's named rollback, a rollback, an auto-rollback, a canary
    that reached 100 %, or a move made outside greenlight."""
    action = record.get("action", "")
    if action != "promote":
        return KINDS.get(action, action)
    if record.get(NAMED):
        return "rollback --to"
    before = log[:log.index(record)] if record in log else log
    if any(r.get("action") == "approved" and r.get("version") == record["to"] for r in before):
        return "approval"
    if "stale champion" in str(record.get("reason", "")):
        return "refresh"
    return "bootstrap" if record.get("from") is None else "promotion"


def evidence(record: dict[str, Any], limit: int = 3) -> str:
    """The figures and batches a move was decided on, short (the JSON has them all)."""
    metrics = record.get("metrics") or {}
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
             for k, v in list(metrics.items())[:limit]]
    batches = record.get("batches") or []
    if batches:
        parts.append(f"{len(batches)} batch(es)")
    return ", ".join(parts)


def rows(log: list[dict[str, Any]], since: datetime | None = None) -> list[dict[str, Any]]:
    """Every move of `@champion` as `greenlight history` shows it, oldest first."""
    out = []
    for r in moves(log):
        at = r.get("at")
        if since is not None and at and datetime.fromisoformat(at) < since:
            continue
        out.append({"at": at, "kind": kind(r, log), "from": r.get("from"), "to": r.get("to"),
                    "by": r.get("by"), "reason": r.get("reason"), "evidence": evidence(r),
                    "metrics": r.get("metrics") or {}, "batches": r.get("batches") or []})
    return out
