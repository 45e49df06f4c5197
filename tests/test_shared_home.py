"""A state dir in an object store, shared by workers on several machines (issue: data where
it lives). moto's S3 server stands in for S3; the code under test is the code that talks to
AWS, with only the endpoint set. MLflow's server keeps its artifacts in the same bucket.

Two `greenlight run` processes share one `GREENLIGHT_HOME=s3://…`: the cycle's claim is the
Prefect server's concurrency limit, so the second says the batches are taken, and the
store ends with one version, one promotion, the lake, the manifest, and the raw bytes of
both the accepted and the quarantined file, byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import stack
from core import jsonl
from tasks.data import manifest
from tasks.data import replay as sources
from tasks.data.home import Home

REPO = Path(__file__).resolve().parents[1]
BUCKET = "greenlight-shared"


@pytest.fixture(scope="module")
def s3_env(s3_endpoint: str) -> dict[str, str]:
    """What every worker (and the MLflow server) needs to reach the store: the endpoint
    for s3fs (AWS_ENDPOINT_URL) and for MLflow's boto3 (MLFLOW_S3_ENDPOINT_URL)."""
    import s3fs

    env = {"AWS_ENDPOINT_URL": s3_endpoint, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def mlflow_on_s3(tmp_path_factory, s3_env) -> str:
    """An MLflow server whose artifacts live in the bucket (`--artifacts-destination`)."""
    home, port = tmp_path_factory.mktemp("mlflow-s3"), stack.free_port()
    proc = stack.start_mlflow_server(home, port, artifacts=f"s3://{BUCKET}/mlartifacts")
    try:
        stack.wait_healthy(f"http://127.0.0.1:{port}/health", 180, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.stop([proc])


def _run(url: str, scratch: Path, env: dict[str, str], *args: str,
         extra: dict[str, str] | None = None) -> subprocess.Popen:
    """`greenlight run` as a worker on its own machine would: its own scratch folder."""
    full = {**os.environ, **env, "GREENLIGHT_HOME": url, "GREENLIGHT_SCRATCH": str(scratch),
            "GREENLIGHT_SETTLE_SECONDS": "0", **(extra or {})}
    return subprocess.Popen([sys.executable, "-m", "cli.main", "run", "--dataset", "synthetic",
                             "--json", *args], cwd=REPO, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.e2e
def test_two_workers_sharing_an_s3_home_register_once_and_promote_once(
        tmp_path, s3_env, mlflow_on_s3, prefect_server):
    import s3fs
    from mlflow import MlflowClient

    from core.faults import HOLD_ENV, HOLD_FILE_ENV

    url = f"s3://{BUCKET}/{tmp_path.name}"
    env = {**s3_env, "MLFLOW_TRACKING_URI": mlflow_on_s3}
    home = Home.from_env(url)
    assert home.remote
    batch = sources.synthetic_stream(seed=7)[0]
    name = sources.write_batch(batch, home.landing).name
    bad = b"timestamp,market\n2026-01-05T00:00:00,north\n"
    fs = s3fs.S3FileSystem(endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    fs.pipe(f"{BUCKET}/{tmp_path.name}/landing/broken.csv", bad)
    landed = fs.cat(f"{BUCKET}/{tmp_path.name}/landing/{name}")

    hold = tmp_path / "hold-cycle"
    first = _run(url, tmp_path / "worker-a", env,
                 extra={HOLD_ENV: "cycle", HOLD_FILE_ENV: str(hold)})
    deadline = time.monotonic() + 600
    while not hold.exists():
        assert first.poll() is None, first.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the first worker never took its claim"
        time.sleep(0.2)
    second = _run(url, tmp_path / "worker-b", env)
    out_b = second.communicate(timeout=600)[0]
    hold.unlink()
    out_a = first.communicate(timeout=900)[0]
    assert first.returncode == 0 and "Traceback" not in out_a, out_a[-3000:]
    assert second.returncode == 0 and "Traceback" not in out_b, out_b[-3000:]
    assert "another cycle of synthetic has its batches" in out_b, out_b[-3000:]
    assert "ERROR" not in out_b, out_b[-3000:]  # a taken claim is an answer, not an error

    client = MlflowClient(mlflow_on_s3)
    found = client.search_model_versions("name='greenlight-synthetic'")
    assert [v.version for v in found] == ["1"]
    records = list(jsonl.read(home.root / "promotions.jsonl"))  # one object per record
    assert [(r["action"], r["to"]) for r in records] == [("promote", 1)], records
    batches = manifest.load(home.manifest)
    status = {b["file"]: b["status"] for b in batches.values()}
    assert status == {name: "accepted", "broken.csv": "quarantined"}, status
    ids = {b["file"]: i for i, b in batches.items()}
    root = f"{BUCKET}/{tmp_path.name}"
    assert fs.cat(f"{root}/archive/{ids[name]}/{name}") == landed
    assert fs.cat(f"{root}/quarantine/{ids['broken.csv']}/broken.csv") == bad
    assert fs.exists(f"{root}/lake/batch_id={ids[name]}/part-0.parquet")
    assert fs.find(f"{root}/landing") == []  # both moved, neither deleted
    # the model's files are in the bucket, through the MLflow server
    assert fs.find(f"{BUCKET}/mlartifacts"), "no MLflow artifact in the store"

    # the next week, on a third worker with Dask: its workers stage and publish the batch in
    # the store and monitor it from there; monitored against the champion, reports kept
    week = sources.write_batch(sources.synthetic_stream(seed=7)[1], home.landing).name
    third = _run(url, tmp_path / "worker-c", env, "--dask-min-rows", "1",
                 "--set", "scale.partition_rows=500")
    out_c = third.communicate(timeout=900)[0]
    assert third.returncode == 0 and "Traceback" not in out_c, out_c[-3000:]
    batch_id = {b["file"]: i for i, b in manifest.load(home.manifest).items()}[week]
    assert manifest.load(home.manifest)[batch_id].get("decision"), out_c[-3000:]
    assert fs.exists(f"{root}/reports/{batch_id}/drift.html"), fs.find(f"{root}/reports")
    parts = fs.find(f"{root}/lake/batch_id={batch_id}")
    assert len(parts) > 1, parts  # one part file per Dask partition: the workers wrote them
    assert not [p for p in fs.find(f"{root}/lake") if "/." in p]  # no staging left


def test_appends_from_many_writers_to_a_store_log_are_all_kept(s3_env):
    """No append on S3: each record is an object of its own, so writers racing on one log
    lose nothing, and a reader gets every record, oldest first."""
    from concurrent.futures import ThreadPoolExecutor

    from upath import UPath

    log = UPath(f"s3://{BUCKET}/appends/promotions.jsonl")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: jsonl.append(log, {"i": i}), range(40)))
    jsonl.append(log, {"i": "last"})
    found = list(jsonl.read(log))
    assert sorted(r["i"] for r in found[:-1]) == list(range(40)) and found[-1] == {"i": "last"}


def test_an_object_store_home_without_its_servers_is_one_line(tmp_path):
    env = {**os.environ, "GREENLIGHT_HOME": "memory://bucket/state",
           "GREENLIGHT_SCRATCH": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-m", "cli.main", "status"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "set MLFLOW_TRACKING_URI" in lines[0], done.stderr
