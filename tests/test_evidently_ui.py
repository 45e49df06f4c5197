"""Where people look: the Evidently UI over a workspace that real cycles filled, and the
history plot on each MLflow monitoring run.

Three real cycles on the synthetic stream (bootstrap, a stable week, the new-market week),
then a real `evidently ui` on a free loopback port, asked over its HTTP API.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from cli import stack
from flows.cycle import cycle, registry_for
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.spec import load_spec
from tasks.publish import workspace
from tests.servers import STARTUP_TIMEOUT
from tests.state_helpers import copy_state

pytestmark = pytest.mark.e2e
SPEC = load_spec("synthetic")
COVARIATE = sources.SYNTHETIC_CHANGE_POINTS["covariate"]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory, champion_state) -> tuple[Home, list[sources.Batch]]:
    """The champion bootstrapped on batch 0 (built once for the run, copied), then the real
    cycle on a stable week and on the covariate shift."""
    home = Home(copy_state(champion_state, tmp_path_factory.mktemp("evidently") / "gl"))
    home.ensure()
    stream = sources.synthetic_stream(seed=7)
    for index in (1, COVARIATE):
        sources.write_batch(stream[index], home.landing)
        cycle(dataset="synthetic", home=str(home.root))
    return home, [stream[1], stream[COVARIATE]]


@pytest.fixture(scope="module")
def ui(monitored) -> str:
    home, _ = monitored
    port = stack.free_port()
    proc = stack.start_evidently_ui(home.root, port)
    try:
        url = f"http://127.0.0.1:{port}"
        stack.wait_healthy(url + stack.EVIDENTLY_HEALTH, STARTUP_TIMEOUT, proc)
        yield url
    finally:
        stack.stop([proc])


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _post(url: str, body: dict) -> object:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _project(ui: str) -> dict:
    projects = [p for p in _get(f"{ui}/api/projects/") if p["name"] == "greenlight-synthetic"]
    assert len(projects) == 1, projects
    return projects[0]


def _series(ui: str, project_id: str, metric: str, labels: dict[str, str]) -> dict:
    return _post(f"{ui}/api/v2/snapshots/{project_id}/data_series_batch", {"series_filter": [
        {"tags": [], "metadata": {}, "metric": metric, "metric_labels": labels}]})


def test_the_ui_serves_one_snapshot_per_monitored_batch_in_batch_order(ui, monitored):
    _, batches = monitored
    project = _project(ui)
    snapshots = _get(f"{ui}/api/projects/{project['id']}/snapshots")
    by_time = sorted(snapshots, key=lambda s: s["timestamp"])
    assert [s["metadata"]["file"] for s in by_time] == [f"{b.label}.csv" for b in batches]
    assert all(s["metadata"]["champion_version"] == "1" for s in snapshots)
    # a snapshot opens: the merged report has the summary and the drift widgets
    widgets = _get(f"{ui}/api/projects/{project['id']}/{by_time[-1]['id']}/data")["widgets"]
    titles = " ".join(w.get("title", "") for w in widgets)
    assert "Row count" in titles and "Drift" in titles


def test_the_dashboard_plots_drift_share_decay_and_missing_share_over_batches(ui):
    project_id = _project(ui)["id"]
    panels = _get(f"{ui}/api/v2/dashboards/{project_id}")["panels"]
    titles = {p["title"] for p in panels}
    assert {"Share of drifted features", "Missing share per column",
            "Decay: champion accuracy vs its registered accuracy"} <= titles

    values = _series(ui, project_id, "evidently:metric_v2:GreenlightValue", {})["series"]
    by_name = {s["params"]["name"]: s["values"] for s in values}
    stable, new_market = by_name["drift_share"]
    assert stable < 0.3 <= new_market  # the covariate shift crosses the retrain threshold
    assert by_name["drift_share_threshold"] == [0.3, 0.3]
    assert len(by_name["decay"]) == 2 and len(by_name["champion_metric"]) == 2

    missing = _series(ui, project_id, "evidently:metric_v2:MissingValueCount",
                      {"value_type": "share"})["series"]
    assert {s["params"]["column"] for s in missing} == set(SPEC.features)
    assert all(len(s["values"]) == 2 for s in missing)


def test_a_batch_monitored_while_the_ui_runs_appears_and_a_rerun_replaces_it(ui, monitored):
    home, batches = monitored
    project_id = _project(ui)["id"]
    sources.write_batch(sources.synthetic_stream(seed=7)[COVARIATE + 1], home.landing)
    cycle(dataset="synthetic", home=str(home.root))
    # picked up by the UI's workspace watcher, no restart
    snapshots = _wait_for(ui, project_id, lambda found: len(found) == 3)
    newest = max(snapshots, key=lambda s: s["timestamp"])

    frame = sources.synthetic_stream(seed=7)[COVARIATE + 1].frame
    again = workspace.record_monitoring(home.evidently, SPEC, newest["metadata"]["batch_id"],
                                        frame, {"drift_share": 0.0}, {"drift_share": 0.3},
                                        tags=newest["metadata"])
    ids = {s["id"] for s in _wait_for(ui, project_id, lambda found: again in {
        s["id"] for s in found} and len(found) == 3)}
    assert newest["id"] not in ids


def _wait_for(ui: str, project_id: str, done, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = _get(f"{ui}/api/projects/{project_id}/snapshots")
        if done(found) or time.monotonic() > deadline:
            assert done(found), [s["metadata"] for s in found]
            return found
        time.sleep(0.5)


def test_each_monitoring_run_carries_a_plot_of_the_history(monitored):
    home, batches = monitored
    reg = registry_for(home, SPEC)
    client = MlflowClient(tracking_uri=reg.tracking_uri)
    runs = client.search_runs([reg.experiment_id(f"{reg.model_name}-monitoring")],
                              order_by=["attributes.start_time ASC"])
    assert len(runs) >= len(batches)
    for run in runs:
        files = [a.path for a in client.list_artifacts(run.info.run_id, "plots")]
        assert files == ["plots/monitoring-history.png"]
    local = client.download_artifacts(runs[-1].info.run_id, "plots/monitoring-history.png",
                                      str(home.root / "downloaded"))
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed "
                                                               "(.ci/run installs it)")
def test_the_dashboard_renders_in_a_browser(ui):
    from playwright.sync_api import expect, sync_playwright

    project_id = _project(ui)["id"]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "evidently-dashboard.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{ui}/projects/{project_id}", wait_until="networkidle")
        page.get_by_text("Share of drifted features").wait_for()
        # the threshold series' legend, in the drift and decay panels: their data arrived
        expect(page.get_by_text("retrain threshold", exact=True)).to_have_count(2)
        page.wait_for_timeout(1000)  # let the line animation settle before the screenshot
        page.screenshot(path=str(shot), full_page=True)
        body = page.inner_text("body")
        browser.close()
    assert "greenlight: synthetic" in body and "Missing share per column" in body
    assert "no value" not in body
    assert shot.stat().st_size > 50_000
