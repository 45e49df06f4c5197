"""The promotion log and the registry check each other.

The log is the champion's history; the registry holds the versions and the aliases. A
registry that lacks a version or an alias the log names was deleted, replaced, or restored
from an older backup: it is refused in one line that says what is missing and how to
restore, and nothing is bootstrapped over it (a new v1 would take the name of a version
the log already holds). An alias that holds another version than the log says was moved
outside greenlight (the MLflow UI or client): the move is written to the log as
`action: external`, with what is known, raised as an event and told like a rollback.

The comparison holds the registry's file lock, so a greenlight move half-way (aliases set,
record not yet written) is never taken for an external one on this machine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from filelock import FileLock

from core import events
from core.names import CHAMPION, PREVIOUS
from registry import cards, history, promote
from registry.store import Registry
from registry.versions import aliases, all_versions

RESTORE = "docs/reliability.md, Backup and restore"
EXTERNAL_EVENT = events.EXTERNAL_EVENT


class RegistryLost(ValueError):
    """The registry lacks what the promotion log names: refuse, never bootstrap over it."""


def lost(reg: Registry, log: list[dict[str, Any]], now: dict[str, int]) -> str | None:
    """One line naming what the registry lacks of the log, or None when nothing is."""
    if not history.moves(log):
        return None
    held = {v.version for v in all_versions(reg)}
    missing = [f"v{v}" for v in sorted(history.named(log) - held)]
    if CHAMPION not in now:
        missing.append("@champion")
    if not missing:
        return None
    return (f"{reg.model_name}: the MLflow registry ({reg.tracking_uri}) lacks "
            f"{', '.join(missing)} that the promotion log ({reg.promotions_path}) names, "
            f"champion v{history.champion(log)}: a deleted or replaced store, or a restore "
            f"from an older backup. Nothing was bootstrapped over it; restore the state "
            f"dir's MLflow store from the backup taken with this log ({RESTORE})")


def _external(reg: Registry, alias: str, was: int | None, now: int | None,
              others: dict[str, int]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"), "model": reg.model_name,
        "action": history.EXTERNAL, "alias": alias, "by": "unknown (outside greenlight)",
        "reason": f"@{alias} found on v{now}, where the promotion log had v{was}: moved "
                  "outside greenlight (the MLflow UI or client)", "aliases": others}
    if alias == CHAMPION:
        record.update({"from": was, "to": now, "previous": None, "metrics": {},
                       "batches": []})
    else:
        record.update({"version": now, "was": was})
    return record


def reconcile(reg: Registry) -> list[dict[str, Any]]:
    """Compare under the lock: raise RegistryLost for a registry that lost what the log
    names; write every alias moved outside greenlight to the log. Returns those records."""
    with FileLock(str(reg.lock_path), timeout=promote.LOCK_TIMEOUT_S):
        log, now = promote.records(reg), aliases(reg)
        problem = lost(reg, log, now)
        if problem:
            raise RegistryLost(problem)
        found = []
        logged_champion, logged_previous = history.champion(log), history.previous(log)
        if history.moves(log) and now.get(CHAMPION) != logged_champion:
            found.append(_external(reg, CHAMPION, logged_champion, now.get(CHAMPION), now))
        if history.moves(log) and now.get(PREVIOUS) != logged_previous:
            found.append(_external(reg, PREVIOUS, logged_previous, now.get(PREVIOUS), now))
        for record in found:
            promote._append(reg, record)  # noqa: SLF001 (the log's one writer)
    return found


def tell(reg: Registry, found: list[dict[str, Any]], link: str | None = None) -> None:
    """Raise the external-move event for each record (the notifications send it on), and
    rewrite the cards of the versions it touched."""
    for record in found:
        version = record.get("to", record.get("version"))
        events.emit(EXTERNAL_EVENT, reg.dataset, {
            "version": version, "from": record.get("from", record.get("was")),
            "alias": record["alias"], "reason": record["reason"], "action": history.EXTERNAL,
            "link": link or version_link(reg, version)})
        cards.refresh(reg, version, record.get("from"))


def check(reg: Registry, link: str | None = None) -> list[dict[str, Any]]:
    """`reconcile`, then tell about what was found: the one call of a command or a cycle
    that reads the champion. Raises RegistryLost (its message is the one line to show)."""
    found = reconcile(reg)
    tell(reg, found, link)
    return found


def version_link(reg: Registry, version: int | None) -> str:
    """Where a person sees a version: its MLflow UI page with a server, else how to open
    the local store's UI on it."""
    uri = reg.tracking_uri.rstrip("/")
    page = f"#/models/{reg.model_name}/versions/{version}"
    if uri.startswith(("http://", "https://")):
        return f"{uri}/{page}"
    return f"uv run mlflow ui --backend-store-uri {uri}, then open /{page}"


def verdict(reg: Registry) -> str | None:
    """`check` for a command that only reads (`greenlight status`): the one line when the
    registry lost what the log names, else None (external moves are recorded and told)."""
    try:
        check(reg)
    except RegistryLost as exc:
        return str(exc)
    return None
