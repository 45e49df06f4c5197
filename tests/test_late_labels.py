"""Late labels: a batch lands without its outcome; its decay is computed once the labels land
in `labels/` (with a later batch), and a decay found then still raises the alarm."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tasks.data import labels, manifest
from tasks.data.home import Home
from tasks.data.replay import SYNTHETIC_CHANGE_POINTS, synthetic_batch, write_batch
from tasks.data.spec import load_spec

pytestmark = pytest.mark.e2e
CONCEPT = SYNTHETIC_CHANGE_POINTS["concept"]


@pytest.fixture
def late_dataset(tmp_path, monkeypatch):
    """The synthetic dataset, with a suite that lets the label column arrive empty."""
    import tasks.data.spec

    root = tmp_path / "expectations"
    shutil.copytree(tasks.data.spec.EXPECTATIONS_DIR / "synthetic", root / "synthetic_late")
    suite_file = root / "synthetic_late" / "suite.json"
    suite = json.loads(suite_file.read_text())
    suite["expectations"] = [e for e in suite["expectations"] if not (
        e["type"] == "expect_column_values_to_not_be_null"
        and e["kwargs"]["column"] == "converted")]
    suite_file.write_text(json.dumps(suite))
    spec_file = root / "synthetic_late" / "spec.json"
    spec_file.write_text(json.dumps({**json.loads(spec_file.read_text()),
                                     "name": "synthetic_late"}))
    monkeypatch.setattr(tasks.data.spec, "EXPECTATIONS_DIR", root)
    return "synthetic_late"


def _unlabelled(index: int):
    batch = synthetic_batch(index)
    truth = batch.frame[["timestamp", "converted"]].copy()
    batch.frame["converted"] = np.nan
    return batch, truth


def test_decay_of_batch_t_is_computed_when_its_labels_land_later(home, late_dataset):
    from flows.cycle import cycle

    for i in range(CONCEPT - 4, CONCEPT):  # four labelled weeks: the champion knows them
        write_batch(synthetic_batch(i), home.landing)
    assert cycle(dataset=late_dataset, home=str(home.root))["decision"] == "bootstrap"

    concept, truth = _unlabelled(CONCEPT)  # outcomes unknown yet
    truth["converted"] = 1 - truth["converted"]  # and the concept has turned upside down
    write_batch(concept, home.landing)
    blind = cycle(dataset=late_dataset, policy="monitor", home=str(home.root))
    (t,) = blind["batches"]
    record = manifest.load(home.manifest)[t]
    assert record["decay"] is None and record["labelled_rows"] == 0
    assert "greenlight.model.decayed" not in blind["events"]

    nxt, _ = _unlabelled(CONCEPT + 1)  # a week later: the next batch, and batch t's labels
    write_batch(nxt, home.landing)
    home.labels.mkdir(exist_ok=True)
    truth.to_csv(home.labels / "outcomes-week-1.csv", index=False)
    later = cycle(dataset=late_dataset, policy="monitor", home=str(home.root))
    assert later["late_labels"] == [t]
    record = manifest.load(home.manifest)[t]
    assert record["labelled_rows"] == len(truth)
    assert record["decay"] >= 0.5 and record["champion_metric"] < 0.5, record
    assert "greenlight.model.decayed" in later["events"]
    assert any(a["kind"] == "decay" and a["batch_id"] == t for a in later["alarms"])
    assert later["decision"] == "retrain"  # what an auto cycle would do; monitor only records

    # nothing new: the late decay is not computed (or alarmed) twice
    again = cycle(dataset=late_dataset, policy="monitor", home=str(home.root))
    assert again["batches"] == [] and "late_labels" not in again

    # what MLflow shows: per-batch monitoring metrics, the late-label run, per-step metrics
    from flows.cycle import registry_for

    reg = registry_for(home, load_spec(late_dataset))
    monitoring = reg.client.get_experiment_by_name(f"{reg.model_name}-monitoring")
    runs = {r.info.run_name: r.data for r in reg.client.search_runs([monitoring.experiment_id])}
    blind_run = runs[f"monitor-{concept.label}.csv"]
    assert {"adversarial_auc", "prediction_drift", "missing.income", "out_of_range.price",
            "score_p50", "positive_share", "drift.market"} <= set(blind_run.metrics)
    assert "decay" not in blind_run.metrics and blind_run.metrics["labelled_rows"] == 0
    assert runs[f"labels-{concept.label}.csv"].metrics["decay"] == record["decay"]
    pipeline = reg.client.get_experiment_by_name(f"{reg.model_name}-pipeline")
    steps = reg.client.search_runs([pipeline.experiment_id], order_by=["start_time ASC"])
    first = steps[0].data.metrics  # the bootstrap: four weeks in, all accepted, trained
    assert first["step.ingest_validate.rows_in"] == first["step.ingest_validate.rows_out"] \
        == 4 * len(truth)
    assert first["step.train.rows_in"] == 4 * len(truth) > first["step.train.rows_out"]
    assert {"step.monitor.seconds", "step.late_labels.seconds"} <= set(steps[-1].data.metrics)


def test_labels_feed_joins_by_key_and_names_a_bad_file(tmp_path):
    spec = load_spec("synthetic")
    home = Home(tmp_path / "gl").ensure()
    batch = synthetic_batch(1).frame.head(10).assign(converted=np.nan)
    assert labels.attach(batch, home, spec)["converted"].isna().all()  # no feed yet
    home.labels.mkdir()
    feed = batch[["timestamp"]].head(4).assign(converted=[1, 0, 1, 1])
    feed.to_csv(home.labels / "a.csv", index=False)
    feed.head(1).assign(converted=0).to_parquet(home.labels / "b.parquet")  # a correction
    (home.labels / "broken.csv").write_text("timestamp;label\n1;2\n")
    out = labels.attach(batch, home, spec)
    assert out["converted"].head(4).tolist() == [0, 0, 1, 1]
    assert out["converted"].iloc[4:].isna().all()
    with pytest.raises(ValueError, match=r"broken\.csv: labels file lacks column"):
        labels.read_file(home.labels / "broken.csv", spec)
    assert pd.api.types.is_numeric_dtype(out["converted"])
