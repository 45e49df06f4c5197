"""The promotion lock against a Prefect server (a global concurrency limit of one slot),
and the cycle's claim on its batches (an OS file lock, `cycle_claim`).

Inside `registry.promote` every move also holds an OS file lock, which is enough on one
machine (and the only lock that works embedded, where Prefect's leases live in a
throw-away server: STACK_NOTES). Workers on several machines share no file lock, so with a
server the move also holds a slot of a global concurrency limit, with `strict=True`: a
missing limit must fail the move, never let it run unlocked. A holder that dies keeps its
slot until its lease expires (LEASE_SECONDS, Prefect's minimum), then the next one goes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

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

    from core.servers import real_api_url

    if not real_api_url(PREFECT_API_URL.value()):
        yield
        return
    from prefect.concurrency.sync import concurrency

    name = limit_name(model_name)
    _ensure_limit(name)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=wait_seconds,
                     lease_duration=LEASE_SECONDS):
        yield


@contextmanager
def command_promotion_lock(model_name: str, *, shared: bool) -> Iterator[None]:
    """The promotion slot for a one-shot command (`greenlight rollback`) on a `shared` state
    dir (an object store, whose workers on other machines share no file lock), as every
    move of a cycle or canary takes it. A local state dir has every writer on this machine,
    where the file lock in `registry.promote` is enough, and the command imports nothing of
    Prefect (it stays as light as `status`). The slot's events are sent before it exits."""
    if not shared or not os.environ.get("PREFECT_API_URL"):
        yield
        return
    try:
        with promotion_lock(model_name):
            yield
    finally:
        _send_events()


def flush_events(timeout: float = 10.0) -> None:
    """Send the events a command raised before it exits (see `_send_events`); nothing to
    do without a Prefect API, where no event is raised."""
    if os.environ.get("PREFECT_API_URL"):
        _send_events(timeout)


def _send_events(timeout: float = 10.0) -> None:
    """Prefect emits an event for each slot taken and released, from a worker thread that
    drains at exit and then prints "Still processing items" to the user. A flow run's engine
    waits for that queue at its end; a command must too (bounded: a server gone meanwhile
    must not hang it)."""
    import threading

    from prefect.events.worker import EventsWorker

    worker = EventsWorker.instance()
    waiter = threading.Thread(target=worker.wait_until_empty, daemon=True)
    waiter.start()
    waiter.join(timeout)
    EventsWorker.drain_all(timeout=timeout)


CLAIM_HOLDER_SUFFIX = ".holder"


def _claim_paths(state_dir: Path, dataset: str) -> tuple[Path, Path]:
    lock = state_dir / f"cycle-{dataset}.lock"
    return lock, lock.with_suffix(CLAIM_HOLDER_SUFFIX)


def _holder(path: Path) -> str:
    """Who holds a claim, as the holder wrote it: `pid 123 since 2026-12-01T14:40:00+00:00`."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {found['pid']} since {found['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


@contextmanager
def shared_claim(state_dir: object, dataset: str) -> Iterator[str | None]:
    """The cycle's claim for a state dir in an object store, shared by workers on several
    machines: a one-slot global concurrency limit on the Prefect server, taken without
    waiting. Its lease is renewed while the cycle runs (a pause for approval included) and
    expires LEASE_SECONDS after a holder dies. Without a server there is nothing that spans
    machines, so that is one line, never an unlocked cycle."""
    from prefect.settings import PREFECT_API_URL

    from core.servers import real_api_url

    if not real_api_url(PREFECT_API_URL.value()):
        raise ValueError(f"GREENLIGHT_HOME={state_dir} is shared by workers, whose cycles "
                         "take their batches through the Prefect server: set PREFECT_API_URL")
    from prefect.concurrency.sync import concurrency

    name = claim_name(state_dir, dataset)
    _ensure_limit(name)
    _hide_taken_slot_errors()
    held = ExitStack()
    try:  # only the taking may time out: the cycle's own errors must pass through
        held.enter_context(concurrency(name, occupy=1, strict=True,
                                       lease_duration=LEASE_SECONDS,
                                       timeout_seconds=CLAIM_WAIT_SECONDS))
    except TimeoutError:
        yield (f"another cycle of {dataset} has its batches (Prefect concurrency limit "
               f"{name}): nothing to do, the next cycle after it takes what is new")
        return
    with held:
        yield None


def claim_name(state_dir: object, dataset: str) -> str:
    """The limit of one dataset in one shared state dir: two homes on one Prefect server
    (prod and staging buckets) never take each other's claim."""
    import hashlib

    return f"greenlight-cycle-{dataset}-{hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]}"


CLAIM_WAIT_SECONDS = 1.0
PREFECT_SLOT_LOGGER = "prefect._internal.concurrency"


def _taken_slot_error(record: object) -> bool:
    """False for Prefect's ERROR about a slot wait that timed out (its service thread logs
    it, at a moment of its own choosing); True for every other record."""
    import logging

    return not (isinstance(record, logging.LogRecord) and record.levelno >= logging.ERROR
                and "ConcurrencySlotAcquisition" in record.getMessage()
                and "TimeoutError" in record.getMessage())


def _hide_taken_slot_errors() -> None:
    """A slot that is taken is an answer, said by the claim in one line, never an ERROR with
    Prefect's service internals: filter that one record out of Prefect's logger, once."""
    import logging

    found = logging.getLogger(PREFECT_SLOT_LOGGER)
    if _taken_slot_error not in found.filters:
        found.addFilter(_taken_slot_error)


@contextmanager
def cycle_claim(state_dir: Path, dataset: str) -> Iterator[str | None]:
    """Claim the dataset's pending batches for one cycle; yields None when this cycle has
    them, or the one line that says another cycle does.

    The claim is an OS file lock held for the whole cycle, a pause for approval included:
    batches waiting for a person's verdict are still pending in the manifest, so a second
    cycle would otherwise monitor, retrain and ask about them again. The kernel drops the
    lock when its holder dies (kill -9, OOM), so a crash never leaves the batches taken.
    It never waits: the second cycle does nothing and the next one finds the batches."""
    from core.files import is_remote

    if is_remote(state_dir):
        with shared_claim(state_dir, dataset) as taken:
            yield taken
        return
    from filelock import FileLock, Timeout

    lock_path, holder_path = _claim_paths(state_dir, dataset)
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(blocking=False)
    except Timeout:
        yield (f"another cycle of {dataset} has its batches ({_holder(holder_path)}; "
               f"claim {lock_path}): nothing to do, the next cycle after it takes what is new")
        return
    try:
        holder_path.write_text(json.dumps({"pid": os.getpid(), "since": datetime.now(
            UTC).isoformat(timespec="seconds")}), encoding="utf-8")
        yield None
    finally:
        lock.release()
