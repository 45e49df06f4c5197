"""Which Prefect API is a real server: one a person can open and that outlives this process.

`cli/embedded.py` starts a temporary Prefect server for embedded runs and records its URL
in `TEMPORARY_ENV`. Approval needs a UI to approve in, and Prefect's concurrency leases on
a temporary server die with the process, so the flows and the locks ask `real_api_url`
rather than `PREFECT_API_URL`.
"""

from __future__ import annotations

import os

TEMPORARY_ENV = "GREENLIGHT_PREFECT_TEMPORARY"  # the API URL of this process's own server


def temporary_api_url() -> str | None:
    """The API URL of the temporary server this process started, if it did."""
    return os.environ.get(TEMPORARY_ENV) or None


def real_api_url(api_url: str | None) -> str | None:
    """`api_url` unless it is this process's temporary server: a server with a UI that a
    person can open, and that outlives this process (approval and Prefect's locks need it)."""
    return None if not api_url or api_url == temporary_api_url() else api_url
