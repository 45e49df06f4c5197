"""The tags a retrain writes (registry/tags.py): their names and spelling are what users
filter on in the MLflow UI and what the re-run after a crash reads back, so they are
pinned here. Plain values, no store needed."""

from flows.params import Thresholds
from registry.tags import ChallengerTags, acknowledged, baseline_metric, held_tags
from registry.versions import VersionInfo
from tasks.monitoring.drift import StatTests
from tasks.monitoring.monitor import Limits, MonitorResult
from tasks.monitoring.watch import limits_for, raised_alarms

TAGS = ChallengerTags(dataset="synthetic", decision="retrain", reasons=["b1: drift", "b2: x"],
                      verdict="clear", gate_reason="gain 2%", gain=0.02, ci_low=0.01,
                      ci_high=0.03, policy="auto", recipe="half-life 60d",
                      recipe_reason="best of 3", batch_ids=["b1", "b2"], data_hash="abc",
                      champion_seen=None)


def test_a_challenger_s_tags_are_spelled_as_before():
    assert TAGS.to_tags() == {
        "greenlight.dataset": "synthetic", "greenlight.decision": "retrain",
        "greenlight.reasons": "b1: drift | b2: x", "greenlight.gate": "clear",
        "greenlight.gate_reason": "gain 2%", "greenlight.gate_gain": "0.02",
        "greenlight.gate_ci": "0.01..0.03", "greenlight.policy": "auto",
        "greenlight.recipe": "half-life 60d", "greenlight.recipe_reason": "best of 3",
        "greenlight.batch_ids": "b1,b2", "greenlight.data_hash": "abc",
        "greenlight.champion_version": "none"}


def test_a_registered_challenger_adds_what_it_learned_until_and_long_text_is_cut():
    from dataclasses import replace

    tags = replace(TAGS, champion_seen=3, trained_until="2026-01-01 00:00:00",
                   reasons=["x" * 5000], gain=None).to_tags()
    assert tags["greenlight.champion_version"] == "3"
    assert tags["greenlight.trained_until"] == "2026-01-01 00:00:00"
    assert len(tags["greenlight.reasons"]) == 4000 and tags["greenlight.gate_gain"] == "None"


def test_the_champion_s_baseline_and_acknowledged_drift():
    fresh = VersionInfo(1, "r", {}, {"gate_challenger_accuracy": 0.8})
    assert baseline_metric(fresh, "accuracy") == 0.8 and acknowledged(fresh) == frozenset()
    assert acknowledged(None) == frozenset()
    held = held_tags(fresh, {"data", "decay", "forced"}, 0.75)
    assert held == {"greenlight.drift_acknowledged": "data",
                    "greenlight.baseline_metric": "0.75"}
    again = VersionInfo(1, "r", held, fresh.metrics)
    assert baseline_metric(again, "accuracy") == 0.75 and acknowledged(again) == {"data"}
    assert held_tags(again, {"label"}, 0.7)["greenlight.drift_acknowledged"] == "data,label"


def test_the_thresholds_map_to_the_monitoring_limits():
    t = Thresholds(label_drift=0.2, num_method="psi", per_column_method={"x": "ks"},
                   column_threshold=0.1, min_rows=40)
    assert limits_for(t) == Limits(label_drift=0.2, prediction_drift=None,
                                   adversarial_auc=0.65,
                                   tests=StatTests("psi", None, {"x": "ks"}, 0.1),
                                   drift_share=0.3, min_rows=40)


def test_the_alarms_are_computed_once_with_every_threshold():
    drifted = MonitorResult("b1", 100, 0.5, ["x"], 0.0, False, None, 0.7, 0.8, 0.125,
                            missing_share={"x": 0.2})
    kinds = [a.kind for a in raised_alarms([drifted], [], Thresholds())]
    assert kinds == ["data", "decay", "missing"]
