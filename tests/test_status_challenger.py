"""`greenlight status` names @challenger and what it is doing (issue 36): shadow, canary at
N%, tripped and why. The real command on the run's two versions (v2 @champion)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli.main import app as cli
from registry.promote import set_alias
from serving import canary
from tests.approval_helpers import registry


def _status(home, *extra: str):
    result = CliRunner().invoke(cli, ["status", "--home", str(home), *extra],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_status_names_the_challenger_and_its_state(two_versions_home, monkeypatch):
    monkeypatch.setenv("GREENLIGHT_HOME", str(two_versions_home))
    assert "challenger" not in _status(two_versions_home).split("\n")[0]
    set_alias(registry(two_versions_home), "challenger", 1)
    assert "challenger v1: shadow (canary 0%); gate bootstrap" in _status(two_versions_home)

    canary.set_fraction(two_versions_home, 0.25, "ramp step 25%")
    assert "challenger v1: canary at 25% (ramp step 25%)" in _status(two_versions_home)

    canary.set_fraction(two_versions_home, 0.0, "rolled back at 25%: canary error rate "
                                                "4.0% > 1.0%")
    shown = " ".join(_status(two_versions_home).split())
    assert "challenger v1: tripped at" in shown
    assert "rolled back at 25%: canary error rate 4.0% > 1.0%" in shown
    state = json.loads(_status(two_versions_home, "--json"))
    assert state["challenger"]["version"] == 1
    assert state["challenger"]["state"].startswith("tripped at")
