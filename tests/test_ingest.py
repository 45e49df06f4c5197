"""Ingest: content-hash ids, raw files kept byte for byte, bad files quarantined in one line."""

import pandas as pd

from tasks.data import ingest, manifest
from tasks.data.spec import DatasetSpec

SPEC = DatasetSpec(name="t", time_column="ts", target="y", task="classification",
                   features=["x"], primary_metric="accuracy", positive_class=1)


def _land(home, name, data: bytes):
    path = home.landing / name
    path.write_bytes(data)
    return path


def test_same_bytes_same_id_and_temp_names_are_skipped(home):
    _land(home, "a.csv", b"ts,x,y\n2026-01-01,1.0,1\n")
    _land(home, "b.csv", b"ts,x,y\n2026-01-01,1.0,1\n")
    _land(home, ".c.csv.tmp", b"partial")
    _land(home, "notes.txt", b"not a batch")
    found = ingest.scan_landing(home.landing)
    assert [f.path.name for f in found] == ["a.csv", "b.csv"]
    assert found[0].batch_id == found[1].batch_id


def test_accept_keeps_raw_bytes_and_writes_lake_and_manifest(home):
    raw = b"ts,x,y\n2026-01-01 00:00,1.5,1\n2026-01-01 01:00,-2.0,0\n"
    _land(home, "b1.csv", raw)
    landed = ingest.scan_landing(home.landing)
    frame, error = ingest.try_read(landed[0].path, SPEC)
    assert error is None and frame["ts"].dtype.kind == "M"
    bid = ingest.accept(home, landed[0], frame, SPEC)
    assert (home.archive / bid / "b1.csv").read_bytes() == raw
    assert not (home.landing / "b1.csv").exists()
    assert len(pd.read_parquet(home.lake / f"batch_id={bid}")) == 2
    assert manifest.pending(home.manifest)[0]["id"] == bid


def test_unreadable_file_is_quarantined_with_a_one_line_reason(home):
    raw = b"\xff\xfe\x00garbage\x00"
    path = _land(home, "broken.parquet", raw)
    landed = ingest.scan_landing(home.landing)[0]
    frame, error = ingest.try_read(path, SPEC)
    assert frame is None and error.startswith("broken.parquet: ") and "\n" not in error
    ingest.reject(home, landed, error)
    kept = home.quarantine / landed.batch_id
    assert (kept / "broken.parquet").read_bytes() == raw
    assert "broken.parquet" in (kept / "report.md").read_text()
    assert manifest.load(home.manifest)[landed.batch_id]["status"] == "quarantined"


def test_empty_file_reason(home):
    path = _land(home, "empty.csv", b"")
    assert ingest.try_read(path, SPEC) == (None, "empty.csv: empty file (0 bytes)")


def test_torn_manifest_line_is_ignored(home):
    manifest.append(home.manifest, "b1", status="accepted")
    with home.manifest.open("a") as fh:
        fh.write('{"id": "b1", "decision": "ret')
    assert manifest.load(home.manifest)["b1"]["status"] == "accepted"


def test_a_record_after_a_torn_line_is_kept(home):
    manifest.append(home.manifest, "b1", status="accepted")
    with home.manifest.open("a") as fh:
        fh.write('{"id": "b1", "decision": "ret')
    manifest.append(home.manifest, "b2", status="accepted")
    assert set(manifest.load(home.manifest)) == {"b1", "b2"}
