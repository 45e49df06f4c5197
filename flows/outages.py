"""A server that is down gets one clear line, not a traceback or a hang.

Both checks are for the CLI: Prefect is asked before a command needs it (one plain HTTP
request), MLflow failures are recognised after the cycle's own retries gave up.
"""

from __future__ import annotations

import re

CAUSE = re.compile(r"\[Errno -?\d+\] ([^'\")]+)|(timed out|Read timed out)")
UNREACHABLE = ("Max retries exceeded", "Connection refused", "Failed to establish",
               "Connection aborted", "timed out")


def _cause(text: str) -> str:
    """The OS-level reason (`Connection refused`) out of a long client message."""
    found = CAUSE.search(text)
    return (found.group(1) or found.group(2)).strip() if found else text.splitlines()[0][:120]


def prefect_unreachable(api_url: str | None) -> str | None:
    """Why the Prefect server at `api_url` cannot be used now, or None when it answers."""
    if not api_url:
        return None
    import urllib.error
    import urllib.request

    # Plain HTTP, not Prefect's client: the question needs no Prefect import. Any answer,
    # even 401 from a server behind auth, means it is up.
    try:
        urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=10).close()
        return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as exc:
        failure = getattr(exc, "reason", exc)
    return (f"Prefect server at {api_url} is unreachable ({_cause(str(failure))}): start it "
            "(greenlight up) or unset PREFECT_API_URL to run embedded")


def mlflow_unreachable(exc: BaseException, tracking_uri: str) -> str | None:
    """The one line for a cycle that failed because MLflow was down, or None if it was not.

    By then the register/promote tasks have retried with backoff and MLflow's client has
    retried each call (registry/store.py bounds both), and nothing was promoted."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if (type(exc).__name__ in ("MlflowException", "ConnectionError", "MaxRetryError")
                and any(marker in text for marker in UNREACHABLE)):
            return (f"MLflow server at {tracking_uri} is unreachable ({_cause(text)}), still "
                    "after retries; the champion did not move and no batch is lost: start the "
                    "server and run again")
        exc = exc.__cause__ or exc.__context__
    return None
