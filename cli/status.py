"""What happened so far, as one object: the source for `greenlight status` and the demo table."""

from __future__ import annotations

from typing import Any

from core.clean import json_safe
from core.names import CHAMPION, PREVIOUS
from registry import promote, versions
from registry.store import Registry
from tasks.data import manifest
from tasks.data.home import Home

BATCH_FIELDS = ("id", "file", "status", "reason", "rows", "drift_share", "label_score",
                "champion_metric", "decision", "challenger_metric", "gate_champion_metric",
                "registered_version", "promoted_version", "gate", "held_reason",
                "released_by", "route_note", "approval", "approval_by", "approval_reason",
                "promotion_refused", "no_champion")


def status(home: Home, reg: Registry) -> dict[str, Any]:
    """Stable, machine-readable state: aliases, versions, batches and promotions."""
    current = versions.aliases(reg)
    batches = [{k: b.get(k) for k in BATCH_FIELDS} for b in manifest.load(home.manifest).values()]
    return json_safe({
        "home": str(home.root), "model": reg.model_name, "tracking_uri": reg.tracking_uri,
        "champion": current.get(CHAMPION), "previous": current.get(PREVIOUS),
        "aliases": current,
        "versions": [{"version": v.version, "decision": v.tags.get("greenlight.decision"),
                      "gate": v.tags.get("greenlight.gate_reason")}
                     for v in versions.all_versions(reg)],
        "batches": batches,
        "promotions": promote.records(reg),
    })
