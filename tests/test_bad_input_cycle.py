"""The bad-input corpus through `greenlight run`, as a user runs it, next to good batches.

One cycle takes the whole corpus, a good week, the same files twice and a file that is
still being written. For every case: quarantined with a one-line reason naming the file,
raw bytes kept, champion unmoved, the good batch still processed, no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from flows.cycle import cycle, registry_for
from registry import versions
from tasks.data import ingest, lake, manifest
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.spec import load_spec
from tests import bad_inputs
from tests.state_helpers import copy_state

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[1]
# Runs a command and reports the peak RSS of its process tree's largest member.
PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
            "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
            "file=sys.stderr); sys.exit(code)")
GOOD, SLOW = 1, 2  # stable weeks of the stream: one lands whole, one is written slowly


def _old(path: Path) -> Path:
    os.utime(path, (bad_inputs.OLD, bad_inputs.OLD))
    return path


class SlowWriter(threading.Thread):
    """Appends a good batch row by row, as a slow copy would, until told to finish."""

    def __init__(self, path: Path, data: bytes) -> None:
        super().__init__(daemon=True)
        self.path, self.lines = path, data.splitlines(keepends=True)
        self.done = threading.Event()

    def run(self) -> None:
        with self.path.open("wb") as fh:
            fh.writelines(self.lines[:50])
            fh.flush()
            rest = iter(self.lines[50:])
            while not self.done.is_set():
                line = next(rest, None)
                if line is None:
                    break
                fh.write(line)
                fh.flush()
                time.sleep(0.05)
            fh.writelines(rest)


def greenlight_run(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GREENLIGHT_HOME": str(root), "PREFECT_HOME": str(root / "prefect"),
           ingest.MAX_BYTES_ENV: str(bad_inputs.MAX_BYTES)}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "-m", "cli.main",
                           "run", "--dataset", "synthetic", "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, champion_state):
    # the champion bootstrapped on batch 0, built once for the run (tests/conftest.py)
    root = copy_state(champion_state, tmp_path_factory.mktemp("bad-input") / "gl")
    home = Home.from_env(root).ensure()
    reg = registry_for(home, load_spec("synthetic"))
    champion = versions.aliases(reg)["champion"]
    hashes = bad_inputs.write_corpus(home.landing)
    good = _old(sources.write_batch(sources.synthetic_batch(GOOD), home.landing))
    twins = {"zz-copy-of-good.csv": good,  # names sort last: the originals go first
             "zz-copy-of-missing-column.csv": home.landing / "missing-column.csv"}
    for name, twin in twins.items():
        (home.landing / name).write_bytes(twin.read_bytes())
        _old(home.landing / name)
    rows = sources.synthetic_batch(GOOD).frame  # the same rows under other bytes (21.7)
    content_twins = {"zz-shuffled-columns-of-good.csv": rows[rows.columns[::-1]],
                     "zz-duplicated-rows-of-good.csv": pd.concat([rows, rows.iloc[:200]])}
    for name, frame in content_twins.items():
        (home.landing / name).write_bytes(bad_inputs.csv(frame))
        _old(home.landing / name)
    good_id = bad_inputs.sha256(good)[:16]
    slow_data = bad_inputs.csv(sources.synthetic_batch(SLOW).frame)
    writer = SlowWriter(home.landing / "slow.csv", slow_data)
    writer.start()
    time.sleep(0.5)
    first = greenlight_run(root)
    left_in_landing = (home.landing / "slow.csv").exists()
    known_after_first = dict(manifest.load(home.manifest))
    writer.done.set()
    writer.join()
    second = cycle(dataset="synthetic", home=str(root))
    return {"home": home, "reg": reg, "champion": champion, "hashes": hashes, "good": good,
            "good_id": good_id, "first": first, "second": second, "slow_data": slow_data,
            "slow_left": left_in_landing, "known_after_first": known_after_first}


def _summary(run: subprocess.CompletedProcess) -> dict:
    return json.loads(run.stdout[run.stdout.index("{"):])


def _entry(home: Home, digest: str) -> dict:
    return manifest.load(home.manifest)[digest[:16]]


@pytest.mark.parametrize("case", bad_inputs.CASES, ids=[c.name for c in bad_inputs.CASES])
def test_each_bad_input_is_handled_and_nothing_else_suffers(corpus_run, case):
    home, digest, first = corpus_run["home"], corpus_run["hashes"][case.name], corpus_run["first"]
    entry = _entry(home, digest)
    output = first.stdout + first.stderr
    assert first.returncode == 0 and "Traceback" not in output, output[-3000:]
    if case.quarantined:
        assert entry["status"] == "quarantined"
        reason = entry["reason"]
        assert reason.startswith(f"{case.file}: ") and "\n" not in reason, reason
        assert case.expect in reason, reason
        assert reason in _summary(first)["quarantined"]  # the user sees it
        kept = home.quarantine / digest[:16] / case.file
        assert not (home.lake / f"batch_id={digest[:16]}").exists()  # never trained on
    else:
        assert entry["status"] == "accepted"
        kept = home.archive / digest[:16] / case.file
    assert bad_inputs.sha256(kept) == digest  # raw bytes, byte for byte
    reg = corpus_run["reg"]
    assert versions.aliases(reg)["champion"] == corpus_run["champion"]
    assert [v.version for v in versions.all_versions(reg)] == [corpus_run["champion"]]
    assert manifest.load(home.manifest)[corpus_run["good_id"]]["status"] == "accepted"


def test_the_good_batch_in_the_same_cycle_is_monitored(corpus_run):
    summary = _summary(corpus_run["first"])
    home = corpus_run["home"]
    accepted = {b["file"] for b in manifest.load(home.manifest).values()
                if b["status"] == "accepted" and b["id"] in summary["batches"]}
    assert accepted == {corpus_run["good"].name, "shuffled.csv", "duplicated.csv"}
    assert summary["decision"] == "no action"
    # every quarantined case, and the two re-exports of the good week's rows (21.7)
    assert len(summary["quarantined"]) == sum(c.quarantined for c in bad_inputs.CASES) + 2
    assert sum("already in the lake" in r for r in summary["quarantined"]) == 2


def test_duplicates_and_disorder_are_tidied_in_the_lake_not_in_the_raw_file(corpus_run):
    home, hashes = corpus_run["home"], corpus_run["hashes"]
    dup, shuffled = _entry(home, hashes["duplicated-rows"]), _entry(home, hashes[
        "out-of-order-rows"])
    assert (dup["duplicates_dropped"], dup["rows"]) == (200, 3000)
    assert shuffled["resorted"] == 1
    for entry in (dup, shuffled):
        frame = lake.read_batches(home.lake, [entry["id"]])
        assert frame["timestamp"].is_monotonic_increasing
        assert not frame.drop(columns=lake.BATCH_COLUMN).duplicated().any()


def test_the_same_file_twice_is_kept_beside_its_twin_and_not_processed_again(corpus_run):
    home, first = corpus_run["home"], corpus_run["first"]
    good_id = corpus_run["good_id"]
    assert (home.archive / good_id / "zz-copy-of-good.csv").exists()
    bad_id = corpus_run["hashes"]["missing-column"][:16]
    assert (home.quarantine / bad_id / "zz-copy-of-missing-column.csv").exists()
    assert "zz-copy-of-good.csv: same bytes as" in first.stdout + first.stderr
    files = [b["file"] for b in manifest.load(home.manifest).values()]
    assert "zz-copy-of-good.csv" not in files and "zz-copy-of-missing-column.csv" not in files


def test_a_file_still_being_written_waits_for_the_next_cycle(corpus_run):
    home, first = corpus_run["home"], corpus_run["first"]
    assert corpus_run["slow_left"]
    assert "slow.csv" not in {b["file"] for b in corpus_run["known_after_first"].values()}
    assert "slow.csv: still being written" in first.stdout + first.stderr
    (batch,) = corpus_run["second"]["batches"]
    assert manifest.load(home.manifest)[batch]["file"] == "slow.csv"
    assert manifest.load(home.manifest)[batch]["status"] == "accepted"
    assert (home.archive / batch / "slow.csv").read_bytes() == corpus_run["slow_data"]
    assert versions.aliases(corpus_run["reg"])["champion"] == corpus_run["champion"]


def test_big_files_do_not_blow_memory(corpus_run):
    """The 2 GiB gzip bomb and the 48 MiB CSV are refused before they are read: the whole
    cycle's peak RSS stays that of an ordinary cycle."""
    line = next(ln for ln in corpus_run["first"].stderr.splitlines()
                if ln.startswith("peak_rss_kb"))
    peak_mib = int(line.split()[1]) / 1024
    print(f"peak RSS of `greenlight run` over the corpus: {peak_mib:.0f} MiB")
    assert peak_mib < 1536, peak_mib


def test_the_same_rows_under_other_bytes_are_quarantined_not_trained_twice(corpus_run):
    home, first = corpus_run["home"], corpus_run["first"]
    batches = {b["file"]: b for b in manifest.load(home.manifest).values()}
    good = batches[corpus_run["good"].name]
    for name in ("zz-shuffled-columns-of-good.csv", "zz-duplicated-rows-of-good.csv"):
        entry = batches[name]
        assert entry["status"] == "quarantined"
        line = f"{name}: the same 3,000 rows as batch {good['id']} ({good['file']})"
        assert entry["reason"].startswith(line) and line in first.stdout + first.stderr
        assert not (home.lake / f"batch_id={entry['id']}").exists()
        assert (home.quarantine / entry["id"] / name).exists()
