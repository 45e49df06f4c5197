"""The drift report's files are what Evidently itself writes: the HTML page of
`get_html_str`, the `save_json` of `drift.json` and the `dumps` of `snapshot.json`, though
`save_report` turns the widgets into dicts once for both (random ids aside)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.monitoring.drift import _titled, measure_drift, save_report

SPEC = DatasetSpec(name="html", time_column="t", target="y", task="classification",
                   features=["a", "b", "c"], categorical_features=["c"],
                   primary_metric="accuracy")
DATA = re.compile(r"var (metric_[0-9a-f]{32}) = (.*);\n")


def _frame(seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 1500
    return pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.lognormal(0, 0.5, n),
                         "c": rng.choice(list("xyz"), n), "y": rng.integers(0, 2, n),
                         "prediction": rng.random(n)})


def _page(text: str) -> tuple[str, dict]:
    """The page with its random dashboard id named `ID`, and its data with the group
    widget's random id blanked."""
    found = DATA.search(text)
    assert found, "no dashboard data in the page"
    data = json.loads(found.group(2))
    data["widgets"][0]["id"] = "group"
    return text.replace(found.group(2), "DATA").replace(found.group(1), "ID"), data


def test_the_files_are_what_evidently_writes(tmp_path):
    result = measure_drift(_frame(0, 0.0), _frame(1, 0.4), SPEC, prediction_column="prediction",
                           title="greenlight drift: batch b1 (b1.csv)")
    paths = save_report(result, tmp_path)
    ours = _page(paths["html"].read_text(encoding="utf-8"))
    theirs = _page(_titled(result.snapshot.get_html_str(as_iframe=False), result.title))
    assert ours[0] == theirs[0]
    assert ours[1] == theirs[1]
    assert "<title>greenlight drift: batch b1 (b1.csv)</title>" in ours[0]
    result.snapshot.save_json(str(tmp_path / "evidently.json"))
    assert paths["json"].read_text() == (tmp_path / "evidently.json").read_text()
    assert paths["snapshot"].read_text() == result.snapshot.dumps()
