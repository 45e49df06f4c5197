"""Prefect's flow-run heartbeat, off where nothing reads it.

Prefect 3.8 joins the heartbeat thread when a sync flow run ends, and that thread sleeps in
1 s steps (`prefect/flow_engine.py`, `_send_heartbeats`): every cycle waits up to a second
for it. Heartbeats are read only by a zombie-run automation ("flow run heartbeat missed"),
and greenlight sets none up, so by default they are off. A team that adds such an
automation sets `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` (seconds, >= 30), and that value wins.

The environment cannot say "off" (Prefect refuses None there), so this sets it in code, on
the process-wide settings (and the current settings context) that flow runs read.
"""

from __future__ import annotations

import os

SETTING_ENV = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"


def off_unless_asked() -> bool:
    """Turn the heartbeat off unless the user set its frequency; True if it is now off."""
    if os.environ.get(SETTING_ENV) or os.environ.get("PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        return False
    import prefect.context

    # Both: a settings context entered before this import (a test harness) has its own copy.
    for context in (prefect.context.GLOBAL_SETTINGS_CONTEXT,
                    prefect.context.get_settings_context()):
        context.settings.flows.heartbeat_frequency = None
    return True
