"""greenlight's scheduled deployments, defined once.

`greenlight up` serves these; `deployments/prefect.yaml` mirrors them for work pools and
workers, and a test keeps the two in agreement. Light on purpose: no Prefect import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLOW_NAME = "greenlight-cycle"  # the @flow name of flows.cycle.cycle
ENTRYPOINT = "flows/cycle.py:cycle"
WORK_POOL = "greenlight"
TIMEZONE = "UTC"


@dataclass(frozen=True)
class DeploymentDef:
    """One deployment of the cycle: a promotion policy on a schedule."""

    name: str
    policy: str
    cron: str
    description: str

    @property
    def full_name(self) -> str:
        """What `prefect deployment run` takes: `<flow>/<deployment>`."""
        return f"{FLOW_NAME}/{self.name}"

    def parameters(self, dataset: str, home: Path | str | None) -> dict[str, Any]:
        """The run parameters; `home=None` lets the flow use the worker's GREENLIGHT_HOME."""
        return {"dataset": dataset, "policy": self.policy,
                "home": None if home is None else str(home)}


DEPLOYMENTS: tuple[DeploymentDef, ...] = (
    DeploymentDef("greenlight-auto", "auto", "*/15 * * * *",
                  "Every 15 minutes: ingest what landed, and retrain and promote on drift "
                  "when the challenger passes the gate."),
    DeploymentDef("greenlight-manual", "manual", "0 * * * *",
                  "Hourly: like greenlight-auto, but a passing challenger waits for a "
                  "person to approve it in the Prefect UI."),
)
