"""Promotion policies: their names, and what each needs to run (standard library only, so the
command line can refuse a run before it imports Prefect)."""

from __future__ import annotations

from typing import Literal

Policy = Literal["monitor", "shadow", "manual", "partial", "auto"]


def approval_needs_server(policy: str, api_url: str | None) -> str | None:
    """Why this policy cannot run here, or None: approval needs a Prefect UI to answer in."""
    if policy in ("manual", "partial") and not api_url:
        return (f"policy {policy} asks for approval in the Prefect UI, which needs a Prefect "
                "server: run `greenlight up` or set PREFECT_API_URL")
    return None
