"""Prefect's temporary server, started while the cycle's libraries are still importing.

With no `PREFECT_API_URL`, the first flow run of a process starts a temporary Prefect
server (a uvicorn subprocess with SQLite under `PREFECT_HOME`) and waits for it: seconds
on a 2-core machine, paid after the imports. Started from a thread at the top of a
command, the server's own start-up runs in its process on the other core while this
process imports pandas, MLflow and the rest, so most of that wait disappears. It is
Prefect's own server class, so the first flow run finds it running and uses it; Prefect
stops it when the process exits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


def start_early() -> Callable[[], None]:
    """Start the temporary server in the background; the returned call waits until it
    answers (and raises what starting it raised). Against a real server: nothing to do."""
    if os.environ.get("PREFECT_API_URL"):
        return lambda: None
    # Imported here, in this thread: two threads importing the same package can deadlock.
    from prefect.server.api.server import SubprocessASGIServer

    failure: list[BaseException] = []

    def start() -> None:
        try:
            SubprocessASGIServer().start()
        except BaseException as exc:  # handed to the caller, which decides
            failure.append(exc)

    thread = threading.Thread(target=start, name="prefect-temporary-server", daemon=True)
    thread.start()

    def ready() -> None:
        thread.join()
        if failure:
            raise failure[0]

    return ready
