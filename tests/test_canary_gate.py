"""A challenger set by hand is gated before any canary ramp (issue 36): the MLflow client
(as the MLflow UI would) makes the bootstrap v1 @challenger against v2, the champion after
the concept change; `greenlight canary` gates it on the newest labelled rows and refuses it,
and `--force` ramps it with the override recorded. Real MLflow store, real models."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient
from typer.testing import CliRunner

from cli.main import app as cli
from registry import canary_gate, versions
from registry.store import fluent
from serving import canary
from tests.approval_helpers import registry


def _hand_set_challenger(home: Path, version: int) -> None:
    reg = registry(home)
    with fluent(reg.tracking_uri):
        MlflowClient(reg.tracking_uri).set_registered_model_alias(
            reg.model_name, "challenger", str(version))


def _canary(home: Path, *extra: str):
    return CliRunner().invoke(cli, ["canary", "--ramp", "5", "--every", "0s",
                                    "--min-predictions", "1", "--by", "tester",
                                    "--home", str(home), *extra])


def test_a_worse_challenger_set_by_hand_is_refused_before_the_ramp(two_versions_home,
                                                                    monkeypatch):
    monkeypatch.setenv("GREENLIGHT_HOME", str(two_versions_home))
    _hand_set_challenger(two_versions_home, 1)
    result = _canary(two_versions_home)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "refused: @challenger v1 never passed the gate against @champion v2" in text
    assert "proven worse" in text and "--force" in text
    reg = registry(two_versions_home)
    assert versions.aliases(reg) == {"champion": 2, "previous": 1, "challenger": 1}
    assert canary.history(two_versions_home) == []  # no ramp step was taken
    tags = versions.by_version(reg, 1).tags
    assert tags[canary_gate.VERDICT_TAG] == "fail"
    assert tags[canary_gate.AGAINST_TAG] == "2"
    assert canary_gate.FORCED_TAG not in tags

    forced = _canary(two_versions_home, "--force")
    assert "forced by tester" in " ".join(forced.output.split()), forced.output
    steps = canary.history(two_versions_home)
    assert steps[0]["reason"].startswith("forced past the gate: v1 by tester")
    assert steps[0]["forced"] == 1 and steps[0]["verdict"] == "fail"
    assert steps[1]["reason"] == "ramp step 5%"  # it ramped (and, with no traffic, stopped)
    assert "by tester" in versions.by_version(reg, 1).tags[canary_gate.FORCED_TAG]
    assert versions.aliases(reg)["champion"] == 2


def test_a_challenger_gated_against_this_champion_is_not_gated_again(two_versions_home,
                                                                      monkeypatch):
    monkeypatch.setenv("GREENLIGHT_HOME", str(two_versions_home))
    _hand_set_challenger(two_versions_home, 1)
    reg = registry(two_versions_home)
    canary_gate.record_gate(reg, 1, 2, "clear", "clear: as if it had passed")
    result = _canary(two_versions_home)
    assert "passed the canary's gate (clear) against v2" in " ".join(result.output.split())
    assert canary.history(two_versions_home)[0]["reason"] == "ramp step 5%"


def test_a_challenger_without_unseen_labelled_rows_is_refused_for_want_of_evidence(
        two_versions_home, monkeypatch):
    """v2 learned from every labelled row the lake holds; made @challenger by hand against
    v1 (its cycle's verdict no longer a pass), there is nothing to judge it on."""
    monkeypatch.setenv("GREENLIGHT_HOME", str(two_versions_home))
    reg = registry(two_versions_home)
    reg.client.set_model_version_tag(reg.model_name, "2", "greenlight.gate", "marginal")
    with fluent(reg.tracking_uri):
        client = MlflowClient(reg.tracking_uri)
        client.set_registered_model_alias(reg.model_name, "champion", "1")
        client.set_registered_model_alias(reg.model_name, "challenger", "2")
    result = _canary(two_versions_home)
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "v2 never passed the gate against @champion v1" in text
    assert "has no evidence for it" in text and "no labelled rows" in text
    assert versions.by_version(reg, 2).tags[canary_gate.VERDICT_TAG] == "insufficient"
    assert canary.history(two_versions_home) == []
