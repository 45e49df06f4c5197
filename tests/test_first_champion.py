"""Issue "Your own data": a first champion whenever the data allows one, a grid on the data's
own cadence, and one line saying why when the data cannot give a champion.

The real cycle (Prefect on the session's server, MLflow, Evidently, LightGBM, the shipped
specs and suites) on a real dataset cut into coarse batches, and on synthetic batches that
cannot give a first model."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from cli.status import status
from cli.views import print_status
from flows.cycle import cycle, registry_for
from flows.params import Training
from registry import versions
from tasks.data import manifest
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.replay import Batch, synthetic_batch, write_batch
from tasks.data.spec import load_spec
from tasks.gate.gate import MIN_FIT_ROWS
from tasks.training.recipe import candidates_for
from tests.conftest import shared_file


def _champion(home: Home, dataset: str) -> int | None:
    return versions.aliases(registry_for(home, load_spec(dataset))).get("champion")


def _shown(home: Home, dataset: str) -> str:
    """What `greenlight status` prints (cli/views.py), as text."""
    out = io.StringIO()
    print_status(status(home, registry_for(home, load_spec(dataset))),
                 Console(file=out, width=400, color_system=None))
    return out.getvalue()


def test_quarterly_bike_sharing_bootstraps_then_retrains_on_the_quarters_scale(home):
    """Bike Sharing's hourly rows by quarter. The first quarter gives v1 although its gate
    window (5% here: ~100 rows) is under the gate's 200-row minimum: a first model has
    nothing to beat. Two more quarters (spring, summer: the weather and demand move) retrain
    with a recipe from the grid scaled to 3-month batches."""
    spec = load_spec("bike_sharing")
    frame = sources.load_dataset("bike_sharing",
                                 shared_file(*sources.DATA_FILES["bike_sharing"]))
    quarters = sources.cut_batches(frame, spec, "Q")[:3]
    write_batch(quarters[0], home.landing)
    small_gate = Training(gate_fraction=0.05)
    first = cycle(dataset="bike_sharing", policy="auto", training=small_gate,
                  home=str(home.root))
    assert first["decision"] == "bootstrap" and first["verdict"] == "bootstrap", first
    assert first["gate"]["n_rows"] < 200 and first["promoted_version"] == 1
    assert _champion(home, "bike_sharing") == 1

    for quarter in quarters[1:]:
        write_batch(quarter, home.landing)
    second = cycle(dataset="bike_sharing", policy="auto", home=str(home.root))
    assert second["decision"] == "retrain", second["reasons"]
    scaled = {r.name for r in candidates_for(spec, 3)}
    assert second["recipe"] in scaled, second["recipe_reason"]
    assert "grid scaled to batches of 3 months" in second["recipe_reason"]
    assert "sliding 540d" in scaled and "half-life 270d" in scaled  # 6 batches, 3 batches
    if second.get("promoted_version"):
        assert _champion(home, "bike_sharing") == second["promoted_version"] == 2


def _land(home: Home, frame, name: str) -> None:
    write_batch(Batch(name, frame), home.landing)


def test_a_single_class_first_batch_gives_one_line_and_no_champion(home):
    """All-0 labels are held first (a person must say they are real); released, the cycle
    cannot make a classifier from one class: it ends with one line, records it on the batch,
    and `status` shows it. No model is registered."""
    _land(home, synthetic_batch(0).frame.assign(converted=0), "week-00-all-0")
    held = cycle(dataset="synthetic", policy="auto", home=str(home.root))
    (line,) = held["held"]
    assert "labels implausible" in line and "\n" not in line
    assert _champion(home, "synthetic") is None
    batch_id = next(iter(manifest.load(home.manifest)))
    manifest.release(home.manifest, batch_id, by="alice", reason="no one converted, really")

    with pytest.raises(ValueError) as raised:
        cycle(dataset="synthetic", policy="auto", home=str(home.root))
    message = str(raised.value)
    assert "\n" not in message and message.startswith("no first champion")
    assert "training rows have converted=0" in message and "both classes" in message
    assert _champion(home, "synthetic") is None
    assert versions.all_versions(registry_for(home, load_spec("synthetic"))) == []
    record = manifest.load(home.manifest)[batch_id]
    assert record["decision"] == "bootstrap" and record["no_champion"] == message
    shown = _shown(home, "synthetic")
    assert "bootstrap (no champion)" in shown and message in " ".join(shown.split())


def test_too_few_rows_say_so_and_the_next_batch_makes_the_champion(home):
    """A first batch too small to fit ends with one line; once a real batch lands, the
    history of both gives the first champion, and status drops the line."""
    _land(home, synthetic_batch(0, rows=40).frame, "week-00-tiny")
    with pytest.raises(ValueError) as raised:
        cycle(dataset="synthetic", policy="auto", home=str(home.root))
    message = str(raised.value)
    assert "\n" not in message and message.startswith("no first champion")
    assert f"at least {MIN_FIT_ROWS}" in message
    assert message in " ".join(_shown(home, "synthetic").split())

    write_batch(synthetic_batch(1), home.landing)
    out = cycle(dataset="synthetic", policy="auto", home=str(home.root))
    assert out["verdict"] == "bootstrap" and out["promoted_version"] == 1
    assert _champion(home, "synthetic") == 1
    assert "no first champion" not in _shown(home, "synthetic")


def test_small_batches_get_a_verdict_once_the_gate_minimum_is_lowered(home):
    """30% of a 300-row batch is 90 rows; the window grows to 100 (gate_window_min_rows),
    still under the 200 rows that prove a gain. Behind drift the small window decides
    (issue 31, docs/approval.md "Small windows"): the newer challenger is promoted as a
    refresh, and the reason says the window was small. Where the champion is not stale
    (refresh_on never: the challenger must prove a gain) it is 'not enough evidence',
    said in words. `training.gate_min_rows` (e.g. `--set training.gate_min_rows=100`)
    lets such windows prove a gain, and the gate records the minimum it was held to."""
    write_batch(synthetic_batch(0, rows=300), home.landing)
    assert cycle(dataset="synthetic", policy="auto", home=str(home.root))["verdict"] == "bootstrap"
    write_batch(synthetic_batch(5, rows=300), home.landing)  # the new market: drift
    default = cycle(dataset="synthetic", policy="auto", force_retrain=True,
                    home=str(home.root))
    assert default["verdict"] == "refresh", default["gate"]
    assert "small window (100 labelled rows < 200)" in default["gate"]["reason"]
    assert default["promoted_version"] == 2
    write_batch(synthetic_batch(6, rows=300), home.landing)
    strict = cycle(dataset="synthetic", policy="auto", force_retrain=True,
                   training=Training(refresh_on="never"), home=str(home.root))
    assert strict["verdict"] == "insufficient", strict["gate"]
    assert "100 labelled rows < 200" in strict["gate"]["reason"]
    assert "not stale" in strict["gate"]["reason"] and "stays" in strict["gate"]["reason"]
    write_batch(synthetic_batch(7, rows=300), home.landing)
    judged = cycle(dataset="synthetic", policy="auto", force_retrain=True,
                   training=Training(gate_min_rows=100, refresh_on="never"),
                   home=str(home.root))
    assert judged["gate"]["n_rows"] == 100, judged["gate"]
    assert judged["verdict"] != "insufficient", judged["gate"]["reason"]
