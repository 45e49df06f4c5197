"""The service's bounds against a real uvicorn over a real registry: text that is not text,
a client gone mid-body, a stalled upload, too many connections, and the bearer token.

Each is a 4xx or 5xx with one short reason, counted in /metrics, and at most one log line,
never a traceback (issue 32, item 4)."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from registry import versions
from registry.store import Registry
from serving import plog
from serving.app import create_app
from tests.approval_helpers import registry
from tests.serving_helpers import records, running

JSON = {"content-type": "application/json"}


@pytest.fixture
def home_reg(two_versions_home, tmp_path) -> tuple[Path, Registry]:
    """A copy of the run's two versions (v2 @champion), with this test's own log dir."""
    reg = registry(two_versions_home)
    assert versions.aliases(reg)["champion"] == 2
    return tmp_path / "serve", reg


class _Lines(logging.Handler):
    """Every record of the service's and uvicorn's loggers, as a user's console gets them."""

    NAMES = ("greenlight.serving", "uvicorn.error", "uvicorn", "uvicorn.asgi")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> list[str]:
        return [self.format(r) for r in self.records]


@contextmanager
def _captured() -> Iterator[_Lines]:
    handler = _Lines()
    loggers = [logging.getLogger(n) for n in _Lines.NAMES]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield handler
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


