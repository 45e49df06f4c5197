"""A server that is down gets one clear line, not a traceback or a hang.

Both checks are for the CLI: Prefect is asked before a command needs it (one plain HTTP
request), MLflow failures are recognised after the cycle's own retries gave up.
"""

from __future__ import annotations

import logging
import re
import traceback
from pathlib import Path

from core.secrets import mask_url

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


ERRORS_LOG = Path("logs") / "errors.log"
# Loggers whose records are retry chatter: a server that is down makes urllib3 warn once per
# retried request (hundreds of lines). They go to the error log only.
CHATTER = ("urllib3", "requests", "mlflow.utils.request_utils", "mlflow.utils.rest_utils")


def errors_log(root: Path) -> Path:
    """Where the details of a failure go: `<state dir>/logs/errors.log`."""
    return root / ERRORS_LOG


def write_traceback(log: Path, exc: BaseException) -> None:
    """Append `exc` with its traceback to the error log (created on first use)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as fh:
        traceback.print_exception(exc, file=fh)


def _flow_failure(record: logging.LogRecord) -> bool:
    """Prefect's own report that the flow run or one of its task runs failed (the
    exception, then the final state): the command says it in its one line, so on the
    console these repeat it (a full disk made five of them)."""
    if not record.name.startswith(("prefect.flow_runs", "prefect.task_runs")):
        return False
    return bool(record.exc_info) or record.getMessage().startswith(
        ("Finished in state Failed", "Finished in state Retrying"))


class _NeverRaises(logging.FileHandler):
    """The error log's handler: a log it cannot open (a full disk, a read-only state dir)
    drops the record, as a failed write does, instead of raising into the code that logged."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
        except Exception:  # noqa: BLE001
            self.handleError(record)


class _ToErrorLog(logging.Filter):
    """A console handler's filter: retry chatter goes to the error log only, and a record
    with a traceback keeps its one line on the console, its traceback in the log."""

    def __init__(self, log: Path) -> None:
        super().__init__()
        self.log = log
        self.file = _NeverRaises(log, encoding="utf-8", delay=True)
        self.file.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(CHATTER) or _flow_failure(record):
            self.file.handle(record)
            return False
        if record.exc_info or record.exc_text:
            self.file.handle(record)
            # Other handlers (Prefect's API log) saw the record before it propagated here.
            record.msg = f"{record.getMessage()} (traceback in {self.log})"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


class _PrefectWarningsOnly(logging.Filter):
    """A console handler's filter: Prefect's own info lines (`Beginning flow run`, a task's
    `Finished in state Completed()`) stay off the console, where the command says what the
    run decided in words. Only the console's: Prefect's API handler, which feeds the UI's
    run logs, sees them before they propagate here. Warnings pass, greenlight's own too
    (they go through the run's `prefect.flow_runs` logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith("prefect")


def quiet_console(root: Path, verbose: bool = True) -> Path:
    """Keep the console to one line per event while a command runs: tracebacks and retry
    warnings from the libraries go to the state dir's error log instead; without `verbose`,
    Prefect's info lines are not shown at all. Call it once the libraries have set up their
    logging (Prefect configures it when imported)."""
    log = errors_log(root)
    log.parent.mkdir(parents=True, exist_ok=True)
    keep = _ToErrorLog(log)
    for name in ("", "mlflow", "prefect"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, _ToErrorLog) for f in handler.filters):
                handler.addFilter(keep)
            if not verbose and not any(isinstance(f, _PrefectWarningsOnly)
                                       for f in handler.filters):
                handler.addFilter(_PrefectWarningsOnly())
    for name in CHATTER:  # with no handler of their own they would reach Python's last resort
        chatter = logging.getLogger(name)
        chatter.addHandler(keep.file)
        chatter.propagate = False
    return log


def mlflow_unreachable(exc: BaseException, tracking_uri: str,
                       log: Path | None = None) -> str | None:
    """The one line for a command that failed because MLflow was down, or None if it was
    not; with `log`, the traceback is appended there and the line says where.

    By then the register/promote tasks have retried with backoff and MLflow's client has
    retried each call (registry/store.py bounds both), and nothing was promoted."""
    line = _mlflow_unreachable(exc, tracking_uri)
    if line is None or log is None:
        return line
    write_traceback(log, exc)
    return f"{line} (details in {log})"


def _mlflow_unreachable(exc: BaseException, tracking_uri: str) -> str | None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if (type(exc).__name__ in ("MlflowException", "ConnectionError", "MaxRetryError")
                and any(marker in text for marker in UNREACHABLE)):
            return (f"MLflow server at {mask_url(tracking_uri)} is unreachable "
                    f"({_cause(text)}), still "
                    "after retries; the champion did not move and no batch is lost: start the "
                    "server and run again")
        exc = exc.__cause__ or exc.__context__
    return None
