"""Credentials in a source URL (userinfo, `?password=`, `sslpassword`, tokens) are never
printed or stored: not on stderr, not in runs/*.json, not in Prefect's database; and a URL
that does not parse is one line naming the setting and the key (docs/sources.md)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.secrets import mask_text, mask_url
from tasks.data import ingest, source
from tasks.data.home import Home
from tasks.data.spec import load_spec
from tasks.data.sql_source import SqlSource

REPO = Path(__file__).resolve().parents[1]
SECRETS = ("pw-user-51c2", "pw-query-9d0e", "pw-ssl-33ab")
# Nothing listens on port 1: every read fails, and the failure is what is reported.
DOWN_URL = (f"postgresql://postgres:{SECRETS[0]}@127.0.0.1:1/sales?password={SECRETS[1]}"
            f"&sslpassword={SECRETS[2]}&application_name=greenlight")


@pytest.mark.parametrize("url, kept", [
    ("postgresql://u:s3cr3t@db:5432/x?password=s3cr3t&sslmode=require",
     "postgresql://u:***@db:5432/x?password=***&sslmode=require"),
    ("s3://bucket/landing/?access_token=s3cr3t&region=eu", "s3://bucket/landing/?access_token=***&region=eu"),
    ("https://acct.blob.core.windows.net/c?sv=2022&sig=s3cr3t%2Fx&se=2026",
     "https://acct.blob.core.windows.net/c?sv=2022&sig=***&se=2026"),
    ("https://h/x?X-Amz-Signature=s3cr3t&api_key=s3cr3t&Token=s3cr3t&db_secret=s3cr3t",
     "https://h/x?X-Amz-Signature=***&api_key=***&Token=***&db_secret=***"),
    ("postgresql://u:s3cr3t@host:54x2/db", "postgresql://u:***@host:54x2/db"),
    ("not a url", "not a url"),
])
def test_mask_url_hides_userinfo_and_secret_query_parameters(url, kept):
    assert mask_url(url) == kept
    assert "s3cr3t" not in mask_url(url)


def test_mask_text_masks_every_url_in_a_line():
    line = "cannot open 'https://u:s3cr3t@h/x?token=s3cr3t' (and http://h/?secret=s3cr3t)"
    assert "s3cr3t" not in mask_text(line) and "https://u:***@h/x?token=***" in mask_text(line)


def _down_source(home: Home, monkeypatch) -> SqlSource:
    monkeypatch.setenv("GREENLIGHT_TEST_DOWN_URL", DOWN_URL)
    config = source.SqlConfig(kind="sql", url_env="GREENLIGHT_TEST_DOWN_URL", table="t")
    return SqlSource(home, load_spec("synthetic"), config, "test source")


def test_a_password_in_the_query_never_shows_in_the_label_or_a_failure(tmp_path, monkeypatch):
    """`?password=` and `sslpassword=` were left in clear by `hide_password=True`."""
    src = _down_source(Home.from_env(tmp_path / "gl").ensure(), monkeypatch)
    taken = src.take()
    shown = src.label + " ".join(taken.notes)
    assert taken.ready == [] and "cannot read" in taken.notes[0]
    assert not [s for s in SECRETS if s in shown], shown
    assert "password=***" in src.label and "sslpassword=***" in src.label


@pytest.mark.parametrize("url", ["postgresql://u:pw-port-77@db:54x2/sales",
                                 "postgresql://u:pw-port-77@[::1/sales"])
def test_an_unparsable_url_is_one_line_naming_the_setting_and_key(url, tmp_path, monkeypatch):
    """`port 54x2` raised `invalid literal for int()`, naming nothing."""
    monkeypatch.setenv(source.SOURCE_ENV, json.dumps({"kind": "sql", "url": url, "table": "t"}))
    with pytest.raises(ValueError) as caught:
        source.for_cycle(Home.from_env(tmp_path / "gl"), load_spec("synthetic"), ingest.scan)
    line = str(caught.value)
    assert line.startswith(f"{source.SOURCE_ENV}.url: not a SQLAlchemy URL"), line
    assert "\n" not in line and "pw-port-77" not in line


def test_a_landing_url_with_a_token_is_named_without_it(tmp_path, monkeypatch):
    monkeypatch.setenv(source.SOURCE_ENV, "nosuchproto://u:pw-land-1@bucket/landing/?token=pw-land-2")
    with pytest.raises(ValueError) as caught:
        source.for_cycle(Home.from_env(tmp_path / "gl"), load_spec("synthetic"), ingest.scan)
    assert "pw-land" not in str(caught.value) and "cannot open" in str(caught.value)


def _everything_in(db: Path) -> str:
    """Every row of every table of a SQLite database, as text (what sqlite3 .dump shows)."""
    conn = sqlite3.connect(db)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


@pytest.mark.e2e
def test_a_run_with_secrets_in_the_url_keeps_them_out_of_stderr_runs_and_prefect(tmp_path):
    """`greenlight run` with the SQL source down: the warning is shown and recorded (stderr,
    runs/*.json, the flow run's logs in prefect.db), the credentials nowhere."""
    root = tmp_path / "gl"
    config = {"kind": "sql", "url": DOWN_URL, "table": "applications"}
    env = {**os.environ, "GREENLIGHT_HOME": str(root), "PREFECT_HOME": str(root / "prefect"),
           source.SOURCE_ENV: json.dumps(config)}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "cli.main", "run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "cannot read" in done.stderr and "password=***" in done.stderr, done.stderr[-2000:]
    runs = list((root / "runs").glob("*.json"))
    assert runs and "password=***" in runs[0].read_text()
    db = root / "prefect" / "prefect.db"
    dump = _everything_in(db)
    assert "cannot read" in dump  # the warning is in the flow run's logs ...
    shown = done.stdout + done.stderr + runs[0].read_text() + dump
    assert not [s for s in SECRETS if s in shown]  # ... without a credential
    for path in root.rglob("*"):  # and no other file of the state dir holds one
        if path.is_file() and path.stat().st_size < 50 << 20:
            data = path.read_bytes()
            assert not [s for s in SECRETS if s.encode() in data], path


def test_an_unreachable_tracking_server_is_named_without_its_password():
    """The tracking URI may carry a password too (`http://user:pw@host`): the outage line
    that names the server masks it, as every URL greenlight prints is masked."""
    from cli.outages import _mlflow_unreachable

    exc = ConnectionError("Max retries exceeded with url: /api (Connection refused)")
    line = _mlflow_unreachable(exc, "http://greenlight:s3cr3t@127.0.0.1:5999")
    assert line is not None and "127.0.0.1:5999" in line
    assert "s3cr3t" not in line


def test_a_url_with_nothing_secret_comes_back_byte_for_byte():
    """SQLite's absolute URLs have an empty authority (`sqlite:////abs/mlflow.db`): masking
    must not rebuild them (urlunsplit drops the `//`, and the demo's hint then named a
    store that does not exist)."""
    from core.secrets import mask_url

    for url in ("sqlite:////tmp/gl/mlflow.db", "sqlite:///mlflow.db", "file:///tmp/x",
                "http://127.0.0.1:5000", "s3://bucket/home?versionId=3"):
        assert mask_url(url) == url
    assert mask_url("sqlite:////tmp/gl/mlflow.db?password=x") == (
        "sqlite:////tmp/gl/mlflow.db?password=***")
