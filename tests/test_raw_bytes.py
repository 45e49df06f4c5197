"""The archive holds the exact bytes that were hashed and ingested (issue 21.6).

A symlink is read through to its bytes (or refused once, with a reason), and a writer that
pauses past the settle time, or writes again after its file was taken, never gets a batch
whose archived bytes differ from what was hashed and read into the lake.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pandas as pd

from flows.cycle import cycle
from tasks.data import idle, ingest, lake, manifest
from tasks.data import replay as sources
from tasks.data.spec import load_spec
from tests import bad_inputs

SPEC = load_spec("synthetic")


def _week(index: int, rows: int = 300) -> bytes:
    return bad_inputs.csv(sources.synthetic_batch(index, rows=rows).frame)


def _old(path: Path) -> Path:
    os.utime(path, (bad_inputs.OLD, bad_inputs.OLD), follow_symlinks=True)
    return path


def _take(home, landed: ingest.LandedFile) -> str:
    """What the cycle does with one landed file: read, then accept or quarantine."""
    frame, error = ingest.try_read(landed.path, SPEC)
    if error:
        return ingest.reject(home, landed, error)
    return ingest.accept(home, landed, frame, SPEC)


def test_a_symlink_is_read_through_and_the_archive_keeps_its_bytes(home, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("GREENLIGHT_LANDING_LINK_DIRS", str(tmp_path))  # links may lead here
    data = _week(1)
    target = tmp_path / "elsewhere.csv"
    target.write_bytes(data)
    _old(target)
    (home.landing / "2026-W03.csv").symlink_to(target)
    (landed,) = ingest.scan_landing(home.landing)
    batch = _take(home, landed)
    kept = home.archive / batch / "2026-W03.csv"
    assert not kept.is_symlink() and kept.read_bytes() == data
    assert manifest.load(home.manifest)[batch]["sha256"] == bad_inputs.sha256(kept)
    assert not (home.landing / "2026-W03.csv").exists()  # the link is filed away
    assert target.read_bytes() == data  # the target is not ours to move
    target.write_bytes(b"rewritten upstream")
    assert kept.read_bytes() == data  # the raw data does not follow its old link


def test_a_dangling_symlink_is_quarantined_once_with_a_reason(home, tmp_path):
    """It used to be skipped in silence on every cycle; now the real cycle quarantines the
    link itself with one line, and the next cycle has nothing left to say about it."""
    link = home.landing / "2026-W04.csv"
    link.symlink_to(tmp_path / "gone.csv")
    assert idle.nothing_new(home, "synthetic") is None  # it is work, not "nothing new"
    first = cycle(dataset="synthetic", home=str(home.root))
    (reason,) = first["quarantined"]
    assert reason.startswith("2026-W04.csv: a symlink to ") and "does not exist" in reason
    assert "\n" not in reason
    (entry,) = manifest.load(home.manifest).values()
    assert (entry["status"], entry["reason"]) == ("quarantined", reason)
    kept = home.quarantine / entry["id"] / "2026-W04.csv"
    assert kept.is_symlink() and os.readlink(kept) == str(tmp_path / "gone.csv")
    assert not link.is_symlink()
    assert idle.nothing_new(home, "synthetic") is not None
    assert cycle(dataset="synthetic", home=str(home.root))["quarantined"] == []


class PausingWriter(threading.Thread):
    """Writes half a batch, then holds the file open, paused, until told to go on."""

    def __init__(self, path: Path, data: bytes) -> None:
        super().__init__(daemon=True)
        self.path, self.data = path, data
        self.paused, self.resume = threading.Event(), threading.Event()

    def run(self) -> None:
        half = len(self.data) // 2
        with self.path.open("wb") as fh:
            fh.write(self.data[:half])
            fh.flush()
            self.paused.set()
            self.resume.wait(60)
            fh.write(self.data[half:])


def test_a_writer_paused_past_the_settle_time_is_left_until_it_closes_the_file(home):
    data = _week(2)
    writer = PausingWriter(home.landing / "2026-W04.csv", data)
    writer.start()
    writer.paused.wait(60)
    found = ingest.scan(home.landing, settle_seconds=0.2)  # the pause outlasts the settle
    assert found.ready == [] and found.busy == ["2026-W04.csv"]
    writer.resume.set()
    writer.join()
    (landed,) = ingest.scan(home.landing, settle_seconds=0.2).ready
    batch = _take(home, landed)
    entry = manifest.load(home.manifest)[batch]
    assert entry["status"] == "accepted" and entry["bytes"] == len(data)
    assert (home.archive / batch / "2026-W04.csv").read_bytes() == data
    assert len(lake.read_batches(home.lake, [batch])) == 300  # the last rows too
    assert list(home.landing.iterdir()) == []  # no copy is left behind


def test_a_file_written_again_after_it_was_taken_is_left_and_taken_whole_later(home, caplog):
    """A writer that closes and reopens (append) between chunks: the bytes read are not what
    the file holds any more, so nothing is filed, and the next cycle takes the whole file."""
    data = _week(2)
    path = home.landing / "2026-W04.csv"
    half = data.index(b"\n", len(data) // 2) + 1
    path.write_bytes(data[:half])
    _old(path)
    (landed,) = ingest.scan_landing(home.landing)
    with path.open("ab") as fh:
        fh.write(data[half:])
    with caplog.at_level(logging.WARNING, logger="greenlight.ingest"):
        _take(home, landed)
    assert "2026-W04.csv: changed after it was taken" in caplog.text
    assert manifest.load(home.manifest) == {} and not any(home.lake.iterdir())
    assert path.read_bytes() == data  # nothing lost, nothing filed
    (again,) = ingest.scan_landing(home.landing)
    batch = _take(home, again)
    kept = home.archive / batch / "2026-W04.csv"
    entry = manifest.load(home.manifest)[batch]
    assert kept.read_bytes() == data and entry["sha256"] == bad_inputs.sha256(kept)
    assert entry["bytes"] == len(data) and entry["rows"] == 300
    assert not path.exists()


def test_a_quarantined_file_keeps_the_bytes_judged_and_a_newer_original_stays(home, caplog):
    path = home.landing / "bad.csv"
    path.write_bytes(b"PK\x03\x04\xff\xfe binary")
    _old(path)
    (landed,) = ingest.scan_landing(home.landing)
    path.write_bytes(b"PK\x03\x04\xff\xfe binary, and more")
    with caplog.at_level(logging.WARNING, logger="greenlight.ingest"):
        reason = _take(home, landed)
    assert reason.startswith("bad.csv: not UTF-8 text")
    kept = home.quarantine / landed.batch_id / "bad.csv"
    assert bad_inputs.sha256(kept) == landed.sha256 == manifest.load(home.manifest)[
        landed.batch_id]["sha256"]
    assert path.read_bytes() == b"PK\x03\x04\xff\xfe binary, and more"
    assert "bad.csv: changed after it was taken" in caplog.text


def test_the_bytes_read_are_the_bytes_hashed(home):
    """The lake is built from the copy that was hashed, not from the file in landing."""
    data = _week(3)
    path = home.landing / "2026-W05.csv"
    path.write_bytes(data)
    _old(path)
    (landed,) = ingest.scan_landing(home.landing)
    assert landed.path != path and ingest.sha256(landed.path) == landed.sha256
    frame, error = ingest.try_read(landed.path, SPEC)
    assert error is None
    pd.testing.assert_frame_equal(frame, ingest.read_batch(path, SPEC))
