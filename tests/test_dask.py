"""The Dask path agrees with the single-process path on the same data, and a cycle really
runs its heavy steps on Dask through Prefect when the threshold is low.

Agreement, stated (docs/scale.md, "When you outgrow one machine"):
- validation: the same verdict, the same failing expectations and unexpected counts;
- monitoring: the same drift, label, prediction and adversarial verdicts, and the same
  input metrics; under `MAX_ROWS` rows the Dask sample is every row, so scores are equal;
- training: every gate metric of the lightgbm.dask challenger within GATE_TOLERANCE
  (absolute) of the single-process one's. Data-parallel LightGBM finds its histogram bins
  per worker, so the trees differ slightly; the verdicts do not.
"""

from __future__ import annotations

import re

import lightgbm as lgb
import pandas as pd
import pytest

from tasks.data import lake
from tasks.data import replay as sources
from tasks.data.spec import load_spec, suite_path
from tasks.data.validate import read_suite, validate_frame, with_time_checks
from tasks.gate.gate import gate
from tasks.monitoring.monitor import monitor_batch
from tasks.monitoring.quality import load_ranges
from tasks.scale import distributed
from tasks.training import train

SPEC = load_spec("synthetic")
GATE_TOLERANCE = 0.01  # absolute on accuracy and ROC AUC; relative on MAE and RMSE


def _e2e(index: int):
    """One change point in the end-to-end tier: the fast tier keeps one batch per check."""
    return pytest.param(index, marks=pytest.mark.e2e)


def _within_tolerance(name: str, single: float, dask: float) -> bool:
    bound = GATE_TOLERANCE * (abs(single) if name in ("mae", "rmse") else 1.0)
    return abs(dask - single) <= bound
PARTITION_ROWS = 4_000


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes: this machine has two cores, and lightgbm.dask
    needs one process per worker (its network is per process)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def champion():
    return train.fit(sources.synthetic_batch(0, rows=6000).frame, SPEC, None)


def _failures(outcome):
    return sorted((f.expectation, f.column or "", f.unexpected_count or 0)
                  for f in outcome.failures)


@pytest.mark.parametrize("case", ["good", "malformed", "missing column"])
def test_validation_verdicts_agree(client, case):
    index = sources.SYNTHETIC_MALFORMED if case == "malformed" else 1
    frame = sources.synthetic_batch(index, rows=20_000).frame
    if case == "missing column":
        frame = frame.drop(columns=["age"])
    suite = with_time_checks(read_suite(suite_path("synthetic")), SPEC.time_column)
    one = validate_frame(frame, suite, source="b.csv")
    dask = distributed.validate_partitions(frame, suite, source="b.csv", time_column=None,
                                           partition_rows=PARTITION_ROWS,
                                           run=distributed.client_mapper(client))
    assert dask.success == one.success == (case == "good")
    assert dask.evaluated == one.evaluated
    assert _failures(dask) == _failures(one)
    for a, b in zip(sorted(dask.failures, key=lambda f: f.text),
                    sorted(one.failures, key=lambda f: f.text), strict=True):
        assert a.unexpected_percent == pytest.approx(b.unexpected_percent)
    # The one-line reason a person reads in the quarantine says the same, bar the example
    # values GX picks from the rows it saw.
    assert _without_examples(dask.reason) == _without_examples(one.reason)


def _without_examples(reason: str) -> str:
    return re.sub(r", e\.g\. [^;]*", "", reason)


def _monitor_both(client, champion, index, tmp_path, max_rows):
    batch = sources.synthetic_batch(index, rows=20_000).frame
    reference = sources.synthetic_batch(0, rows=3000).frame
    ranges = load_ranges(suite_path("synthetic"))
    one = monitor_batch("b", batch, reference, champion, 0.76, SPEC, tmp_path / "one",
                        ranges=ranges, max_rows=max_rows)
    sample, inputs = distributed.profile_partitions(
        batch, SPEC, ranges, partition_rows=PARTITION_ROWS,
        run=distributed.client_mapper(client), max_rows=max_rows)
    dask = monitor_batch("b", sample, reference, champion, 0.76, SPEC, tmp_path / "dask",
                         ranges=ranges, max_rows=max_rows, inputs=inputs)
    return one, dask


