"""The machine-readable output is strict JSON: an undefined metric is null, never `NaN`
(which jq, JavaScript and Go refuse)."""

from __future__ import annotations

import json
import math

import pytest

from tasks.data import manifest
from tests.test_idle import _cli


def _refuse(constant: str) -> None:
    raise ValueError(f"non-standard JSON constant {constant}")


def strict_loads(text: str):
    return json.loads(text, parse_constant=_refuse)


def test_status_json_turns_undefined_metrics_into_null(home):
    """The manifest may hold NaN (a metric undefined on a one-class batch); `status --json`
    still prints a document every strict parser reads."""
    manifest.append(home.manifest, "b-nan", file="w.csv", status="accepted", rows=3,
                    champion_metric=float("nan"), drift_share=float("inf"))
    done = _cli(["status", "--json"], home.root)
    assert done.returncode == 0, done.stderr
    out = done.stdout[:done.stdout.rindex("IMPORTED ")]  # the probe's own line follows
    state = strict_loads(out)
    (batch,) = state["batches"]
    assert (batch["champion_metric"], batch["drift_share"]) == (None, None)


def test_the_cycle_summary_is_made_strict_before_it_is_printed():
    from core.clean import json_safe

    summary = {"challenger_metric": float("nan"), "gate": {"ci": [float("-inf"), 0.5]},
               "batches": ["a"], "rows": 3}
    cleaned = json_safe(summary)
    assert strict_loads(json.dumps(cleaned, allow_nan=False)) == {
        "challenger_metric": None, "gate": {"ci": [None, 0.5]}, "batches": ["a"], "rows": 3}
    with pytest.raises(ValueError):
        strict_loads(json.dumps(summary))  # what `greenlight run` printed before
    assert math.isnan(summary["challenger_metric"])  # the caller's dict is left alone
