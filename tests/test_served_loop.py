"""Closing the loop: served predictions are monitored, and once labelled become a batch.

The fast tests write the log with the service's own writer; the slow ones serve a real
champion on a real uvicorn over a real MLflow store, then run the real cycle."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from flows.cycle import cycle
from registry import versions
from registry.promote import set_alias
from serving import canary
from serving.app import create_app
from serving.plog import PredictionLog
from tasks.data import harvest, lake, manifest, predictions
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.spec import load_spec
from tasks.monitoring import alarms
from tasks.publish import reports
from tests.approval_helpers import registry
from tests.serving_helpers import FailingOnRealRows, records, register_failing, running

SPEC = load_spec("synthetic")
MODEL = "greenlight-synthetic"
ROW = records(n=1)[0]


def _line(rid: str, i: int = 0, variant: str = "champion", version: int = 1,
          score: float | None = 0.7, error: str | None = None, review: bool = False,
          at: str = "2026-11-30T01:00:00.000+00:00") -> dict:
    out = None if score is None else {"prediction": int(score >= 0.5), "score": score,
                                      "confidence": max(score, 1 - score),
                                      "needs_review": review}
    return {"request_id": rid, "index": i, "prediction_id": f"{rid}-{i}", "at": at,
            "model": MODEL, "version": version, "variant": variant, "input": ROW,
            "output": out, "needs_review": review, "latency_ms": 2.0, "error": error}


def _labels(home: Home, name: str, ids: list[str], values: list[int]) -> None:
    home.labels.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"prediction_id": ids, "converted": values}).to_csv(home.labels / name,
                                                                     index=False)


def test_served_metrics_per_version_and_variant_skip_a_torn_line(tmp_path):
    home = Home(tmp_path / "gl").ensure()
    log = PredictionLog(home.root)
    log.append([_line("a", 0, score=0.9), _line("a", 1, score=0.2, review=True)])
    log.append([_line("b", variant="canary", version=2, score=None, error="RuntimeError: x"),
                _line("b", score=0.6)])
    log.append([_line("c", variant="shadow", version=2, score=0.4)])
    with (log.dir / "2026-11-30.jsonl").open("a") as fh:
        fh.write('{"request_id": "torn", "ind')  # a crash mid-write: no line end
    log.append([_line("d", score=0.1, at="2026-11-30T02:00:00.000+00:00")])

    stats = {s.name: s for s in predictions.served_metrics(predictions.read(home), SPEC)}
    assert set(stats) == {"v1.champion", "v2.canary", "v2.shadow"}
    champ = stats["v1.champion"]
    assert (champ.count, champ.failed_share, champ.needs_review_share) == (4, 0.0, 0.25)
    assert champ.score_mean == pytest.approx(0.45) and champ.positive_share == 0.5
    assert champ.latency_p50_ms == 2.0 and champ.score_quantiles["p50"] == pytest.approx(0.4)
    assert stats["v2.canary"].failed_share == 1.0 and stats["v2.canary"].score_mean is None
    assert champ.run_metrics()["served.v1.champion.count"] == 4.0
    # a window: only what was logged from `since` on
    later = predictions.read(home, since=pd.Timestamp("2026-11-30T01:30:00Z").to_pydatetime())
    assert later["prediction_id"].tolist() == ["d-0"]


def test_failed_served_predictions_raise_the_failed_predictions_alarm():
    stats = [predictions.ServedStats(3, "canary", 40, 0.25, None),
             predictions.ServedStats(2, "champion", 400, 0.0, 0.4)]
    raised = alarms.check_served(stats, max_failed_predictions=0.0)
    assert [(a.kind, a.batch_id, a.event) for a in raised] == [
        ("failed_predictions", "served v3.canary", alarms.FAILED_EVENT)]
    assert "25.0% of 40 predictions failed" in raised[0].reason
    assert alarms.check_served(stats, max_failed_predictions=0.3) == []
    assert alarms.check_served(stats, max_failed_predictions=None) == []


def test_cycle_markdown_shows_the_served_predictions():
    stats = predictions.ServedStats(2, "champion", 40, 0.0, 0.41, {"p05": 0.1, "p50": 0.4,
                                                                   "p95": 0.9}, 0.3, 0.1, 1.2, 4.5)
    md = reports.cycle_markdown("synthetic", "no action", [], [], {}, {}, "sqlite://",
                                served=[stats.to_dict()])
    assert "## Served predictions since the last cycle" in md
    assert "| 2 | champion | 40 | 0.0000 | 0.4100 | 0.100 / 0.400 / 0.900 |" in md


def test_harvest_lands_labelled_records_once_and_never_touches_the_log(tmp_path, caplog):
    home = Home(tmp_path / "gl").ensure()
    log = PredictionLog(home.root)
    log.append([_line("a", 0), _line("a", 1)])
    # a canary that failed fell back to the champion: one row for the record, as answered
    log.append([_line("b", variant="canary", version=2, score=None, error="boom"),
                _line("b", score=0.6)])
    log.append([_line("c", variant="shadow", version=2)])  # silent: never a training row
    before = sorted(p.read_bytes() for p in log.dir.iterdir())
    _labels(home, "served.csv", ["a-0", "b-0", "c-0"], [1, 0, 1])
    pd.DataFrame({"timestamp": ["2026-01-05"], "converted": [1]}).to_csv(
        home.labels / "batch-keyed.csv", index=False)  # the other join's file: passed over

    with caplog.at_level(logging.WARNING, logger="greenlight.labels"):
        first = harvest.harvest(home, SPEC, MODEL)
    assert not caplog.records
    assert (first.rows, first.waiting, first.already) == (2, 1, 0)
    batch = pd.read_csv(first.path)
    assert list(batch.columns) == SPEC.columns and batch["converted"].tolist() == [1, 0]
    assert batch[SPEC.features].iloc[0].to_dict() == ROW
    assert first.path.name.startswith("harvest-20261130T010000-")

    again = harvest.harvest(home, SPEC, MODEL)
    assert (again.path, again.already) == (None, 2)
    assert sorted(home.landing.iterdir()) == [first.path]
    # a label for the waiting record: only that one is harvested next
    _labels(home, "late.csv", ["a-1"], [1])
    second = harvest.harvest(home, SPEC, MODEL)
    assert (second.rows, second.waiting, second.already) == (1, 0, 2)
    assert sorted(p.read_bytes() for p in log.dir.iterdir()) == before
    # a harvest whose file never landed (a crash after its record) frees its records
    second.path.unlink()
    third = harvest.harvest(home, SPEC, MODEL)
    assert third.path == second.path and third.rows == 1


# --- the loop on real components -----------------------------------------------------------


@pytest.fixture
def served_home(champion_home) -> Path:
    """A real champion (v1, bootstrapped from batch 0 by the real cycle): this test's own
    copy of the state built once for the run (tests/conftest.py)."""
    assert versions.aliases(registry(champion_home)) == {"champion": 1}
    return champion_home


def test_served_predictions_are_monitored_then_harvested_into_the_next_batch(served_home,
                                                                             monkeypatch):
    from typer.testing import CliRunner

    from cli.main import app as cli

    home, reg = Home(served_home), registry(served_home)
    truth = records(index=15, n=150)
    frame = sources.synthetic_stream(seed=7)[15].frame
    with running(create_app(reg, home.root, poll_seconds=60, review_below=0.9)) as url:
        with httpx.Client() as http:
            answers = [http.post(f"{url}/predict", json=row).json() for row in truth[:120]]
            answers.append(http.post(f"{url}/predict", json=truth[120:]).json())
    time.sleep(predictions.SETTLE_SECONDS)  # a cycle reads the log up to a second ago
    ids = [p["prediction_id"] for a in answers for p in a["predictions"]]
    assert len(ids) == 150 == len(set(ids))
    labelled = list(range(0, 150, 3)) + list(range(121, 150, 3))  # some of the batch request
    labelled = sorted(set(labelled))
    _labels(home, "outcomes.csv", [ids[i] for i in labelled],
            frame["converted"].head(150).iloc[labelled].tolist())

    monkeypatch.setenv("GREENLIGHT_HOME", str(home.root))
    result = CliRunner().invoke(cli, ["harvest", "--home", str(home.root)])
    assert result.exit_code == 0 and f"({len(labelled)} rows;" in result.output, result.output
    landed = sorted(home.landing.glob("harvest-*.csv"))
    assert len(landed) == 1
    again = CliRunner().invoke(cli, ["harvest", "--home", str(home.root)])
    assert again.exit_code == 0 and "nothing new to harvest" in again.output

    summary = cycle(dataset="synthetic", policy="monitor", home=str(home.root))
    batch_id = summary["batches"][0]
    record = manifest.load(home.manifest)[batch_id]
    assert (record["file"], record["status"], record["rows"]) == (
        landed[0].name, "accepted", len(labelled))
    cols = [*SPEC.features, SPEC.target]
    rows = lake.read_batches(home.lake, [batch_id])[cols]
    want = frame.head(150).iloc[labelled][cols].astype(rows.dtypes.to_dict())
    pd.testing.assert_frame_equal(  # the served inputs with their outcomes, every one once
        rows.sort_values(cols).reset_index(drop=True),
        want.sort_values(cols).reset_index(drop=True))

    served = {s["variant"]: s for s in summary["served"]}
    assert set(served) == {"champion"} and served["champion"]["count"] == 150
    experiment = reg.client.get_experiment_by_name(f"{reg.model_name}-monitoring")
    runs = [r for r in reg.client.search_runs([experiment.experiment_id])
            if r.data.tags.get("greenlight.served") == "true"]
    assert len(runs) == 1
    metrics = runs[0].data.metrics
    assert metrics["served.v1.champion.count"] == 150
    assert metrics["served.v1.champion.failed_share"] == 0.0
    assert 0 < metrics["served.v1.champion.needs_review_share"] < 1
    assert 0 <= metrics["served.v1.champion.score_p05"] <= metrics["served.v1.champion.score_p95"]
    assert metrics["served.v1.champion.latency_p99_ms"] > 0
    assert "positive_share" in json.dumps(sorted(metrics))
    # nothing new since: the next cycle neither re-reports nor re-harvests
    quiet = cycle(dataset="synthetic", policy="monitor", home=str(home.root))
    assert quiet["batches"] == [] and quiet["harvested"]["file"] is None


def test_a_failing_served_version_raises_the_predictions_failed_event(served_home):
    home, reg = Home(served_home), registry(served_home)
    broken = register_failing(reg, like=1, kind=FailingOnRealRows)
    set_alias(reg, "challenger", broken)
    canary.set_fraction(home.root, 0.5, "test")
    try:
        with running(create_app(reg, home.root, poll_seconds=60)) as url, \
                httpx.Client() as http:
            variants = [http.post(f"{url}/predict", json=row, headers={
                "x-request-key": f"k{i}"}).json()["variant"] for i, row in
                enumerate(records(n=60))]
        assert set(variants) == {"champion"}  # every caller got the champion's answer
        time.sleep(predictions.SETTLE_SECONDS)  # a cycle reads the log up to a second ago
        summary = cycle(dataset="synthetic", policy="monitor", home=str(home.root))
    finally:
        canary.set_fraction(home.root, 0.0, "test over")
        reg.client.delete_registered_model_alias(reg.model_name, "challenger")
    failed = [a for a in summary["alarms"] if a["kind"] == "failed_predictions"]
    assert [a["batch_id"] for a in failed] == [f"served v{broken}.canary"]
    assert failed[0]["value"] == 1.0 and alarms.FAILED_EVENT in summary["events"]
    by_name = {f"v{s['version']}.{s['variant']}": s for s in summary["served"]}
    assert by_name["v1.champion"]["failed_share"] == 0.0
    assert by_name["v1.champion"]["count"] == 60
    markdown = _latest_cycle_artifact()  # what the Prefect UI shows for that run
    assert "## Served predictions since the last cycle" in markdown
    assert f"| {broken} | canary | " in markdown and f"served v{broken}.canary" in markdown


def _latest_cycle_artifact() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["greenlight-cycle-synthetic"])),
            sort=ArtifactSort.CREATED_DESC, limit=1)
    return found[0].data