VERDICTS = ("drifted_features", "label_drifted", "prediction_drifted", "adversarial_drifted")


@pytest.mark.parametrize("index", [1, _e2e(sources.SYNTHETIC_CHANGE_POINTS["covariate"]),
                                   _e2e(sources.SYNTHETIC_CHANGE_POINTS["prior"]),
                                   _e2e(sources.SYNTHETIC_MALFORMED)])
def test_drift_verdicts_and_input_metrics_agree(client, champion, tmp_path, index):
    one, dask = _monitor_both(client, champion, index, tmp_path, max_rows=100_000)
    assert {k: getattr(dask, k) for k in VERDICTS} == {k: getattr(one, k) for k in VERDICTS}
    assert dask.rows == one.rows == 20_000
    # Under MAX_ROWS the Dask sample is every row, in order: the same numbers, not just verdicts.
    assert dask.feature_scores == pytest.approx(one.feature_scores)
    assert dask.missing_share == pytest.approx(one.missing_share)
    assert dask.out_of_range_share == pytest.approx(one.out_of_range_share)
    assert dask.champion_metric == pytest.approx(one.champion_metric)


@pytest.mark.parametrize("index", [_e2e(1), _e2e(sources.SYNTHETIC_CHANGE_POINTS["prior"]),
                                   sources.SYNTHETIC_CHANGE_POINTS["concept"]])
def test_a_sampled_batch_reaches_the_same_verdicts(client, champion, tmp_path, index):
    """Above max_rows each partition gives its share of the sample: other rows than the
    single-process sample, the same verdicts; input metrics still read every row.

    (Not the covariate point: there the prediction PSI sits on its 0.1 cut, 0.093 and 0.105
    on two 8000-row samples, so any two samples may disagree, Dask or not.)"""
    one, dask = _monitor_both(client, champion, index, tmp_path, max_rows=8_000)
    assert {k: getattr(dask, k) for k in VERDICTS} == {k: getattr(one, k) for k in VERDICTS}
    assert dask.rows == one.rows == 20_000
    assert dask.missing_share == pytest.approx(one.missing_share)
    assert dask.out_of_range_share == pytest.approx(one.out_of_range_share)


# no library warning reaches a user: lightgbm.dask warned of an n_jobs nobody set
@pytest.mark.filterwarnings("error:Parameter n_jobs will be ignored")
def test_dask_training_matches_the_single_process_gate_metrics(client):
    history = pd.concat([sources.synthetic_batch(i, rows=5000).frame.assign(
        **{lake.BATCH_COLUMN: f"b{i}"}) for i in range(4)], ignore_index=True)
    kwargs = dict(gate_rows=1500, half_life_days=7.0, window_days=None, reference_rows=1000,
                  batch_column=lake.BATCH_COLUMN)
    one = train.train_challenger(history, SPEC, **kwargs)
    address = client.scheduler.address
    dask = train.train_challenger(history, SPEC, fitter=distributed.DaskFitter(address), **kwargs)
    assert isinstance(dask.model.estimator, lgb.LGBMClassifier)  # to_local: registrable as is
    assert dask.params["engine"] == "lightgbm.dask" and one.params["engine"] == "lightgbm"
    assert dask.batch_set == one.batch_set and dask.split.gate.equals(one.split.gate)
    g_one = gate(one.model, None, one.split.gate, SPEC, min_delta=0.005)
    g_dask = gate(dask.model, None, dask.split.gate, SPEC, min_delta=0.005)
    assert g_dask.verdict == g_one.verdict == "bootstrap"
    for name, value in g_one.challenger_metrics.items():
        assert _within_tolerance(name, value, g_dask.challenger_metrics[name]), name


