"""Issue 21.1: a batch whose labels are all one class is held from training and gating, with
a reason, until a person releases it; the gate never judges on one class.

The real cycle on a copy of the session's bootstrapped champion (v1, synthetic week 0),
with the shipped suite, the real lake and manifest, and the `greenlight release` command in
its own process."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cycle import cycle, registry_for
from registry import versions
from tasks.data import lake, manifest
from tasks.data.home import Home
from tasks.data.replay import Batch, synthetic_batch, write_batch
from tasks.data.spec import load_spec
from tests.test_idle import _cli

SPEC = load_spec("synthetic")


def _land_constant(home: Path, label: int, index: int = 1) -> str:
    """Week `index`'s normal features, every `converted` set to `label`; the landed file."""
    frame = synthetic_batch(index).frame.assign(converted=label)
    return write_batch(Batch(f"week-{index:02d}-all-{label}", frame), Home(home).landing).name


def _champion(home: Path) -> int:
    return versions.aliases(registry_for(Home(home), SPEC))["champion"]


@pytest.mark.parametrize("label", [1, 0])
def test_a_constant_label_batch_is_held_and_the_champion_kept(champion_home, label):
    file = _land_constant(champion_home, label)
    out = cycle(dataset="synthetic", policy="auto", home=str(champion_home))

    (line,) = out["held"]
    assert file in line and "labels implausible" in line and "greenlight release" in line
    assert f"all 3000 labelled rows have class {label}" in line
    assert "share of converted=1 outside 0.02..0.80" in line
    assert out["batches"] == [] and "promoted_version" not in out
    assert _champion(champion_home) == 1
    batches = manifest.load(Home(champion_home).manifest)
    (held,) = [b for b in batches.values() if b.get("file") == file]
    assert held["status"] == manifest.HELD and "decision" not in held
    assert held["held_reason"] in line
    # nothing is lost: the rows are in the lake, and no cycle takes them while held
    assert len(lake.read_batches(Home(champion_home).lake, [held["id"]])) == 3000
    assert manifest.pending(Home(champion_home).manifest) == []
    again = cycle(dataset="synthetic", policy="auto", home=str(champion_home))
    assert again["held"] == [] and again["batches"] == []
    shown = _cli(["status"], home=champion_home)  # status says held, not quarantined, and how
    assert shown.returncode == 0, shown.stderr
    assert "held" in shown.stdout and f"greenlight release {held['id'][:12]}" in shown.stdout
    assert "quarantined" not in shown.stdout


def test_a_released_batch_is_taken_and_the_gate_still_needs_both_classes(champion_home):
    """A person lets the all-1 batch through: the release is recorded, the next cycle
    monitors, retrains and gates on it, and the gate says "not enough evidence" (the gate
    window is that batch: no negative rows), so the champion stays."""
    file = _land_constant(champion_home, 1)
    cycle(dataset="synthetic", policy="auto", home=str(champion_home))
    held = next(b for b in manifest.load(Home(champion_home).manifest).values()
                if b.get("file") == file)

    done = _cli(["release", held["id"][:12], "--by", "alice", "--reason", "promo week: "
                 "everyone converted"], champion_home)
    assert done.returncode == 0, done.stderr
    assert f"released batch {held['id']}" in done.stdout and "IMPORTED []" in done.stdout
    record = manifest.load(Home(champion_home).manifest)[held["id"]]
    assert record["status"] == "accepted" and record["released_by"] == "alice"
    assert record["released_reason"] == "promo week: everyone converted"
    assert record["held_reason"] == held["held_reason"]  # the hold stays on the record
    twice = _cli(["release", held["id"], "--by", "alice", "--reason", "again"], champion_home)
    assert twice.returncode == 2 and "not held" in twice.stderr
    assert len(twice.stderr.strip().splitlines()) == 1

    out = cycle(dataset="synthetic", policy="auto", home=str(champion_home))
    assert out["held"] == [] and out["batches"] == [held["id"]]
    assert out["decision"] == "retrain"  # the label drift is real: retrained on it
    assert out["verdict"] == "insufficient" and "not enough evidence" in out["gate"]["reason"]
    assert "0 negative" in out["gate"]["reason"]
    assert "promoted_version" not in out and _champion(champion_home) == 1


def test_training_and_the_gate_window_skip_a_held_batch(champion_home):
    """The held batch is the newest (week 2, all 1). A forced retrain after a normal week 1
    lands trains on weeks 0 and 1 only, and its gate window is week 1's newest rows: with
    the held batch in, the window would have been all one class."""
    import hashlib

    from flows.params import Training

    held_file = _land_constant(champion_home, 1, index=2)
    assert cycle(dataset="synthetic", policy="auto", home=str(champion_home))["held"]
    write_batch(synthetic_batch(1), Home(champion_home).landing)
    out = cycle(dataset="synthetic", policy="auto", force_retrain=True,
                training=Training(min_delta=-1.0), home=str(champion_home))

    batches = manifest.load(Home(champion_home).manifest)
    held = next(b for b in batches.values() if b.get("file") == held_file)
    assert held["status"] == manifest.HELD and held["id"] not in out["batches"]
    trained = sorted(b["id"] for b in batches.values() if b["status"] == "accepted")
    assert held["id"] not in trained and len(trained) == 2
    version = versions.by_version(registry_for(Home(champion_home), SPEC),
                                  out["registered_version"])
    assert version.tags["greenlight.data_hash"] == hashlib.sha256(
        ",".join(trained).encode()).hexdigest()[:16]
    assert out["verdict"] != "insufficient" and out["gate"]["n_rows"] == 900
    week2_start = synthetic_batch(2).frame["timestamp"].min()
    assert (version.tags.get("greenlight.trained_until") or "") < str(week2_start)
