"""`greenlight init`: a spec and suite inferred from a sample hold the shipped datasets as
well as the hand-written ones, a re-run shows differences without overwriting, and bad
input is one line with exit 2 (tasks/data/infer.py, cli/main.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.data import ingest
from tasks.data import replay as sources
from tasks.data.infer import InitError, init_dataset
from tasks.data.spec import DatasetSpec, load_spec, suite_path
from tasks.data.validate import read_suite, split_label_checks, validate_frame
from tests import bad_inputs
from tests.test_idle import _cli

# What `init` must never import: the cycle's libraries (GX and pandas it needs).
NOT_FOR_INIT = ["evidently", "lightgbm", "mlflow", "prefect"]


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    """A sample as a user would have it: a CSV written the way `replay` writes batches."""
    frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S")
    return path


def _real(name: str) -> pd.DataFrame:
    from tests.conftest import shared_file

    return sources.load_dataset(name, shared_file(*sources.DATA_FILES[name]))


def _init(name: str, frame: pd.DataFrame, tmp_path: Path, **kwargs):
    spec = load_spec(name)
    return init_dataset(f"{name}_inferred", _csv(frame, tmp_path / f"{name}.csv"),
                        target=spec.target, time_column=spec.time_column,
                        root=tmp_path / "expectations", **kwargs)


def _suite(result) -> tuple[DatasetSpec, dict]:
    return (DatasetSpec.model_validate(json.loads(result.spec_path.read_text())),
            read_suite(result.suite_path))


@pytest.mark.parametrize("name", ["elec2", "bike_sharing"])
def test_inferred_suites_accept_the_real_data_month_by_month(name, tmp_path):
    """Inferred from the whole file, the spec names the shipped columns and task, and every
    monthly batch passes both the intake checks and the label checks, as with the shipped
    suite."""
    data = _real(name)
    result = _init(name, data, tmp_path)
    assert result.written and result.exit_code == 0, result.lines()
    shipped = load_spec(name)
    spec, suite = _suite(result)
    assert (spec.task, spec.target, spec.time_column) == (
        shipped.task, shipped.target, shipped.time_column)
    assert sorted(spec.features) == sorted(shipped.features)
    assert spec.categorical_features == shipped.categorical_features == []
    intake, labels = split_label_checks(suite, spec.target)
    assert labels["expectations"], "the inferred suite has no label check"
    for batch in sources.cut_batches(data, spec, "M"):
        for part in (intake, labels):
            checked = validate_frame(batch.frame, part, source=batch.label,
                                     time_column=spec.time_column)
            assert checked.success, checked.reason


def test_bike_sharing_inferred_from_2011_accepts_2012s_doubled_demand(tmp_path):
    """The target's bound has a span of headroom: demand that doubles (2012) is drift for
    the loop to learn, not a batch to quarantine."""
    data = _real("bike_sharing")
    first_year = data[data["timestamp"] < "2012-01-01"]
    spec, suite = _suite(_init("bike_sharing", first_year, tmp_path))
    later = sources.cut_batches(data[data["timestamp"] >= "2012-01-01"], spec, "M")
    rejected = [b.label for b in later
                if not validate_frame(b.frame, suite, source=b.label).success]
    assert rejected == []


def _synthetic_good() -> pd.DataFrame:
    stream = sources.synthetic_stream(seed=7)
    return pd.concat([b.frame for i, b in enumerate(stream) if i != sources.SYNTHETIC_MALFORMED],
                     ignore_index=True)


def _verdicts(spec: DatasetSpec, suite: dict, landing: Path) -> dict[str, bool]:
    """Case name -> quarantined?, as test_bad_input_files judges a file (read, then GX)."""
    out = {}
    for case in bad_inputs.CASES:
        path = bad_inputs.write_case(case, landing)
        frame, error = ingest.try_read(path, spec)
        out[case.name] = bool(error) or not validate_frame(
            frame, suite, source=path.name, time_column=spec.time_column).success
        path.unlink()
    return out


def test_the_inferred_synthetic_suite_catches_the_bad_input_corpus(tmp_path, monkeypatch):
    """Inferred from the 19 good weeks of the stream, the suite quarantines every case the
    hand-written one does, accepts the two tidy-able ones, and quarantines batch 8."""
    monkeypatch.setenv(ingest.MAX_BYTES_ENV, str(bad_inputs.MAX_BYTES))
    result = _init("synthetic", _synthetic_good(), tmp_path)
    spec, suite = _suite(result)
    assert spec.categorical_features == ["market", "channel"]
    assert (spec.positive_class, spec.slice_feature) == (1, "market")
    landing = tmp_path / "landing"
    inferred = _verdicts(spec, suite, landing)
    shipped = _verdicts(load_spec("synthetic"), read_suite(suite_path("synthetic")), landing)
    expected = {c.name: c.quarantined for c in bad_inputs.CASES}
    print(f"quarantined: shipped {sum(shipped.values())}, inferred {sum(inferred.values())} "
          f"of {len(expected)} cases ({sum(expected.values())} should be)")
    assert inferred == shipped == expected
    malformed = sources.synthetic_batch(sources.SYNTHETIC_MALFORMED).frame
    reason = validate_frame(malformed, suite, source="w10.csv").reason
    assert "not_be_null(converted)" in reason and "be_between(price)" in reason


def test_a_rerun_on_a_newer_sample_shows_the_difference_and_writes_only_with_update(
        tmp_path):
    data = sources.synthetic_stream(seed=7, n_batches=7)
    old = pd.concat([b.frame for b in data[:3]], ignore_index=True)  # no market west yet
    newer = pd.concat([b.frame for b in data[3:]], ignore_index=True).assign(
        coupon=lambda f: (f.index % 2).astype(int))
    first = _init("synthetic", old, tmp_path)
    assert first.written and first.exit_code == 0
    suite = json.loads(first.suite_path.read_text())
    suite["expectations"].append({  # a person's own check: a re-run keeps it
        "type": "expect_column_median_to_be_between",
        "kwargs": {"column": "age", "min_value": 18, "max_value": 90}})
    first.suite_path.write_text(json.dumps(suite))
    before = (first.spec_path.read_bytes(), first.suite_path.read_bytes())

    again = _init("synthetic", newer, tmp_path)
    assert again.existed and not again.written and again.exit_code == 1
    said = "\n".join(again.lines())
    assert "added column coupon" in said
    assert "market: new values 'west'" in said
    assert any("widens to" in c for c in again.changes), again.changes
    assert "the existing suite would quarantine this sample" in said
    assert "not written: rerun with --update" in said
    assert (first.spec_path.read_bytes(), first.suite_path.read_bytes()) == before

    updated = _init("synthetic", newer, tmp_path, update=True)
    assert updated.written and updated.exit_code == 0, updated.lines()
    spec, suite = _suite(updated)
    assert "coupon" in spec.features
    assert any(e["type"] == "expect_column_median_to_be_between" for e in suite["expectations"])
    assert validate_frame(old.assign(coupon=0), suite, source="old.csv").success
    assert validate_frame(newer, suite, source="new.csv").success
    assert _init("synthetic", newer, tmp_path).changes == []  # now up to date: exit 0
    assert _init("synthetic", newer, tmp_path).exit_code == 0


def _sample(tmp_path: Path) -> Path:
    return _csv(sources.synthetic_batch(0, rows=200).frame, tmp_path / "s.csv")


@pytest.mark.parametrize(("change", "args", "expected"), [
    (None, {"data": "missing.csv"}, "missing.csv: no such file"),
    (None, {"target": "convertd"}, "no target column 'convertd'"),
    (None, {"time_column": "when"}, "no time column 'when'"),
    (lambda f: f.assign(timestamp=f["timestamp"].astype(str).where(f.index != 3, "soon")), {},
     "1 of 200 values in column 'timestamp' are not timestamps, e.g. 'soon'"),
    (lambda f: f.assign(converted=1), {}, "target column 'converted' has one value only (1)"),
    (lambda f: f.assign(converted="c" + f.index.astype(str)), {}, "has 200 text values"),
    (None, {"exclude": ("nope",)}, "no --exclude column 'nope'"),
])
def test_bad_input_is_one_line_naming_the_file_or_column(tmp_path, change, args, expected):
    path = _sample(tmp_path)
    if change is not None:
        _csv(change(pd.read_csv(path)), path)
    call = {"target": "converted", "time_column": "timestamp", "root": tmp_path / "x", **args}
    data = tmp_path / call.pop("data") if "data" in call else path
    with pytest.raises(InitError) as caught:
        init_dataset("mine", data, **call)
    message = str(caught.value)
    assert expected in message and "\n" not in message, message
    assert not (tmp_path / "x").exists()


def test_the_cli_writes_a_new_dataset_without_the_cycles_libraries(tmp_path):
    out = tmp_path / "expectations"
    done = _cli(["init", "mine", "--data", str(_sample(tmp_path)), "--target", "converted",
                 "--time", "timestamp", "--out", str(out)], tmp_path / "gl")
    assert done.returncode == 0, done.stderr
    assert "task         classification: converted has exactly two values" in done.stdout
    assert "passes all" in done.stdout and done.stderr == ""
    assert (out / "mine" / "spec.json").is_file() and (out / "mine" / "suite.json").is_file()
    imported = next(x for x in done.stdout.splitlines() if x.startswith("IMPORTED "))
    assert not set(eval(imported.removeprefix("IMPORTED "))) & set(NOT_FOR_INIT), imported


def test_the_cli_says_bad_input_in_one_line_with_exit_2(tmp_path):
    sample = _sample(tmp_path)
    done = _cli(["init", "mine", "--data", str(sample), "--target", "nope[1]", "--time",
                 "timestamp", "--out", str(tmp_path / "x")], tmp_path / "gl")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    # shown as written: brackets are text, not console markup (and not escaped twice)
    assert len(lines) == 1 and lines[0].startswith(
        f"error: {sample}: no target column 'nope[1]'"), lines
    assert "Traceback" not in done.stdout + done.stderr