@pytest.mark.parametrize("name", ["elec2", "bike_sharing"])
def test_dask_training_on_real_data_matches_within_tolerance(client, name):
    """Elec2 (classification, drifting continuous features) and Bike Sharing (regression,
    DaskLGBMRegressor): the whole dataset as monthly batches, the newest 3000 rows gated."""
    from tests.conftest import shared_file

    shared_file(*sources.DATA_FILES[name])
    spec = load_spec(name)
    batches = sources.cut_batches(sources.load_dataset(name), spec, "M")
    history = pd.concat([b.frame.assign(**{lake.BATCH_COLUMN: b.label}) for b in batches],
                        ignore_index=True)
    kwargs = dict(gate_rows=3000, half_life_days=spec.training.half_life_days,
                  window_days=None, reference_rows=1000, batch_column=lake.BATCH_COLUMN)
    one = train.train_challenger(history, spec, **kwargs)
    dask = train.train_challenger(history, spec, **kwargs,
                                  fitter=distributed.DaskFitter(client.scheduler.address))
    g_one = gate(one.model, None, one.split.gate, spec, min_delta=0.005)
    g_dask = gate(dask.model, None, dask.split.gate, spec, min_delta=0.005)
    assert g_dask.verdict == g_one.verdict
    for metric, value in g_one.challenger_metrics.items():
        assert _within_tolerance(metric, value, g_dask.challenger_metrics[metric]), metric


def _task_names(state) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as api:
        runs = api.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return [r.name.rsplit("-", 1)[0] for r in runs]


@pytest.mark.e2e
def test_a_cycle_runs_its_heavy_steps_on_dask_through_prefect(home):
    """Threshold 1000 rows: validation, monitoring and training of 3000-row batches go to a
    LocalCluster the cycle starts itself, as Prefect task runs; the result is registered
    and promoted like any other, and a malformed batch is still quarantined."""
    from flows.cycle import cycle, registry_for
    from flows.params import Scale
    from registry import versions

    scale = Scale(dask_min_rows=1000, partition_rows=1000)
    reg = registry_for(home, SPEC)
    sources.write_batch(sources.synthetic_batch(0), home.landing)
    first = cycle(dataset="synthetic", home=str(home.root), scale=scale, return_state=True)
    assert first.result()["decision"] == "bootstrap"
    champion = versions.by_alias(reg, "champion")
    assert reg.client.get_run(champion.run_id).data.params["engine"] == "lightgbm.dask"
    assert _task_names(first).count("validate-partition") == 3

    for index in (sources.SYNTHETIC_CHANGE_POINTS["covariate"], sources.SYNTHETIC_MALFORMED):
        sources.write_batch(sources.synthetic_batch(index), home.landing)
    second = cycle(dataset="synthetic", home=str(home.root), scale=scale, return_state=True)
    summary = second.result()
    assert summary["decision"] == "retrain", summary["reasons"]
    assert len(summary["quarantined"]) == 1 and "price" in summary["quarantined"][0]
    names = _task_names(second)
    assert names.count("validate-partition") == 6 and names.count("profile-partition") == 3
    assert versions.by_alias(reg, "champion") is not None  # the champion is still there


