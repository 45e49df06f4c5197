"""greenlight's scheduled deployments, defined once.

`greenlight up` serves these; `deployments/prefect.yaml` mirrors them for work pools and
workers, and a test keeps the two in agreement. Light on purpose: no Prefect import.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

FLOW_NAME = "greenlight-cycle"  # the @flow name of flows.cycle.cycle
ENTRYPOINT = "flows/cycle.py:cycle"
WORK_POOL = "greenlight"
TIMEZONE = "UTC"


# Alarms that retrain (tasks/monitoring/alarms.py; kept as strings here so this module stays light).
RETRAIN_EVENTS = ("greenlight.drift.detected", "greenlight.model.decayed")
# One retrain per burst: a monitoring run may raise both events, and a trigger with
# threshold 1 fires once per `within` window (later events in the window are dropped).
RETRAIN_DEBOUNCE_SECONDS = 300


@dataclass(frozen=True)
class DeploymentDef:
    """One deployment of the cycle: a promotion policy on a schedule, or on events."""

    name: str
    policy: str
    cron: str | None
    description: str
    force_retrain: bool = False
    on_events_from: str | None = None  # retrain on alarms raised by runs of this policy
    active: bool = True  # False: its schedule (or trigger) is paused until switched on

    def schedules(self) -> list[dict[str, Any]] | None:
        """The schedules as prefect.yaml writes them."""
        if not self.cron:
            return None
        return [{"cron": self.cron, "timezone": TIMEZONE,
                 **({} if self.active else {"active": False})}]

    @property
    def full_name(self) -> str:
        """What `prefect deployment run` takes: `<flow>/<deployment>`."""
        return f"{FLOW_NAME}/{self.name}"

    def parameters(self, dataset: str, home: Path | str | None) -> dict[str, Any]:
        """The run parameters; `home=None` lets the flow use the worker's GREENLIGHT_HOME."""
        params = {"dataset": dataset, "policy": self.policy,
                  "home": None if home is None else str(home)}
        return {**params, "force_retrain": True} if self.force_retrain else params

    def triggers(self, dataset: str) -> list[dict[str, Any]]:
        """Deployment triggers, as prefect.yaml writes them: the alarms of `on_events_from`
        runs on this dataset start this deployment, with no glue code."""
        if not self.on_events_from:
            return []
        return [{"type": "event", "enabled": self.active,
                 "match": {"prefect.resource.id": f"greenlight.dataset.{dataset}",
                           "greenlight.policy": self.on_events_from},
                 "expect": list(RETRAIN_EVENTS), "posture": "Reactive", "threshold": 1,
                 "within": RETRAIN_DEBOUNCE_SECONDS}]


# Every deployment greenlight defines; `for_policy` says which of them are switched on.
CATALOG: tuple[DeploymentDef, ...] = (
    DeploymentDef("greenlight-auto", "auto", "*/15 * * * *",
                  "Every 15 minutes: ingest what landed, and retrain and promote on drift "
                  "when the challenger passes the gate. Active with `greenlight up` "
                  "(--policy auto, the default)."),
    DeploymentDef("greenlight-manual", "manual", "0 * * * *",
                  "Hourly: like greenlight-auto, but a passing challenger waits for a "
                  "person to approve it in the Prefect UI. Active with `greenlight up "
                  "--policy manual`."),
    DeploymentDef("greenlight-monitor", "monitor", "*/15 * * * *",
                  "Every 15 minutes: ingest, validate and monitor only. Alarms become Prefect "
                  "events (greenlight.drift.detected, greenlight.model.decayed, ...); "
                  "greenlight-retrain answers them. Active with `greenlight up --policy "
                  "monitor`."),
    DeploymentDef("greenlight-retrain", "auto", None,
                  "No schedule: started by greenlight-monitor's drift and decay events. "
                  "Retrains on the newest batches, gates, and promotes when the gate passes.",
                  force_retrain=True, on_events_from="monitor"),
)

# The policies `greenlight up --policy` serves: each has its own deployments.
POLICIES = ("auto", "manual", "monitor")
DEFAULT_POLICY = "auto"


def belongs_to(d: DeploymentDef, policy: str) -> bool:
    """Whether `d` is one of `policy`'s deployments: it runs that policy, or answers that
    policy's alarms. greenlight-retrain belongs to monitor (it answers its alarms) and to
    auto (it promotes as auto does), never to manual: under manual nothing promotes
    without a person."""
    return d.policy == policy or d.on_events_from == policy


def for_policy(policy: str) -> tuple[DeploymentDef, ...]:
    """Every deployment, with only `policy`'s switched on and the others paused.

    One dataset has one promotion policy at a time: schedules of two policies over one
    landing/ would race for the same batches (an auto run once promoted a batch landed
    for a manual run, without approval). The others stay registered, paused, so the UI
    shows them and a restart with another `--policy` pauses this one's in turn."""
    if policy not in POLICIES:
        raise ValueError(f"--policy {policy}: up serves one of {', '.join(POLICIES)}")
    return tuple(replace(d, active=belongs_to(d, policy)) for d in CATALOG)


# What `deployments/prefect.yaml` declares, and `greenlight up` serves by default.
DEPLOYMENTS: tuple[DeploymentDef, ...] = for_policy(DEFAULT_POLICY)
