"""What sits in landing/ and is not a plain file (tasks/data/landing_rules.py).

A symlink is read through only to a regular file under an allowed directory (landing,
GREENLIGHT_LANDING_LINK_DIRS), and nothing copied is more readable than its source; a link
elsewhere (/etc/passwd, a 0600 file, /proc/self/environ) is refused with one line, without
a byte read behind it. A FIFO or a directory named like a batch is never opened, and is
reported once, not on every cycle."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from tasks.data import idle, ingest, manifest
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.landing_rules import LINK_DIRS_ENV
from tasks.data.spec import load_spec
from tests import bad_inputs

SPEC = load_spec("synthetic")


@pytest.fixture
def state(tmp_path, monkeypatch) -> Home:
    monkeypatch.delenv(LINK_DIRS_ENV, raising=False)
    monkeypatch.setenv("GREENLIGHT_SETTLE_SECONDS", "0")
    return Home.from_env(tmp_path / "gl").ensure()


def _week(path: Path, index: int = 1, mode: int = 0o644) -> Path:
    path.write_bytes(bad_inputs.csv(sources.synthetic_batch(index, rows=200).frame))
    path.chmod(mode)
    os.utime(path, (bad_inputs.OLD, bad_inputs.OLD))
    return path


def _take(home: Home, landed: ingest.LandedFile) -> str:
    """What the cycle does with one landed file: read, then accept or quarantine."""
    frame, error = ingest.try_read(landed.path, SPEC)
    if error:
        ingest.reject(home, landed, error)
        return landed.batch_id
    return ingest.accept(home, landed, frame, SPEC)


def _everything(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _refused_once(home: Home, name: str, words: str) -> str:
    """Scan: the link is refused (quarantined as the link, one line); returns the reason."""
    (landed,) = ingest.scan(home.landing).ready
    assert landed.path.is_symlink()
    batch = _take(home, landed)
    entry = manifest.load(home.manifest)[batch]
    assert entry["status"] == "quarantined" and words in entry["reason"], entry["reason"]
    assert entry["reason"].startswith(f"{name}: a symlink to ") and "\n" not in entry["reason"]
    assert (home.quarantine / batch / name).is_symlink()  # the link itself, moved once
    assert ingest.scan(home.landing).ready == [] and ingest.scan(home.landing).busy == []
    return entry["reason"]


def test_a_link_to_etc_passwd_is_refused_and_not_a_byte_is_copied(state):
    (state.landing / "2026-W05.csv").symlink_to("/etc/passwd")
    _refused_once(state, "2026-W05.csv", "outside landing")
    first_line = Path("/etc/passwd").read_bytes().splitlines()[0]
    assert first_line not in _everything(state.root)


def test_a_link_to_a_private_file_elsewhere_is_refused(state, tmp_path):
    secret = _week(tmp_path / "private.csv", mode=0o600)
    (state.landing / "2026-W06.csv").symlink_to(secret)
    _refused_once(state, "2026-W06.csv", LINK_DIRS_ENV)
    assert secret.read_bytes()[:40] not in _everything(state.root)
    assert secret.exists()  # never ours to move


def test_a_link_to_proc_self_environ_is_refused_not_still_being_written(state):
    """/proc files say size 0 and give bytes: it was 'still being written' on every cycle."""
    (state.landing / "2026-W07.csv").symlink_to("/proc/self/environ")
    _refused_once(state, "2026-W07.csv", "outside landing")


def test_an_allowed_directory_is_read_through_keeping_the_source_mode(state, tmp_path,
                                                                     monkeypatch):
    allowed = tmp_path / "exports"
    allowed.mkdir()
    target = _week(allowed / "week.csv", mode=0o600)
    monkeypatch.setenv(LINK_DIRS_ENV, f"/nonexistent{os.pathsep}{allowed}")
    (state.landing / "2026-W08.csv").symlink_to(target)
    (landed,) = ingest.scan(state.landing).ready
    assert not landed.path.is_symlink()
    batch = _take(state, landed)
    kept = state.archive / batch / "2026-W08.csv"
    assert kept.read_bytes() == target.read_bytes()
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # was 0644: readable by everyone


def test_a_quarantined_private_file_and_its_reports_stay_private(state):
    """Copies and reports were 0644 in a 755 state dir, whatever the source's mode."""
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in (state.root, state.quarantine)}
    path = state.landing / "2026-W09.csv"
    path.write_bytes(b"timestamp,market\nnot a time,north\n")
    path.chmod(0o600)
    os.utime(path, (bad_inputs.OLD, bad_inputs.OLD))
    (landed,) = ingest.scan(state.landing).ready
    assert stat.S_IMODE(landed.path.stat().st_mode) == 0o600
    batch = _take(state, landed)
    folder = state.quarantine / batch
    for name in ("2026-W09.csv", "report.json", "report.md"):
        assert stat.S_IMODE((folder / name).stat().st_mode) & 0o077 == 0, name
    assert modes == {p: stat.S_IMODE(p.stat().st_mode) for p in modes}  # dirs as they were


def _scan_within(landing: Path, seconds: float = 30) -> ingest.Scan:
    """A scan that must return: a FIFO opened for reading would block it for good."""
    done: list[ingest.Scan] = []
    worker = threading.Thread(target=lambda: done.append(ingest.scan(landing)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert done, "the scan blocked (a FIFO was opened)"
    return done[0]


def test_a_fifo_is_never_opened_and_is_reported_once(state):
    fifo = state.landing / "2026-W10.csv"
    os.mkfifo(fifo)
    assert idle.nothing_new(state, "synthetic") is None  # work: it has not been said yet
    first = _scan_within(state.landing)
    assert first.ready == [] and first.busy == []
    (line,) = first.notes
    assert line.startswith("2026-W10.csv: a FIFO (named pipe), not a regular file"), line
    assert _scan_within(state.landing).notes == []  # said once, not on every cycle
    assert idle.nothing_new(state, "synthetic") is not None
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # left where it is
    fifo.unlink()
    os.mkfifo(fifo)  # a new one under the same name is news again
    assert len(_scan_within(state.landing).notes) == 1


def test_a_directory_of_spark_parts_is_refused_once_and_left_in_landing(state):
    parts = state.landing / "n10_2026-W40.csv"
    parts.mkdir()
    for i in range(2):
        _week(parts / f"part-0000{i}-abc.csv", index=i)
    (parts / "_SUCCESS").write_bytes(b"")
    first = ingest.scan(state.landing)
    assert first.ready == []
    (line,) = first.notes
    assert line.startswith("n10_2026-W40.csv: a directory holding 2 part file(s)"), line
    assert "one file" in line and "\n" not in line
    assert ingest.scan(state.landing).notes == []
    assert sorted(p.name for p in parts.iterdir()) == [
        "_SUCCESS", "part-00000-abc.csv", "part-00001-abc.csv"]  # nothing moved or deleted