@pytest.mark.e2e
def test_a_dask_cycle_from_the_command_line_says_one_line(tmp_path):
    """Found by walking the tour on an object-store home: a cycle on Dask printed the
    scheduler's and nannies' INFO lines, the workers' task-run lines and lightgbm.dask's
    "[LightGBM] [Info] Trying to bind port" onto the terminal. The console gets the cycle's
    one line; the work still went to the workers (one part file per partition, and the
    champion trained by lightgbm.dask)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from flows.cycle import registry_for
    from registry import versions
    from tasks.data.home import Home

    home = Home(tmp_path / "gl")
    sources.write_batch(sources.synthetic_batch(0), home.landing)
    env = {**os.environ, "GREENLIGHT_HOME": str(home.root), "GREENLIGHT_SETTLE_SECONDS": "0"}
    done = subprocess.run([sys.executable, "-m", "cli.main", "run", "--dataset", "synthetic",
                           "--dask-min-rows", "1", "--set", "scale.partition_rows=1000"],
                          cwd=Path(__file__).resolve().parents[1], env=env, text=True,
                          capture_output=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    said = (done.stdout + done.stderr).strip().splitlines()
    assert len(said) == 1 and "v1 @champion" in said[0], said[:40]
    (batch,) = home.lake.iterdir()
    assert len(list(batch.glob("part-*.parquet"))) == 3
    reg = registry_for(home, SPEC)
    run = reg.client.get_run(versions.by_alias(reg, "champion").run_id)
    assert run.data.params["engine"] == "lightgbm.dask"


def test_the_scale_out_deployment_is_valid_for_the_flow():
    """deployments/scale-out.yaml's parameters pass the cycle's own validation."""
    from pathlib import Path

    import yaml

    from flows.cycle import cycle

    doc = yaml.safe_load((Path(__file__).parents[1] / "deployments" / "scale-out.yaml")
                         .read_text())
    for deployment in doc["deployments"]:
        assert deployment["entrypoint"] == "flows/cycle.py:cycle"
        params = cycle.validate_parameters(deployment["parameters"])
        assert params["scale"].dask_min_rows == 2_000_000


# --- the lake path: the workers read the landed file and the lake, the flow never does ------

def _land(home, frame, fmt: str):
    """A landed file as a scan leaves it (no origin: the test owns the bytes)."""
    from tasks.data import ingest

    path = home.landing / f"b.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False, row_group_size=PARTITION_ROWS)
    return ingest.LandedFile(path, ingest.sha256(path), path.stat().st_size)


def _intake_one_process(home, landed, suite):
    """The single-process intake, as flows/cycle.py `_intake_one` runs it below the threshold."""
    from tasks.data import ingest

    frame, error = ingest.try_read(landed.path, SPEC)
    if error:
        return ingest.reject(home, landed, error, dataset=SPEC.name)
    checked = validate_frame(frame, suite, source=landed.path.name, time_column=SPEC.time_column)
    if not checked.success:
        return ingest.reject(home, landed, checked.reason, checked.to_dict(),
                             checked.to_markdown(), rows=len(frame), dataset=SPEC.name)
    ingest.accept(home, landed, frame, SPEC)
    return None


def _no_whole_batch_here(monkeypatch):
    """The flow's process must not read a batch: every pandas reader it could use raises
    here (the workers are other processes, unpatched)."""
    from tasks.data import ingest

    def refuse(*args, **kwargs):
        raise AssertionError(f"the flow's process read a whole batch: {args[:1]}")

    for target in (ingest, pd):
        for name in ("read_csv", "read_parquet", "read_batch"):
            if hasattr(target, name):
                monkeypatch.setattr(target, name, refuse)
    monkeypatch.setattr(lake, "read_partition", refuse)
    monkeypatch.setattr(lake, "read_batches", refuse)


def _shuffled_with_repeats(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows out of time order and rows of the first partition repeated in the last: what
    `ingest.tidy` mends, here across partitions."""
    return pd.concat([frame.iloc[::-1], frame.iloc[100:300]], ignore_index=True)


LAKE_CASES = {"csv": (1, "csv", None), "parquet": (1, "parquet", None),
              "csv out of order, repeated rows": (1, "csv", _shuffled_with_repeats),
              "malformed": (sources.SYNTHETIC_MALFORMED, "csv", None),
              "missing column": (1, "csv", lambda f: f.drop(columns=["age"])),
              "not a timestamp": (1, "csv", lambda f: f.astype({"timestamp": str}).assign(
                  timestamp=lambda g: g.timestamp.where(g.index != 7000, "soon")))}


@pytest.mark.parametrize("case", [c if c in ("csv", "parquet", "csv out of order, repeated rows",
                                             "malformed") else _e2e(c) for c in LAKE_CASES])
