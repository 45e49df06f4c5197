"""Test-only fault injection: die by SIGKILL at a named step boundary of the cycle.

Set `GREENLIGHT_CRASH_AT=<step>` (one of STEPS) and the cycle kills its own process the
moment that step has finished, with no clean-up of any kind, as a power cut or the OOM
killer would. The crash tests use it to prove that running again ends where an
uninterrupted run ends. Never set it outside tests.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "GREENLIGHT_CRASH_AT"
STEPS = ("ingest", "validate", "monitor", "train", "register", "promote")


def crash_point(step: str) -> None:
    """SIGKILL this process if the test asked to crash after `step`."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
