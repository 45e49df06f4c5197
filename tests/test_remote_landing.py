"""A landing folder in an S3 bucket (tasks/data/remote_landing.py), on moto's S3 server.

The server runs in this process on loopback; s3fs talks to it exactly as to AWS, with only
the endpoint URL set (moto takes any key, so the test exports dummy ones).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tasks.data import ingest, lake, manifest, source
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.remote_landing import RemoteLanding
from tasks.data.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
BUCKET = "greenlight-test"


@pytest.fixture
def bucket(s3_endpoint, request):
    """A fresh prefix in the test bucket, and the s3fs filesystem that sees it."""
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    prefix = f"{BUCKET}/{request.node.name[:40]}"
    return fs, prefix


def _config(endpoint: str, prefix: str, settle: float = 0.0) -> source.LandingConfig:
    return source.LandingConfig(kind="landing", url=f"s3://{prefix}/landing/",
                                storage_options={"endpoint_url": endpoint},
                                settle_seconds=settle)


def _csv(index: int, rows: int = 200) -> bytes:
    buf = io.StringIO()
    sources.synthetic_batch(index, rows=rows).frame.to_csv(
        buf, index=False, date_format="%Y-%m-%dT%H:%M:%S")
    return buf.getvalue().encode()


def test_objects_are_taken_filed_and_moved_never_deleted(bucket, s3_endpoint, tmp_path):
    fs, prefix = bucket
    good, bad = _csv(0), b"timestamp,market\n2026-01-05T00:00:00,north\n"
    fs.pipe({f"{prefix}/landing/2026-W02.csv": good, f"{prefix}/landing/broken.csv": bad,
             f"{prefix}/landing/.hidden.csv": good, f"{prefix}/landing/~partial.csv": good,
             f"{prefix}/landing/notes.txt": b"not a batch"})
    home, spec = Home.from_env(tmp_path / "gl").ensure(), load_spec("synthetic")
    src = RemoteLanding(home, _config(s3_endpoint, prefix), "test")
    taken = src.take()
    assert sorted(x.name for x in taken.ready) == ["2026-W02.csv", "broken.csv"]
    for landed in taken.ready:
        frame, error = ingest.try_read(landed.path, spec)
        if error is None and set(spec.columns) <= set(frame.columns):
            ingest.accept(home, landed, frame, spec)
        else:
            ingest.reject(home, landed, error or "missing columns")
        src.commit(landed)
    ids = {x.name: x.batch_id for x in taken.ready}
    status = {b["file"]: b["status"] for b in manifest.load(home.manifest).values()}
    assert status == {"2026-W02.csv": "accepted", "broken.csv": "quarantined"}
    assert len(pd.read_parquet(lake.partition_path(home.lake, ids["2026-W02.csv"]))) == 200
    # the quarantined object is kept byte for byte, in the bucket and in the state dir
    assert fs.cat(f"{prefix}/quarantine/{ids['broken.csv']}/broken.csv") == bad
    assert (home.quarantine / ids["broken.csv"] / "broken.csv").read_bytes() == bad
    assert fs.cat(f"{prefix}/archive/{ids['2026-W02.csv']}/2026-W02.csv") == good
    left = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{prefix}/landing/", refresh=True))
    assert left == [".hidden.csv", "notes.txt", "~partial.csv"]  # not ours: left alone
    assert src.take().ready == []


def test_a_crash_before_the_move_only_moves_it_next_time(bucket, s3_endpoint, tmp_path):
    fs, prefix = bucket
    data = _csv(1)
    fs.pipe(f"{prefix}/landing/2026-W03.csv", data)
    home, spec = Home.from_env(tmp_path / "gl").ensure(), load_spec("synthetic")
    landed = RemoteLanding(home, _config(s3_endpoint, prefix), "test").take().ready[0]
    frame, _ = ingest.try_read(landed.path, spec)
    ingest.accept(home, landed, frame, spec)  # ... and the process dies before commit
    again = RemoteLanding(home, _config(s3_endpoint, prefix), "test")
    twin = again.take().ready
    assert [x.batch_id for x in twin] == [landed.batch_id]  # same bytes: a known batch
    ingest.file_duplicate(home, twin[0], "accepted")
    again.commit(twin[0])
    assert fs.cat(f"{prefix}/archive/{landed.batch_id}/2026-W03.csv") == data
    fs.invalidate_cache()
    assert fs.glob(f"{prefix}/landing/*") == []
    assert len(manifest.load(home.manifest)) == 1


def test_a_young_object_waits_out_the_settle_time(bucket, s3_endpoint, tmp_path):
    fs, prefix = bucket
    fs.pipe(f"{prefix}/landing/2026-W04.csv", _csv(2, rows=50))
    home = Home.from_env(tmp_path / "gl").ensure()
    src = RemoteLanding(home, _config(s3_endpoint, prefix, settle=1.5), "test")
    import time

    start = time.monotonic()
    assert [x.name for x in src.take().ready] == ["2026-W04.csv"]
    assert time.monotonic() - start >= 0.4  # waited (S3 stamps to the second)


def test_a_store_that_does_not_answer_is_a_warning(s3_endpoint, tmp_path):
    config = _config("http://127.0.0.1:1", "nowhere")  # nothing listens there
    taken = RemoteLanding(Home.from_env(tmp_path / "gl"), config, "test").take()
    assert taken.ready == [] and "cannot read (EndpointConnectionError)" in taken.notes[0]


def test_a_bad_landing_url_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(source.SOURCE_ENV, "nosuchproto://bucket/landing/")
    with pytest.raises(ValueError) as caught:
        source.for_cycle(Home.from_env(tmp_path / "gl"), load_spec("synthetic"), ingest.scan)
    assert str(caught.value).startswith(f"{source.SOURCE_ENV}.url: cannot open")
    assert "\n" not in str(caught.value)


@pytest.mark.e2e
def test_a_cycle_from_an_s3_landing_end_to_end(bucket, s3_endpoint, tmp_path):
    """`greenlight run` with the landing in a bucket: week 0 becomes the first champion's
    batch, a bad file is quarantined and kept byte for byte in the bucket."""
    fs, prefix = bucket
    bad = b"timestamp,price\nyesterday,-1\n"
    fs.pipe({f"{prefix}/landing/2026-W02.csv": _csv(0, rows=3000),
             f"{prefix}/landing/broken.csv": bad})
    root = tmp_path / "gl"
    config = {"kind": "landing", "url": f"s3://{prefix}/landing/",
              "storage_options": {"endpoint_url": s3_endpoint}}
    env = {**os.environ, "GREENLIGHT_HOME": str(root), source.SOURCE_ENV: json.dumps(config),
           "GREENLIGHT_SETTLE_SECONDS": "0"}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run([sys.executable, "-m", "cli.main", "run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    home = Home.from_env(root)
    batches = {b["file"]: b for b in manifest.load(home.manifest).values()}
    assert batches["2026-W02.csv"]["status"] == "accepted"
    assert batches["2026-W02.csv"]["decision"] == "bootstrap"
    assert batches["broken.csv"]["status"] == "quarantined"
    assert len(pd.read_parquet(lake.partition_path(home.lake,
                                                   batches["2026-W02.csv"]["id"]))) == 3000
    assert fs.cat(f"{prefix}/quarantine/{batches['broken.csv']['id']}/broken.csv") == bad
    fs.invalidate_cache()
    assert fs.glob(f"{prefix}/landing/*") == []
