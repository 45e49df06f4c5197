"""core: JSON lines that survive a torn line and two writers, whole-or-nothing files, and
strict-JSON cleaning. Real files and real processes; nothing is mocked."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from core import jsonl
from core.clean import finite_floats, finite_or_none, json_safe, non_finite
from core.files import replacing


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_new_line(tmp_path):
    path = tmp_path / "log.jsonl"
    jsonl.append(path, {"n": 1})
    with path.open("ab") as fh:  # a crash mid-write: half a record, no newline
        fh.write(b'{"n": 2, "tor')
    assert list(jsonl.read(path)) == [{"n": 1}]
    jsonl.append(path, {"n": 3})
    assert list(jsonl.read(path)) == [{"n": 1}, {"n": 3}]
    assert path.read_bytes().endswith(b'"tor\n{"n": 3}\n')


def test_a_missing_file_has_no_records_and_append_creates_its_folder(tmp_path):
    path = tmp_path / "a" / "b" / "log.jsonl"
    assert list(jsonl.read(path)) == []
    jsonl.append_lines(path, [b'{"x": 1}', b'{"x": 2}'], durable=False)
    assert list(jsonl.read(path)) == [{"x": 1}, {"x": 2}]


def _appender(path: str, who: int, count: int) -> None:
    for i in range(count):  # long lines, so an interleaved write would tear them
        jsonl.append(Path(path), {"who": who, "i": i, "pad": "x" * 5000}, durable=False)


def test_two_processes_appending_at_once_lose_and_tear_nothing(tmp_path):
    path = tmp_path / "log.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_appender, args=(str(path), who, 200)) for who in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    records = list(jsonl.read(path))
    assert len(path.read_text().splitlines()) == len(records) == 400
    for who in (1, 2):
        assert [r["i"] for r in records if r["who"] == who] == list(range(200))


def test_replacing_leaves_the_old_file_and_no_temp_file_when_the_write_fails(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("died mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    with replacing(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_json_safe_makes_strict_json_of_nested_non_finite_and_numpy_values():
    value = {"a": float("nan"), "b": [1.0, float("inf"), (np.float64("-inf"), 2)],
             "c": {"d": np.bool_(True), "e": np.int64(3), "f": np.float32("nan")}, "g": None}
    cleaned = json_safe(value)
    assert cleaned == {"a": None, "b": [1.0, None, [None, 2]],
                       "c": {"d": True, "e": 3, "f": None}, "g": None}
    json.dumps(cleaned, allow_nan=False)  # strict: raises on any NaN left


def test_finite_helpers():
    assert finite_or_none(float("nan")) is None and finite_or_none(1.5) == 1.5
    assert finite_or_none(None) is None and finite_or_none("x") == "x"
    assert non_finite(float("inf")) and not non_finite(1) and not non_finite(None)
    assert finite_floats({"a": 1, "b": None, "c": float("nan"), "d": np.float64(2.5)}) == \
        {"a": 1.0, "d": 2.5}


def test_json_safe_leaves_numpy_times_to_the_caller():
    when = np.datetime64("2026-01-01T00:00:00.000000000")
    assert json_safe({"t": when})["t"] is when  # .item() would make it an int of ns
