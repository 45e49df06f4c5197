"""The Prefect events greenlight raises, named once, and the one way they are raised.

Deployment triggers (deployments/prefect.yaml) retrain on the alarm events; the
automations `greenlight notify` sets up (cli/notify.py) tell people about all of them.
Every event's resource is the dataset, and its payload carries `dataset`, and where there
is one, the model `version` and a `link` to look at.
"""

from __future__ import annotations

import os
from typing import Any

DRIFT_EVENT = "greenlight.drift.detected"
DECAY_EVENT = "greenlight.model.decayed"
QUALITY_EVENT = "greenlight.data.quality"
FAILED_EVENT = "greenlight.predictions.failed"
APPROVAL_EVENT = "greenlight.approval.waiting"
ROLLBACK_EVENT = "greenlight.model.rolled_back"
QUARANTINE_EVENT = "greenlight.batch.quarantined"
EXTERNAL_EVENT = "greenlight.model.moved_outside"  # an alias moved outside greenlight


def dataset_resource(dataset: str, policy: str | None = None) -> dict[str, str]:
    """The event's resource: the dataset, labelled with the run's policy when there is one,
    so a trigger can choose which runs it answers (the retrain deployment answers
    `monitor`)."""
    found = {"prefect.resource.id": f"greenlight.dataset.{dataset}",
             "prefect.resource.name": dataset, "greenlight.dataset": dataset}
    return found | ({"greenlight.policy": policy} if policy else {})


def run_link() -> str | None:
    """The Prefect UI page of the flow run this code runs in, if there is one to open."""
    try:
        from prefect.runtime import flow_run

        return flow_run.ui_url or None
    except Exception:  # outside a flow run, or no UI configured: no link, never a failure
        return None


def emit(event: str, dataset: str, payload: dict[str, Any], *, policy: str | None = None,
         related: list[dict[str, str]] | None = None) -> None:
    """Raise `event` about `dataset`. Never fails the caller: an event is news, not state,
    and Prefect buffers and retries it in the background (and drains it at exit).

    With no Prefect API set there is nobody to tell, and asking Prefect would start a
    temporary server: a light command such as `greenlight rollback` then raises nothing."""
    if not os.environ.get("PREFECT_API_URL"):
        return
    from prefect.events import emit_event

    from core.clean import json_safe

    try:
        emit_event(event=event, resource=dataset_resource(dataset, policy),
                   related=related or [], payload=json_safe({"dataset": dataset, **payload}))
    except Exception:  # noqa: BLE001 (see the docstring)
        pass