def _counted(url: str, headers: dict[str, str] | None = None) -> dict[tuple[str, str], float]:
    """greenlight_errors_total by kind and greenlight_requests_total by status (variant
    none), as Prometheus reads them."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", headers=headers or {}).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "greenlight_errors_total":
                out[("error", s.labels["kind"])] = s.value
            elif s.name == "greenlight_requests_total" and s.labels["variant"] == "none":
                out[("status", s.labels["status"])] = s.value
    return out


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def _head(length: int) -> bytes:
    return (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


def test_a_lone_surrogate_is_a_counted_4xx_and_the_log_still_encodes_it(home_reg):
    """`{"market":"\\ud800"}` was a 500, and no prediction-log line: pydantic-core's encoder
    raised on the string. Now a 422 naming the field, counted; a pair of escapes (an emoji)
    is text and is served."""
    state, reg = home_reg
    row = records(n=1)[0]
    lone = json.dumps({**row, "market": "MARKET"}).replace("MARKET", "\\ud800").encode()
    in_a_key = json.dumps({**row, "KEY": 1}).replace("KEY", "x\\udfff").encode()
    paired = json.dumps({**row, "market": "MARKET"}).replace("MARKET",
                                                             "\\ud83d\\ude00").encode()
    with running(create_app(reg, state, poll_seconds=60)) as url, _captured() as logs:
        r = httpx.post(f"{url}/predict", content=lone, headers=JSON)
        assert r.status_code == 422, r.text
        assert "record 0, field 'market': a lone UTF-16 surrogate" in r.json()["error"]
        r = httpx.post(f"{url}/predict", content=b"[" + in_a_key + b"]", headers=JSON)
        assert r.status_code == 422 and "field name 'x\\udfff'" in r.json()["error"], r.text
        ok = httpx.post(f"{url}/predict", content=paired, headers=JSON)
        assert ok.status_code == 200, ok.text
        counted = _counted(url)
    assert counted[("status", "422")] == 2 and counted[("error", "bad_request")] == 2
    assert not [r for r in logs.records if r.exc_info], logs.text()
    logged = list(plog.read(state))
    assert [line["input"]["market"] for line in logged] == ["\U0001F600"]
    # The encoder itself never raises on one: a lone surrogate is written as U+FFFD.
    line = plog.encode({"input": {"market": "\ud800x", "\udfff": 1}, "score": float("nan")})
    assert json.loads(line) == {"input": {"market": "\ufffdx", "\ufffd": 1}, "score": None}


def test_a_client_gone_mid_body_is_one_counted_line_not_a_traceback(home_reg):
    state, reg = home_reg
    with running(create_app(reg, state, poll_seconds=60)) as url, _captured() as logs:
        for _ in range(3):
            sock = _connect(url)
            sock.sendall(_head(1000) + b'{"market": "no')
            time.sleep(0.2)
            sock.close()
        deadline = time.monotonic() + 10
        while _counted(url).get(("error", "disconnect"), 0) < 3:
            assert time.monotonic() < deadline, (_counted(url), logs.text())
            time.sleep(0.1)
        assert httpx.post(f"{url}/predict", json=records(n=1)[0]).status_code == 200
        counted = _counted(url)
        time.sleep(0.5)
    assert counted[("error", "disconnect")] == 3 and counted[("status", "499")] == 3
    said = logs.text()
    assert not [r for r in logs.records if r.exc_info], said  # no traceback
    assert len(said) == 3 and all("disconnected after 14 of 1000 bytes" in s for s in said), said
    assert all("\n" not in s for s in said)
    assert len(list(plog.read(state))) == 1  # the good request only


def test_stalled_uploads_time_out_and_connections_are_bounded(home_reg):
    """A body that stalls is answered 408 after the body timeout and its connection closed;
    past `limit_concurrency` connections a request gets 503 at once; an idle keep-alive
    connection is closed after `timeout_keep_alive`. Raw sockets, as a stalling client is."""
    state, reg = home_reg
    app = create_app(reg, state, poll_seconds=60, body_timeout_s=1.5)
    with running(app, limit_concurrency=4, timeout_keep_alive=1) as url, \
            _captured() as logs:
        stalled = []
        for _ in range(6):
            sock = _connect(url)
            sock.sendall(_head(1000) + b"[")
            stalled.append(sock)
            time.sleep(0.1)
        start = time.monotonic()
        answers = [_answer(sock) for sock in stalled]  # each ends with the server's close
        took = time.monotonic() - start
        for sock in stalled:
            sock.close()
        statuses = sorted(a.split(b" ", 2)[1].decode() for a in answers)
        assert statuses.count("408") >= 3 and set(statuses) <= {"408", "503"}, answers
        assert "503" in statuses, answers  # more connections than the limit
        assert took < 10, took
        assert all(b"body not received within 1.5 s" in a for a in answers if b" 408 " in a)
        # keep-alive: a finished request's idle connection is closed by the server
        idle = _connect(url)
        body = json.dumps(records(n=1)[0]).encode()
        idle.sendall(_head(len(body)) + body)
        first = idle.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        quiet = time.monotonic()
        assert _answer(idle) == b"" and time.monotonic() - quiet < 5  # closed, not waiting
        idle.close()
        counted = _counted(url)
    assert counted[("status", "408")] == statuses.count("408") == counted[("error", "timeout")]
    timed_out = [t for t in logs.text() if "not received within" in t]
    assert len(timed_out) == statuses.count("408")
    assert not [r for r in logs.records if r.exc_info], logs.text()


def test_a_bearer_token_guards_everything_but_health(home_reg):
    state, reg = home_reg
    token = "s3cret-\u00e9-token"
    good = {"authorization": f"Bearer {token}".encode()}  # the bytes a client sends
    app = create_app(reg, state, poll_seconds=60, token=token)
    with running(app) as url, httpx.Client(base_url=url) as http, _captured() as logs:
        assert http.get("/health").status_code == 200  # open, for load balancers
        refused = []
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": token.encode()},
                        {"authorization": "Basic czNjcmV0"},
                        {"authorization": "Bearer \u2603".encode()}):
            for method, path in (("POST", "/predict"), ("GET", "/model"), ("GET", "/metrics")):
                r = http.request(method, path, headers=headers, json=records(n=1)[0]
                                 if method == "POST" else None)
                refused.append(r.status_code)
                assert r.headers.get("www-authenticate") == "Bearer", (path, headers)
                assert "Bearer <token>" in r.json()["error"] and token not in r.text
        assert refused == [401] * 15
        assert http.post("/predict", json=records(n=1)[0], headers=good).status_code == 200
        assert http.get("/model", headers=good).json()["model"] == reg.model_name
        counted = _counted(url, good)
    assert counted[("status", "401")] == 15 == counted[("error", "unauthorized")]
    said = logs.text()
    assert len(said) == 15 and all("no valid bearer token" in s for s in said), said
    assert not any(token in s for s in said)
    assert len(list(plog.read(state))) == 1  # the authorised request only


@pytest.mark.e2e  # a real `greenlight serve` process
def test_greenlight_serve_says_each_swap_in_one_line(home_reg, monkeypatch):
    """Issue 32, item 13: serve said nothing when it swapped versions. One line per swap:
    the alias, from, to, and why (the promotion record's action, who and reason, printed as
    written: never read as markup). The token is read from GREENLIGHT_SERVE_TOKEN."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    from cli import stack
    from registry.promote import rollback

    _, reg = home_reg
    home, port = reg.state_dir, stack.free_port()
    monkeypatch.setenv("GREENLIGHT_HOME", str(home))
    env = {**os.environ, "GREENLIGHT_HOME": str(home), "GREENLIGHT_SERVE_TOKEN": "zq81-secret"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--poll-seconds",
         "0.3"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    out: list[str] = []
    threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")),
                     daemon=True).start()
    url = f"http://127.0.0.1:{port}"

    def wait_for(text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in out):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(out)
            time.sleep(0.2)

    try:
        wait_for("@champion: none -> v2 (")
        assert httpx.get(f"{url}/model").status_code == 401
        assert httpx.get(f"{url}/model", headers={"authorization": "Bearer zq81-secret"}
                         ).json()["serving"]["champion"]["version"] == 2
        rollback(reg, reason="test: [bold]W09[/] worse", by="alice")
        wait_for("@champion: v2 -> v1 (")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    swaps = [line.rstrip("\n") for line in out if " -> " in line]
    assert len(swaps) == 2, "".join(out)
    assert swaps[1].endswith("@champion: v2 -> v1 (rollback by alice: test: [bold]W09[/] "
                             "worse)"), swaps
    assert "bearer token required" in out[0] and "zq81" not in "".join(out)
