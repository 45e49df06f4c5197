"""The service's bounds: who may call it, how long a body may take, how many connections.

Each bound answers with a status and is counted in /metrics (`greenlight_errors_total{kind}`
and `greenlight_requests_total{variant="none",status}`), with one log line where a person
has to know (a refused token, a stalled or abandoned upload), never a traceback.

- `GREENLIGHT_SERVE_TOKEN`: when set (and not empty), /predict, /model and /metrics want
  `Authorization: Bearer <token>`, as MLflow wants `MLFLOW_TRACKING_TOKEN` and Prefect
  `PREFECT_API_KEY`; /health stays open for load balancers. Else 401.
- The body of a request must arrive within `body_timeout_s` (408 after), and the server
  takes at most `limit_concurrency` connections at once (uvicorn answers 503 past it) and
  closes an idle keep-alive connection after `timeout_keep_alive` seconds.
"""

from __future__ import annotations

import hmac
import os
import re
from typing import Any

TOKEN_ENV = "GREENLIGHT_SERVE_TOKEN"
BODY_TIMEOUT_S = 10.0  # a body of the 1 MB limit takes well under a second on loopback
LIMIT_CONCURRENCY = 512  # under the usual 1,024 open files, with room for the model and logs
KEEP_ALIVE_S = 5  # uvicorn's own default, said out loud

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # \ud800..\udfff in the JSON text


def token_from_env() -> str | None:
    """The bearer token the service wants, or None (open) when the variable is unset or
    empty. The value is never printed."""
    return os.environ.get(TOKEN_ENV) or None


def authorized(header: str | None, token: str) -> bool:
    """True when the `Authorization` header carries `Bearer <token>`. `hmac.compare_digest`
    on bytes: the time taken does not tell a caller how much of a guess was right, and a
    header that is not ASCII is compared like any other (str would raise). The header is
    compared as the bytes sent (ASGI servers decode them as Latin-1), the token as UTF-8."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("latin-1", "replace"),
                               token.encode("utf-8", "surrogateescape"))


def _not_text(value: Any) -> bool:
    """True when a string anywhere in `value` (keys too) cannot be written as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_not_text(k) or _not_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(map(_not_text, value))
    return False


def lone_surrogate(raw: bytes, payload: Any) -> str | None:
    """Where a string of the body holds a lone UTF-16 surrogate (`"\\ud800"`), or None.

    JSON's grammar allows the escape, Python decodes it, but it is not text: it cannot be
    written as UTF-8 (the prediction log, the answer), and was a 500. A quick look at the
    raw bytes first, so a body without such an escape costs one regex scan; a pair (an
    emoji written as two escapes) decodes to one character and passes."""
    if not _SURROGATE_ESCAPE.search(raw):
        return None
    rows = payload if isinstance(payload, list) else [payload]
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            for key, value in row.items():
                if _not_text(key):
                    return f"record {i}: the field name {ascii(key)}"
                if _not_text(value):
                    return f"record {i}, field {ascii(key)}"
        elif _not_text(row):
            return f"record {i}"
    return None


def server_config(app: Any, host: str, port: int, *,
                  limit_concurrency: int = LIMIT_CONCURRENCY,
                  timeout_keep_alive: int = KEEP_ALIVE_S, log_level: str = "warning") -> Any:
    """The uvicorn configuration `greenlight serve` runs (and the tests start): the
    connection bounds are set here, once."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level,
                          limit_concurrency=limit_concurrency,
                          timeout_keep_alive=timeout_keep_alive)
