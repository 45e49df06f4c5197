"""The approval form: what a person fills in the Prefect UI to promote a challenger, or not."""

from __future__ import annotations

from typing import Literal

from prefect.input import RunInput
from pydantic import Field

from core import events

Choice = Literal["approve", "reject"]


class Approval(RunInput):
    """The form a person fills in the Prefect UI to promote a challenger, or not.

    `decision` is a choice with no default, not a toggle: a toggle left off would be sent as
    "no", so a Submit without a choice would reject. With no default the UI renders a required
    select, and the server refuses an answer without one; the run keeps waiting. `approver`
    has no default either, so every answer names who gave it."""

    decision: Choice = Field(description="Promote this challenger to @champion (approve), or "
                                         "leave the champion as it is (reject)?")
    reason: str = Field("", max_length=1000, description="Why; kept with the version and in "
                                                         "the promotion record.")
    approver: str = Field(min_length=1, max_length=200, description="Your name.")

    @property
    def approved(self) -> bool:
        """True only for an explicit approve: nothing else moves the champion."""
        return self.decision == "approve"


GRACE_S = 60  # how much longer the server's pause lasts than our own wait (> a poll, a request)


def wait_for_answer(form: type[Approval], *, timeout_s: int, key: str,
                    poll_s: float = 5.0, dataset: str | None = None,
                    version: int | None = None) -> Approval | None:
    """Pause the running flow on `form` in the Prefect UI; the answer, or None on a timeout.

    Prefect's `pause_flow_run` gives the server the same timeout as the flow, and the flow
    notices only at its next poll (up to 10 s late); in between, the server's pause-expiry
    service fails the run, which goes red though a timeout here is a decision. So the
    server's pause outlives our deadline by GRACE_S, and at the deadline the flow ends its
    own pause (forced back to Running, after which no answer is accepted) and then reads
    whether an answer came in first. The run is never Failed.

    Once paused, it raises the approval event (with `dataset`, `version` and the run's
    link), so the people `greenlight notify` set up are told that someone must answer."""
    import time

    from prefect import get_client
    from prefect.context import FlowRunContext
    from prefect.input import keyset_from_paused_state
    from prefect.input.actions import read_flow_run_input
    from prefect.states import Paused, Running
    from prefect.utilities.engine import propose_state_sync

    run_id = FlowRunContext.get().flow_run.id
    paused = Paused(timeout_seconds=timeout_s + GRACE_S, reschedule=False, pause_key=key)
    keyset = keyset_from_paused_state(paused)
    paused.state_details.run_input_keyset = keyset
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        state = propose_state_sync(client=client, state=paused, flow_run_id=run_id)
        if not state.is_paused():
            raise RuntimeError(f"flow run {run_id} could not pause for approval: "
                               f"{state.type.value}")
        form.save(keyset)
        if dataset is not None:
            events.emit(events.APPROVAL_EVENT, dataset, {
                "version": version, "link": events.run_link(), "flow_run_id": str(run_id),
                "timeout_s": timeout_s})
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(poll_s, left))
            if client.read_flow_run(run_id).state.is_running():  # a person answered
                return form.load(keyset)
        if not client.read_flow_run(run_id).state.is_running():
            client.set_flow_run_state(run_id, Running(), force=True)
    answered = read_flow_run_input(keyset["response"], flow_run_id=run_id)
    return form.load(keyset) if answered else None
