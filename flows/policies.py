"""Promotion policies: their names, what each does with a gate verdict, and what each needs to
run (standard library and core only, so the command line can refuse a run before it imports
Prefect)."""

from __future__ import annotations

from typing import Literal

from core.servers import real_api_url

Policy = Literal["monitor", "shadow", "manual", "partial", "auto"]
Route = Literal["promote", "ask", "challenger", "none"]

# What `auto` promotes; `manual` asks a person about each of these, `partial` about the
# unproven ones. `marginal` is promoted by no policy on its own, but `partial` asks about it,
# and `manual` (the most careful policy) never asks less than `partial`.
_ROUTES: dict[str, dict[str, Route]] = {
    "auto": {"clear": "promote", "refresh": "promote"},
    "partial": {"clear": "promote", "marginal": "ask", "refresh": "ask"},
    "manual": {"clear": "ask", "marginal": "ask", "refresh": "ask"},
    "shadow": {"clear": "challenger"},
}


def route(policy: str, verdict: str) -> Route:
    """What happens to a challenger, given the policy and the gate's verdict.

    "promote", "ask" (pause for a person), "challenger" (shadow), or "none". A "refresh" (a
    challenger on newer data that the champion does not beat) is promoted by `auto`, so
    `manual` puts it to the approver rather than dropping it. The first model (verdict
    "bootstrap") is promoted under every policy but monitor: with no champion there is
    nothing to protect and nothing to serve."""
    if policy == "monitor" or verdict in ("fail", "insufficient"):
        return "none"
    if verdict == "bootstrap":
        return "promote"
    return _ROUTES.get(policy, {}).get(verdict, "none")


def route_note(policy: str, verdict: str, routed: str) -> str:
    """One line on what the policy did with the verdict, for the cycle's artifact and status,
    so a challenger that is neither promoted nor asked about never goes unexplained."""
    did = {"promote": "promoted", "ask": "put to the approver", "challenger":
           "registered as @challenger (shadow)", "none": "not promoted"}[routed]
    why = "" if routed != "none" else (
        ": the gate did not pass" if verdict in ("fail", "insufficient")
        else f": policy {policy} acts only on a gate verdict of "
             f"{' or '.join(sorted(_ROUTES.get(policy, {}))) or 'bootstrap'}")
    return f"policy {policy}, gate {verdict}: {did}{why}"


def approval_needs_server(policy: str, api_url: str | None) -> str | None:
    """Why this policy cannot run here, or None: approval needs a Prefect UI to answer in.

    The one check, for the command line (before it imports Prefect) and the flow (for runs
    not started by it): `api_url` counts only if it is a real server (core/servers.py),
    not the temporary one an embedded run starts, whose UI dies with the process."""
    if policy in ("manual", "partial") and not real_api_url(api_url):
        return (f"policy {policy} asks for approval in the Prefect UI, which needs a Prefect "
                "server: run `greenlight up` or set PREFECT_API_URL")
    return None
