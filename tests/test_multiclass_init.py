"""`greenlight init --update` on a multiclass dataset (issue 34): a class the newer sample
brings is added to the spec's classes, the class value set and the class-mix bound; a class
it lacks is kept, and no longer required in every batch. Through the real command in a
fresh process (tests/test_idle.py `_cli`), on Bike Sharing's `weathersit` from
../shared/data and on the seeded ticket stream."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tasks.data import replay as sources
from tasks.data.replay_multiclass import multiclass_batch
from tasks.data.validate import read_suite, split_label_checks, validate_frame
from tests.test_idle import _cli


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S")
    return path


def _init(name: str, sample: Path, target: str, out: Path, home: Path, *extra: str):
    return _cli(["init", name, "--data", str(sample), "--target", target, "--time",
                 "timestamp", "--out", str(out), *extra], home)


def _files(out: Path, name: str, target: str) -> tuple[dict, dict]:
    """The written spec, and the suite's label checks (what holds a batch for a person)."""
    spec = json.loads((out / name / "spec.json").read_text())
    return spec, split_label_checks(read_suite(out / name / "suite.json"), target)[1]


def _held(labels: dict, batch: pd.DataFrame, target: str) -> bool:
    return not validate_frame(batch[[target]], labels, source="batch.csv").success


def _months(frame: pd.DataFrame, first: str, last: str) -> pd.DataFrame:
    month = frame["timestamp"].dt.strftime("%Y-%m")
    return frame[(month >= first) & (month <= last)]


def test_a_new_weather_class_is_added_by_init_update_on_bike_sharing(tmp_path):
    """Feb-Dec 2011 holds weathersit 1-3; Dec 2011-Feb 2012 brings two hours of heavy rain
    (4). Without --update the change is listed and nothing written; with it, 4 joins the
    classes (after 1-3), the value set and the class mix, so January 2012 is no longer
    held for its two rows of 4, and a 2011 month is still accepted. A second run changes
    nothing."""
    from tests.conftest import shared_file

    bike = sources.load_dataset("bike_weathersit", shared_file("bike_sharing", "hour.csv"))
    out, home = tmp_path / "expectations", tmp_path / "gl"
    first = _init("weather", _csv(_months(bike, "2011-02", "2011-12"), tmp_path / "a.csv"),
                  "weathersit", out, home)
    assert first.returncode == 0, first.stdout + first.stderr
    spec, before = _files(out, "weather", "weathersit")
    assert spec["task"] == "multiclass" and spec["classes"] == [1, 2, 3]
    january = _months(bike, "2012-01", "2012-01")
    assert (january["weathersit"] == 4).sum() == 2 and _held(before, january, "weathersit")

    newer = _csv(_months(bike, "2011-12", "2012-02"), tmp_path / "b.csv")
    asked = _init("weather", newer, "weathersit", out, home)
    line = ("weathersit: new class 4: added to the spec's classes after the existing ones "
            "(a registered model's probability columns keep their places), to the class "
            "value set and to the class-mix bound")
    assert asked.returncode == 1 and f"  - {line}" in asked.stdout.splitlines(), asked.stdout
    assert "not written: rerun with --update" in asked.stdout
    assert _files(out, "weather", "weathersit")[0]["classes"] == [1, 2, 3]

    done = _init("weather", newer, "weathersit", out, home, "--update")
    assert done.returncode == 0 and "passes all" in done.stdout, done.stdout + done.stderr
    assert "weathersit: class-mix bound KL" in done.stdout and done.stderr == ""
    spec, after = _files(out, "weather", "weathersit")
    assert spec["classes"] == [1, 2, 3, 4]
    suite = read_suite(out / "weather" / "suite.json")["expectations"]
    value_set = next(e for e in suite if e["type"] == "expect_column_values_to_be_in_set"
                     and e["kwargs"]["column"] == "weathersit")["kwargs"]["value_set"]
    mix = next(e for e in suite if e["type"] == "expect_column_kl_divergence_to_be_less_than")
    assert value_set == [1, 2, 3, 4] and mix["kwargs"]["partition_object"]["values"] == [
        1, 2, 3, 4]
    assert not _held(after, january, "weathersit")
    assert not _held(after, _months(bike, "2011-05", "2011-05"), "weathersit")
    again = _init("weather", newer, "weathersit", out, home, "--update")
    assert again.returncode == 0 and "no change" in again.stdout, again.stdout


def test_a_class_gone_from_the_newer_sample_is_kept_and_no_longer_required(tmp_path):
    """From week 4, account questions go to the technical team. The update keeps 'account'
    in the classes (in its place: registered models score it) and the value set, says so in
    one line, and stops requiring it in every batch, so a week without it is not held;
    a week of one team only is still held."""
    out, home = tmp_path / "expectations", tmp_path / "gl"
    old = pd.concat([multiclass_batch(i, rows=300).frame for i in range(4)])
    assert _init("tickets", _csv(old, tmp_path / "a.csv"), "team", out, home).returncode == 0
    spec, before = _files(out, "tickets", "team")
    merged = [multiclass_batch(i, rows=300).frame.replace({"team": {"account": "technical"}})
              for i in range(4, 8)]
    assert _held(before, merged[0], "team")  # no account: held until the update

    done = _init("tickets", _csv(pd.concat(merged), tmp_path / "b.csv"), "team", out, home,
                 "--update")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("  - team: class 'account' not in this sample: kept in the spec's classes and "
            "the value set; no longer required in every batch") in done.stdout.splitlines()
    assert "new class" not in done.stdout
    spec, after = _files(out, "tickets", "team")
    assert spec["classes"] == ["account", "billing", "shipping", "technical"]
    assert not _held(after, multiclass_batch(9, rows=300).frame.replace(
        {"team": {"account": "technical"}}), "team")
    assert not _held(after, multiclass_batch(2, rows=300).frame, "team")  # account back
    assert _held(after, merged[0].assign(team="billing"), "team")
