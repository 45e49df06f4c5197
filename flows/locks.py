"""The promotion lock against a Prefect server: a global concurrency limit of one slot.

Inside `registry.promote` every move also holds an OS file lock, which is enough on one
machine (and the only lock that works embedded, where Prefect's leases live in a
throw-away server: STACK_NOTES). Workers on several machines share no file lock, so with a
server the move also holds a slot of a global concurrency limit, with `strict=True`: a
missing limit must fail the move, never let it run unlocked. A holder that dies keeps its
slot until its lease expires (LEASE_SECONDS, Prefect's minimum), then the next one goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

LEASE_SECONDS = 60.0
WAIT_SECONDS = 300.0


def limit_name(model_name: str) -> str:
    return f"greenlight-promote-{model_name}"


def _ensure_limit(name: str) -> None:
    """Create the one-slot limit on first use; a concurrent creator may win, which is fine."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass


@contextmanager
def promotion_lock(model_name: str, wait_seconds: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the model's promotion slot on the Prefect server; embedded, the file lock alone."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        yield
        return
    from prefect.concurrency.sync import concurrency

    name = limit_name(model_name)
    _ensure_limit(name)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=wait_seconds,
                     lease_duration=LEASE_SECONDS):
        yield
