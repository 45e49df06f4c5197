"""The batch manifest: an append-only JSON-lines log of what happened to every batch.

Append-only, so a crash mid-write can lose at most the last line and never rewrites
history; a batch's state is its records merged in order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import jsonl


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def append(manifest: Path, batch_id: str, **fields: Any) -> None:
    """Record new facts about a batch; fsync so a recorded decision survives a crash."""
    jsonl.append(manifest, {"id": batch_id, "at": now_iso(), **fields})


def load(manifest: Path) -> dict[str, dict[str, Any]]:
    """Current state of every batch, in the order batches first appeared (a torn last line
    from a crash is skipped; the next write supersedes it)."""
    batches: dict[str, dict[str, Any]] = {}
    for record in jsonl.read(manifest):
        batches.setdefault(record["id"], {}).update(record)
    return batches


def pending(manifest: Path) -> list[dict[str, Any]]:
    """Accepted batches that no cycle has decided on yet (for example after a crash)."""
    return [b for b in load(manifest).values()
            if b.get("status") == "accepted" and not b.get("decision")]


# --- holds: a batch whose labels are implausible waits for a person (tasks/data/labels.py) ---
HELD = "held"


def hold(manifest: Path, batch_id: str, reason: str) -> None:
    """Hold an accepted batch from training and gating, with the reason.

    Its rows stay in the lake (nothing is lost); status `held` keeps it out of `pending`
    and out of every training history and gate window, which read `accepted` batches."""
    append(manifest, batch_id, status=HELD, held_reason=reason, held_at=now_iso())


def release(manifest: Path, batch_id: str, *, by: str, reason: str) -> dict[str, Any]:
    """A person lets a held batch through: it becomes accepted and pending again, and the
    record keeps the hold's reason beside who released it and why. Returns the batch's
    record; a batch that is not held is a ValueError naming it and its status."""
    batches = load(manifest)
    matches = [k for k in batches if k == batch_id or k.startswith(batch_id)]
    if len(matches) != 1:
        held = ", ".join(k for k, b in batches.items() if b.get("status") == HELD) or "none"
        what = "no batch" if not matches else f"{len(matches)} batches"
        raise ValueError(f"{manifest}: {what} with id {batch_id!r} (held batches: {held})")
    batch = batches[matches[0]]
    if batch.get("status") != HELD:
        raise ValueError(f"{manifest}: batch {matches[0]} ({batch.get('file')}) is "
                         f"{batch.get('status')}, not held: nothing to release")
    append(manifest, matches[0], status="accepted", released_by=by, released_reason=reason,
           released_at=now_iso())
    return load(manifest)[matches[0]]
