"""End to end on the built-in synthetic stream: real Prefect runs, a real MLflow store.

The stream has known change points (covariate, prior, concept) and one malformed batch,
so the expected decision for every batch is known in advance.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli.demo import run_demo
from cli.main import app
from cli.status import status
from flows.cycle import cycle, registry_for
from registry import versions
from tasks.data import manifest
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.spec import load_spec


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "gl"
    out = io.StringIO()
    run_demo(root, dataset="synthetic", data=None, freq="W", warmup=None, limit=None, seed=7,
             console=Console(file=out, width=200))
    home = Home.from_env(root)
    reg = registry_for(home, load_spec("synthetic"))
    return home, reg, out.getvalue()


def _expected(index: int) -> str:
    if index == 0:
        return "bootstrap"
    if index == sources.SYNTHETIC_MALFORMED:
        return "quarantined"
    return "retrain" if index in sources.SYNTHETIC_CHANGE_POINTS.values() else "no action"


@pytest.mark.e2e
def test_each_change_point_retrains_and_stable_batches_do_not(run):
    home, reg, _ = run
    batches = status(home, reg)["batches"]
    assert [b["decision"] for b in batches] == [_expected(i) for i in range(len(batches))]
    points = sources.SYNTHETIC_CHANGE_POINTS
    for kind in ("covariate", "concept"):  # the champion is worse here: a new model wins
        batch = batches[points[kind]]
        assert batch["promoted_version"] is not None, batch
        assert batch["gate"].split(":")[0] in ("clear", "refresh")
        assert batch["challenger_metric"] > batch["gate_champion_metric"]
    # The concept flip is large: the gain is proven, whatever the data's age.
    assert batches[points["concept"]]["gate"].startswith("clear")
    # A prior shift with an unchanged concept: retrain on the new prices. The label drifted
    # and the challenger learned from newer rows, so it replaces the champion unless the
    # champion is proven better; a failed challenger leaves the champion in place.
    prior = batches[points["prior"]]
    assert "label drift" in " ".join(manifest.load(home.manifest)[prior["id"]]["reasons"])
    assert prior["gate"].split(":")[0] in ("clear", "refresh", "fail")
    assert (prior["promoted_version"] is None) == prior["gate"].startswith("fail")


@pytest.mark.e2e
def test_malformed_batch_is_quarantined_with_its_raw_bytes(run, tmp_path):
    home, reg, _ = run
    bad = status(home, reg)["batches"][sources.SYNTHETIC_MALFORMED]
    assert bad["status"] == "quarantined"
    assert "expect_column_values_to_not_be_null(converted)" in bad["reason"]
    assert bad["reason"].startswith(bad["file"]) and "\n" not in bad["reason"]
    original = sources.write_batch(sources.synthetic_stream(seed=7)[sources.SYNTHETIC_MALFORMED],
                                   tmp_path)
    kept = home.quarantine / bad["id"] / bad["file"]
    assert kept.read_bytes() == original.read_bytes()
    assert "expect_column_values_to_be_between" in (kept.parent / "report.md").read_text()
    assert not (home.lake / f"batch_id={bad['id']}").exists()  # never trained on


@pytest.mark.e2e
def test_versions_carry_lineage_and_the_reference(run):
    home, reg, _ = run
    state = status(home, reg)
    promoted = [b["promoted_version"] for b in state["batches"] if b["promoted_version"]]
    assert state["champion"] == promoted[-1] and state["previous"] == promoted[-2]
    info = versions.by_alias(reg, "champion")
    for tag in ("greenlight.batch_set", "greenlight.batch_ids", "greenlight.decision",
                "greenlight.gate", "greenlight.reasons", "greenlight.dataset",
                "greenlight.data_hash"):
        assert info.tags.get(tag), tag
    assert info.tags["greenlight.gate"] == "clear"
    run_data = reg.client.get_run(info.run_id).data
    assert {"half_life_days", "window_days", "train_rows", "gate_rows"} <= set(run_data.params)
    assert {"gate_challenger_accuracy", "gate_champion_accuracy"} <= set(run_data.metrics)
    reference = versions.load_reference(reg, info)
    assert len(reference) >= 1000 and list(reference.columns) == load_spec("synthetic").columns
    model_files = {a.path for a in reg.client.list_artifacts(info.run_id)}
    assert "reference" in model_files
    # The recipe was backtested on the batches before the gate window and kept with the model.
    assert info.tags["greenlight.recipe_reason"].startswith(info.tags["greenlight.recipe"])
    backtest = json.loads(Path(reg.client.download_artifacts(
        info.run_id, f"recipe/{info.tags['greenlight.batch_set']}.json")).read_text())
    assert backtest["recipe"] == info.tags["greenlight.recipe"] and len(backtest["table"]) >= 9
    assert max(f["end"] for f in backtest["folds"]) < run_data.params["gate_start"]
    monitoring = reg.client.get_experiment_by_name("greenlight-synthetic-monitoring")
    runs = reg.client.search_runs([monitoring.experiment_id], max_results=100)
    assert len(runs) == 18  # every accepted batch after the bootstrap, one run each
    assert all("drift_share" in r.data.metrics for r in runs)


@pytest.mark.e2e
def test_reports_are_written_and_the_demo_says_where(run):
    home, reg, output = run
    accepted = [b for b in status(home, reg)["batches"] if b["decision"] == "no action"]
    assert (home.reports / accepted[0]["id"] / "drift.html").stat().st_size > 10_000
    assert "mlflow ui --backend-store-uri sqlite:///" in output
    assert "quarantined" in output and "retrain" in output


@pytest.mark.e2e
def test_running_again_or_relanding_registers_nothing(run):
    home, reg, _ = run
    before = [v.version for v in versions.all_versions(reg)]
    assert cycle(dataset="synthetic", home=str(home.root))["batches"] == []
    archived = next(home.archive.glob("*/*.csv"))
    shutil.copy(archived, home.landing / "again.csv")  # the same bytes under a new name
    assert cycle(dataset="synthetic", home=str(home.root))["batches"] == []
    assert [v.version for v in versions.all_versions(reg)] == before
    assert (home.archive / archived.parent.name / "again.csv").exists()  # kept, not deleted


@pytest.fixture
def two_versions(two_versions_home):
    """A copy of the two versions built once for the run (tests/conftest.py), shaped like
    `run`: the CLI needs a champion, a previous and batches, not the whole replay."""
    home = Home.from_env(two_versions_home)
    return home, registry_for(home, load_spec("synthetic")), ""


def test_status_json_and_rollback_from_the_cli(two_versions, monkeypatch):
    home, reg, _ = two_versions
    monkeypatch.setenv("GREENLIGHT_HOME", str(home.root))
    cli = CliRunner()
    state = json.loads(cli.invoke(app, ["status", "--json"]).stdout)
    assert {"champion", "previous", "versions", "batches"} <= set(state)
    assert {"id", "file", "status", "reason", "decision", "promoted_version"} <= set(
        state["batches"][0])
    champion, previous = state["champion"], state["previous"]
    result = cli.invoke(app, ["rollback", "--reason", "test", "--by", "pytest"])
    assert result.exit_code == 0, result.output
    after = json.loads(cli.invoke(app, ["status", "--json"]).stdout)
    assert (after["champion"], after["previous"]) == (previous, champion)
    last = after["promotions"][-1]
    assert (last["action"], last["from"], last["to"], last["by"]) == (
        "rollback", champion, previous, "pytest")
