"""What happened so far, as one object: the source for `greenlight status` and the demo table."""

from __future__ import annotations

from typing import Any

from core.clean import json_safe
from core.names import CHALLENGER, CHAMPION, PREVIOUS
from core.secrets import mask_url
from flows.params import Guardrails
from registry import audit, probation, promote, versions
from registry.store import Registry
from tasks.data import manifest
from tasks.data.home import Home

BATCH_FIELDS = ("id", "file", "status", "reason", "rows", "drift_share", "label_score",
                "champion_metric", "decision", "challenger_metric", "gate_champion_metric",
                "registered_version", "promoted_version", "gate", "held_reason",
                "released_by", "route_note", "approval", "approval_by", "approval_reason",
                "promotion_refused", "no_champion",
                "at")  # its last record: where a rollback by hand goes in the status table


def on_probation(reg: Registry, batches: int, hours: float | None) -> dict[str, Any] | None:
    """The champion's probation in figures and words, or None when it is not on one."""
    found = probation.current(reg)
    if found is None:
        return None
    return {"version": found.version, "previous": found.previous,
            "since": found.since.isoformat(timespec="seconds"), "judged": found.judged,
            "left": found.left(batches, hours)}


def challenger_state(home: Home, reg: Registry, version: int | None) -> dict[str, Any] | None:
    """@challenger and what it is doing: ramping (canary at N%), tripped (the last ramp rolled
    back, and why), else shadow (scored beside the champion where the service runs with
    --shadow); with the pre-ramp gate's verdict or an override (registry/canary_gate.py)."""
    if version is None:
        return None
    from registry import canary_gate
    from serving import canary

    state, last = canary.read_state(home.scratch), canary.history(home.scratch)[-1:]
    moves = [h for h in last if not h.get("note")]
    if state["fraction"] > 0:
        doing = f"canary at {state['fraction']:.0%} ({state.get('reason', '')})"
    elif moves and str(moves[0].get("reason", "")).startswith("rolled back"):
        doing = f"tripped at {moves[0].get('at')}: {moves[0]['reason']}"
    else:
        doing = "shadow (canary 0%)"
    tags = versions.by_version(reg, version).tags
    gate = tags.get(canary_gate.VERDICT_TAG) or tags.get("greenlight.gate")
    return {"version": version, "state": doing, "gate": gate,
            "forced": tags.get(canary_gate.FORCED_TAG)}


def status(home: Home, reg: Registry, guardrails: Guardrails | None = None
           ) -> dict[str, Any]:
    """Stable, machine-readable state: aliases, versions, batches and promotions, and
    whether the champion is on probation (for as long as `guardrails` say)."""
    guardrails = guardrails or Guardrails()
    lost = audit.verdict(reg)  # the registry and the promotion log check each other
    current = versions.aliases(reg)
    batches = [{k: b.get(k) for k in BATCH_FIELDS} for b in manifest.load(home.manifest).values()]
    return json_safe({
        "home": str(home.root), "model": reg.model_name, "tracking_uri": mask_url(reg.tracking_uri),
        "champion": current.get(CHAMPION), "previous": current.get(PREVIOUS),
        "aliases": current,
        "challenger": challenger_state(home, reg, current.get(CHALLENGER)),
        "versions": [{"version": v.version, "decision": v.tags.get("greenlight.decision"),
                      "gate": v.tags.get("greenlight.gate_reason")}
                     for v in versions.all_versions(reg)],
        "batches": batches,
        "promotions": promote.records(reg),
        "probation": on_probation(reg, guardrails.baking_batches, guardrails.baking_hours),
        "registry_lost": lost,
    })
