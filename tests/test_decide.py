"""The retraining decision and the promotion route: pure functions, tested without Prefect."""

import pytest

from flows.policies import route
from tasks.gate import decide as deciding
from tasks.gate.decide import champion_stale
from tasks.monitoring import alarms
from tasks.monitoring.monitor import MonitorResult


def _result(drift=0.0, label=False, decay=0.0):
    return MonitorResult("b1", 100, drift, ["x"] if drift else [], 0.2 if label else 0.0, label,
                         None, 0.8 * (1 - decay), 0.8, decay)


def decide(results, *, drift_share, max_decay, **kw):
    """The decision on the alarms the batches raise, as the cycle computes them once."""
    raised = [a for r in results
              for a in alarms.check(r, drift_share=drift_share, max_decay=max_decay)]
    return deciding.decide(results, raised, **kw)


def test_each_threshold_triggers_with_its_reason():
    kw = dict(has_champion=True, drift_share=0.3, max_decay=0.05)
    assert decide([_result()], **kw).action == "no action"
    assert "data drift" in decide([_result(drift=0.5)], **kw).reasons[0]
    assert "label drift" in decide([_result(label=True)], **kw).reasons[0]
    assert "decayed" in decide([_result(decay=0.1)], **kw).reasons[0]
    assert decide([_result()], force=True, **kw).action == "retrain"
    assert decide([], has_champion=False, drift_share=0.3, max_decay=0.05).action == "bootstrap"


@pytest.mark.parametrize("policy,verdict,expected", [
    ("auto", "clear", "promote"), ("auto", "marginal", "none"), ("auto", "fail", "none"),
    ("partial", "clear", "promote"), ("partial", "marginal", "ask"), ("partial", "fail", "none"),
    ("manual", "clear", "ask"), ("manual", "marginal", "ask"),
    ("shadow", "clear", "challenger"), ("monitor", "clear", "none"),
    ("manual", "bootstrap", "promote"), ("auto", "insufficient", "none"),
    ("auto", "refresh", "promote"), ("partial", "refresh", "ask"), ("manual", "refresh", "ask"),
    ("shadow", "refresh", "none"),
])
def test_route(policy, verdict, expected):
    assert route(policy, verdict) == expected


def test_acknowledged_drift_does_not_retrain_again_but_decay_does():
    kw = dict(has_champion=True, drift_share=0.3, max_decay=0.05)
    known = frozenset({"label"})
    again = decide([_result(label=True)], acknowledged=known, **kw)
    assert again.action == "no action" and "known" in again.reasons[0]
    assert decide([_result(label=True, drift=0.5)], acknowledged=known, **kw).kinds == {"data"}
    assert decide([_result(label=True, decay=0.1)], acknowledged=known, **kw).kinds == {"decay"}


def test_drift_or_decay_flips_the_burden_of_proof_but_a_forced_retrain_does_not():
    """By default any drift or decay behind the retrain flips the gate's burden of proof
    against a newer challenger; a forced retrain does not. "decay" needs decay, "never"
    never flips it."""
    kw = dict(has_champion=True, drift_share=0.3, max_decay=0.05)
    drifted, decayed = decide([_result(drift=0.5)], **kw), decide([_result(decay=0.1)], **kw)
    forced = decide([_result()], force=True, **kw)
    assert not champion_stale(drifted, refresh_on="decay", newer=True)
    assert champion_stale(decayed, refresh_on="decay", newer=True)
    assert not champion_stale(decayed, refresh_on="decay", newer=False)
    assert not champion_stale(decayed, refresh_on="never", newer=True)
    assert champion_stale(drifted, refresh_on="drift", newer=True)
    assert not champion_stale(forced, refresh_on="drift", newer=True)
    assert champion_stale(decayed, refresh_on="drift", newer=True)
    assert not champion_stale(drifted, refresh_on="drift", newer=False)
    with pytest.raises(ValueError, match="refresh_on"):
        champion_stale(decayed, refresh_on="always", newer=True)