def test_the_workers_file_a_landed_batch_as_one_process_does(client, tmp_path, monkeypatch,
                                                             case):
    """Same verdict, same manifest record (rows, content hash, time span, what tidying
    changed), same rows in the lake in the same order, the raw file kept byte for byte; the
    Dask lake partition is several part files the workers wrote, and the flow's process read
    no rows of the batch."""
    from tasks.data import ingest, manifest
    from tasks.data.home import Home
    from tasks.data.validate import split_label_checks
    from tasks.scale import landed

    index, fmt, change = LAKE_CASES[case]
    frame = sources.synthetic_batch(index, rows=20_000).frame
    frame = change(frame) if change else frame
    suite, _ = split_label_checks(read_suite(suite_path("synthetic")), SPEC.target)
    homes = {name: Home(tmp_path / name).ensure() for name in ("one", "dask")}
    files = {name: _land(home, frame, fmt) for name, home in homes.items()}
    raw = files["one"].path.read_bytes()
    one = _intake_one_process(homes["one"], files["one"], suite)

    home, file = homes["dask"], files["dask"]
    rows = ingest.landed_rows(file.path)
    assert rows == len(frame)
    with monkeypatch.context() as patched:
        _no_whole_batch_here(patched)
        staged = landed.stage(file.path, rows, suite, SPEC, home.lake, file.batch_id,
                              partition_rows=PARTITION_ROWS,
                              run=distributed.client_mapper(client))
        dask = landed.file(home, file, SPEC, staged)

    def record(h):
        return {k: v for k, v in manifest.load(h.manifest)[file.batch_id].items() if k != "at"}
    assert record(home) == record(homes["one"])
    assert (dask is None) == (one is None) == (case in ("csv", "parquet", "csv out of order, "
                                                        "repeated rows"))
    assert not [p for p in home.lake.iterdir() if p.name.startswith(".")]  # no staging left
    if one is None:
        assert len(lake.part_paths(home.lake, file.batch_id)) > 1  # one per worker partition
        pd.testing.assert_frame_equal(lake.read_partition(home.lake, file.batch_id),
                                      lake.read_partition(homes["one"].lake, file.batch_id))
        assert (home.archive / file.batch_id / "b." f"{fmt}").read_bytes() == raw
    else:
        assert _without_examples(dask) == _without_examples(one)
        assert (home.quarantine / file.batch_id / f"b.{fmt}").read_bytes() == raw
        assert not any(home.lake.iterdir())


