"""Test-only fault injection: die by SIGKILL at a named step boundary of the cycle.

Set `GREENLIGHT_CRASH_AT=<step>` (one of STEPS) and the cycle kills its own process the
moment that step has finished, with no clean-up of any kind, as a power cut or the OOM
killer would. The crash tests use it to prove that running again ends where an
uninterrupted run ends. Never set it outside tests.

`GREENLIGHT_HOLD_AT=<step>` with `GREENLIGHT_HOLD_FILE=<path>` instead makes the cycle wait
just *before* that step (register or promote): it creates the file and carries on once the
test deletes it. The outage tests stop a server in that window, so the step meets it down.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

CRASH_ENV = "GREENLIGHT_CRASH_AT"
STEPS = ("ingest", "validate", "monitor", "train", "register", "promote")
HOLD_ENV, HOLD_FILE_ENV = "GREENLIGHT_HOLD_AT", "GREENLIGHT_HOLD_FILE"
HOLD_LIMIT_S = 600.0  # a test that never releases the hold must not hang CI forever


def crash_point(step: str) -> None:
    """SIGKILL this process if the test asked to crash after `step`."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def hold_point(step: str) -> None:
    """Wait before `step` while the test's hold file exists, if the test asked to."""
    if os.environ.get(HOLD_ENV) != step or not os.environ.get(HOLD_FILE_ENV):
        return
    hold = Path(os.environ[HOLD_FILE_ENV])
    hold.touch()
    deadline = time.monotonic() + HOLD_LIMIT_S
    while hold.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
