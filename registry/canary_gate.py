"""What a version's tags say about the gate before a canary ramp.

A challenger the cycle registered carries its gate verdict and the champion it was judged
against (registry/tags.py). One set by hand (the MLflow client or UI) carries neither, or a
verdict against an older champion. `greenlight canary` gates such a challenger first and
writes the outcome here, so the next ramp against the same champion need not repeat it, and
an override with `--force` stays on the version for anyone who reads it later."""

from __future__ import annotations

from datetime import UTC, datetime

from core import names
from registry.store import Registry
from registry.versions import VersionInfo

PASSING = ("clear", "bootstrap", "refresh")  # as tasks.gate.gate.PASSING
VERDICT_TAG = "greenlight.canary_gate"  # the pre-ramp gate's verdict
AGAINST_TAG = "greenlight.canary_gate_champion"  # the champion it was judged against
REASON_TAG = "greenlight.canary_gate_reason"
FORCED_TAG = "greenlight.canary_forced"  # who ramped it anyway, when, and over what


def passed_against(info: VersionInfo, champion: int) -> str | None:
    """Where the version passed a gate against this champion (the cycle's, or the canary's
    own), as a few words; None when it never did, so it must be gated before a ramp."""
    cycle = info.tags.get(names.GATE_TAG)
    if cycle in PASSING and info.tags.get(names.CHAMPION_SEEN_TAG) == str(champion):
        return f"the cycle's gate ({cycle}) against v{champion}"
    own = info.tags.get(VERDICT_TAG)
    if own in PASSING and info.tags.get(AGAINST_TAG) == str(champion):
        return f"the canary's gate ({own}) against v{champion}"
    return None


def record_gate(reg: Registry, version: int, champion: int, verdict: str, reason: str) -> None:
    """The pre-ramp gate's outcome on the version (tags are strings, the reason cut short)."""
    for key, value in {VERDICT_TAG: verdict, AGAINST_TAG: str(champion),
                       REASON_TAG: reason[:4000]}.items():
        reg.client.set_model_version_tag(reg.model_name, str(version), key, value)


def record_forced(reg: Registry, version: int, champion: int, by: str, why: str) -> str:
    """The override on the version: who ramped it past a refused gate, when, and why.
    Returns the tag's value (the canary's history carries the same line)."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    value = f"by {by} at {at} against v{champion}: {why}"[:4000]
    reg.client.set_model_version_tag(reg.model_name, str(version), FORCED_TAG, value)
    return value