def test_workers_file_and_monitor_a_batch_in_an_object_store_home(s3_endpoint, tmp_path,
                                                                  monkeypatch):
    """GREENLIGHT_HOME=s3://…: the workers stage their parts in the store, the batch is
    published there, and monitoring reads it back on the workers; the same manifest record,
    lake rows and input metrics as the single-process path on a local disk, and no staging
    left behind. The batch is out of time order with repeated rows, so the workers' tidy and
    range sort write, read and move in the store too (moto's S3 server on loopback)."""
    import uuid

    import s3fs
    from distributed import Client, LocalCluster

    from tasks.data import ingest, manifest
    from tasks.data.home import Home
    from tasks.data.validate import split_label_checks
    from tasks.scale import landed

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # the workers inherit it, as on AWS
    bucket = f"gl-dask-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem(endpoint_url=s3_endpoint).mkdir(bucket)
    frame = _shuffled_with_repeats(sources.synthetic_batch(1, rows=20_000).frame)
    suite, _ = split_label_checks(read_suite(suite_path("synthetic")), SPEC.target)
    one = Home(tmp_path / "one").ensure()
    remote = Home.from_env(f"s3://{bucket}/gl")
    assert remote.remote
    remote.scratch.mkdir(parents=True, exist_ok=True)
    file = _land(one, frame, "csv")
    copy = remote.scratch / "b.csv"  # where a remote landing leaves its downloaded copy
    copy.write_bytes(file.path.read_bytes())
    assert _intake_one_process(one, file, suite) is None
    file = ingest.LandedFile(copy, file.sha256, file.size)
    ranges = load_ranges(suite_path("synthetic"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        run = distributed.client_mapper(client)
        staged = landed.stage(copy, len(frame), suite, SPEC, remote.lake, file.batch_id,
                              partition_rows=PARTITION_ROWS, run=run)
        assert landed.file(remote, file, SPEC, staged) is None
        inputs = {name: landed.profile_stored(home, SPEC, file.batch_id, ranges, run=run)[1]
                  for name, home in (("one", one), ("remote", remote))}

    def record(h):
        return {k: v for k, v in manifest.load(h.manifest)[file.batch_id].items()
                if k not in ("at", "file")}
    assert record(remote) == record(one)
    assert record(remote)["resorted"] == 1, record(remote)
    assert not [p for p in remote.lake.iterdir() if p.name.startswith(".")]  # no staging
    assert len(lake.part_paths(remote.lake, file.batch_id)) > 1
    pd.testing.assert_frame_equal(lake.read_partition(remote.lake, file.batch_id),
                                  lake.read_partition(one.lake, file.batch_id))
    assert inputs["remote"] == inputs["one"]


@pytest.mark.parametrize("index", [1, _e2e(sources.SYNTHETIC_CHANGE_POINTS["covariate"])])
def test_monitoring_reads_the_lake_partition_on_the_workers(client, champion, tmp_path,
                                                            monkeypatch, index):
    """A batch stored as several part files, monitored from `dd.read_parquet` on the
    workers: the same verdicts and numbers as the single-process path on the whole batch,
    and the flow's process never read it."""
    from tasks.data import late
    from tasks.data.home import Home
    from tasks.scale import landed

    home = Home(tmp_path / "gl").ensure()
    batch = sources.synthetic_batch(index, rows=20_000).frame
    parts = lake.staging_dir(home.lake, "b") / "parts"
    parts.mkdir(parents=True)
    for i, part in enumerate(distributed.split(batch, PARTITION_ROWS)):
        part.to_parquet(parts / f"part-{i}.parquet", index=False)
    lake.publish_parts(home.lake, "b", parts)
    assert lake.partition_rows(home.lake, "b") == 20_000
    reference = sources.synthetic_batch(0, rows=3000).frame
    ranges = load_ranges(suite_path("synthetic"))
    whole = late.labelled(home, SPEC, "b")
    one = monitor_batch("b", whole, reference, champion, 0.76, SPEC, tmp_path / "one",
                        ranges=ranges)
    with monkeypatch.context() as patched:
        _no_whole_batch_here(patched)
        sample, inputs = landed.profile_stored(home, SPEC, "b", ranges,
                                               run=distributed.client_mapper(client))
    dask = monitor_batch("b", sample, reference, champion, 0.76, SPEC, tmp_path / "dask",
                         ranges=ranges, inputs=inputs)
    assert {k: getattr(dask, k) for k in VERDICTS} == {k: getattr(one, k) for k in VERDICTS}
    assert dask.rows == one.rows == 20_000
    assert dask.feature_scores == pytest.approx(one.feature_scores)
    assert dask.missing_share == pytest.approx(one.missing_share)
    assert dask.out_of_range_share == pytest.approx(one.out_of_range_share)


def test_small_batches_import_nothing_of_dask(tmp_path):
    """Below the threshold the intake reads a row count and nothing of Dask is imported."""
    import subprocess
    import sys

    path = tmp_path / "b.csv"
    sources.synthetic_batch(1, rows=500).frame.to_csv(path, index=False)
    code = ("import sys; from pathlib import Path; from tasks.scale import dispatch, landed; "
            "from tasks.data import ingest, lake; "
            f"assert ingest.landed_rows(Path({str(path)!r})) == 500; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed', 'prefect_dask')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert out.stdout.strip().splitlines()[-1] == "[]"
