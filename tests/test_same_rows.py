"""The same rows under other bytes are not trained on twice (issue 21.7).

A re-export with the columns or rows in another order, repeated rows or another format holds
the same rows as a batch already in the lake: it is quarantined with one line naming the
file and the batch it repeats, and its raw bytes are kept.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from flows.cycle import cycle, registry_for
from registry import versions
from tasks.data import ingest, manifest
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.spec import load_spec
from tests import bad_inputs

SPEC = load_spec("synthetic")


def _land(landing: Path, name: str, data: bytes) -> Path:
    path = landing / name
    path.write_bytes(data)
    os.utime(path, (bad_inputs.OLD, bad_inputs.OLD))
    return path


def _twins(frame) -> dict[str, bytes]:
    """The corpus's two re-exports of one batch, plus the same rows as Parquet."""
    columns = list(frame.columns)
    return {
        "shuffled_columns.csv": bad_inputs.csv(
            frame[columns[::-1]].sample(frac=1.0, random_state=1)),
        "duplicated_rows.csv": bad_inputs.csv(
            frame.loc[list(frame.index) + list(frame.index[:200])]),
        "same_rows.parquet": bad_inputs.parquet(frame.iloc[::-1]),
    }


def _take_all(home: Home) -> None:
    """What the cycle does with landing, file by file (validation is the real suite's)."""
    from tasks.data.spec import suite_path
    from tasks.data.validate import read_suite, validate_frame

    suite = read_suite(suite_path("synthetic"))
    for landed in ingest.scan(home.landing).ready:
        frame, error = ingest.try_read(landed.path, SPEC)
        assert error is None, error
        checked = validate_frame(frame, suite, source=landed.path.name, time_column="timestamp")
        assert checked.success, checked.reason
        ingest.accept(home, landed, frame, SPEC)


def test_the_same_rows_under_other_bytes_are_quarantined_naming_the_batch(home, caplog):
    week = sources.synthetic_batch(3, rows=1000)
    original = sources.write_batch(week, home.landing)
    os.utime(original, (bad_inputs.OLD, bad_inputs.OLD))
    _take_all(home)
    (first,) = manifest.load(home.manifest).values()
    twins = _twins(week.frame)
    for name, data in twins.items():
        _land(home.landing, name, data)
    other = _land(home.landing, "2026-W06.csv", bad_inputs.csv(
        sources.synthetic_batch(4, rows=1000).frame))
    with caplog.at_level(logging.WARNING, logger="greenlight.ingest"):
        _take_all(home)
    batches = {b["file"]: b for b in manifest.load(home.manifest).values()}
    assert batches[other.name]["status"] == "accepted"  # other rows are still taken
    for name, data in twins.items():
        entry = batches[name]
        assert entry["status"] == "quarantined" and entry["decision"] == "quarantined"
        reason = entry["reason"]
        assert reason.startswith(f"{name}: the same 1,000 rows as batch {first['id']} "
                                 f"({original.name})"), reason
        assert "\n" not in reason and reason in caplog.text
        assert not (home.lake / f"batch_id={entry['id']}").exists()  # never trained on
        assert (home.quarantine / entry["id"] / name).read_bytes() == data  # kept raw
    assert [b["id"] for b in manifest.pending(home.manifest)] == [
        first["id"], batches[other.name]["id"]]


def test_content_hash_ignores_column_and_row_order_repeats_and_format():
    frame = sources.synthetic_batch(2, rows=500).frame
    kept, _ = ingest.tidy(frame, SPEC)
    base = ingest.content_hash(kept, SPEC)
    shuffled, _ = ingest.tidy(frame.iloc[::-1][frame.columns[::-1]], SPEC)
    assert ingest.content_hash(shuffled, SPEC) == base
    changed = frame.copy()
    changed.loc[0, "price"] += 0.01
    assert ingest.content_hash(ingest.tidy(changed, SPEC)[0], SPEC) != base


@pytest.fixture
def champion_with_old_manifest(champion_home: Path) -> Path:
    """The bootstrapped champion's state as a state dir from before content hashes: its
    manifest lines have no `content`, so the check must hash the lake partition."""
    path = Home.from_env(champion_home).manifest
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in rec.items() if k != "content"}) + "\n"
                            for rec in lines))
    return champion_home


def test_a_cycle_does_not_train_on_the_champions_own_rows_again(champion_with_old_manifest):
    """Week 0 is in the champion's lake: its rows re-exported are quarantined by the real
    cycle, nothing is monitored or trained, and the champion does not move."""
    home = Home.from_env(champion_with_old_manifest)
    reg = registry_for(home, SPEC)
    before = versions.aliases(reg)
    (week0,) = manifest.load(home.manifest).values()
    for name, data in _twins(sources.synthetic_batch(0).frame).items():
        _land(home.landing, name, data)
    summary = cycle(dataset="synthetic", home=str(home.root))
    assert summary["batches"] == []
    assert len(summary["quarantined"]) == 3  # the cycle's own summary names each twin
    assert all("already in the lake" in reason for reason in summary["quarantined"])
    entries = [b for b in manifest.load(home.manifest).values() if b["id"] != week0["id"]]
    assert {b["file"] for b in entries} == {"shuffled_columns.csv", "duplicated_rows.csv",
                                           "same_rows.parquet"}
    for entry in entries:
        assert entry["status"] == "quarantined"
        assert f"the same 3,000 rows as batch {week0['id']} ({week0['file']})" in entry["reason"]
    assert manifest.load(home.manifest)[week0["id"]]["content"]  # hashed once, then kept
    assert versions.aliases(reg) == before
    assert [v.version for v in versions.all_versions(reg)] == [before["champion"]]
