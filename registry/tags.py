"""The tags a retrain writes on a model version, typed and built here, and the few the
cycle reads back from the champion (its acknowledged drift, its baseline metric).

Tag names live in core/names.py (an ensemble's two below, here); a tag is always a string,
so the formatting of each value is fixed here once: a user filtering versions in the MLflow
UI sees the same spelling whichever path wrote it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from core import names
from registry.versions import TRAINED_UNTIL_TAG, VersionInfo

MAX_TEXT = 4000  # MLflow's limit on a tag value is 5000 characters: free text is cut before


@dataclass(frozen=True)
class ChallengerTags:
    """Why a challenger exists and what became of it: the decision, the gate's verdict, the
    recipe, and the data it learned from (the re-run after a crash finds it by batch ids)."""

    dataset: str
    decision: str
    reasons: list[str]
    verdict: str
    gate_reason: str
    gain: float | None
    ci_low: float | None
    ci_high: float | None
    policy: str
    recipe: str
    recipe_reason: str
    batch_ids: list[str]
    data_hash: str
    champion_seen: int | None
    trained_until: str | None = None  # set once the registered model is known (after refit)
    members: dict[str, float] = field(default_factory=dict)  # an ensemble's recipe: weight
    backtest: dict[str, float | None] = field(default_factory=dict)  # recipe: mean score

    def to_tags(self) -> dict[str, str]:
        """The MLflow tags, every value a string as MLflow stores it."""
        tags = {names.DATASET_TAG: self.dataset, names.DECISION_TAG: self.decision,
                names.REASONS_TAG: " | ".join(self.reasons)[:MAX_TEXT],
                names.GATE_TAG: self.verdict, names.GATE_REASON_TAG: self.gate_reason,
                names.GATE_GAIN_TAG: f"{self.gain}",
                names.GATE_CI_TAG: f"{self.ci_low}..{self.ci_high}",
                names.POLICY_TAG: self.policy, names.RECIPE_TAG: self.recipe,
                names.RECIPE_REASON_TAG: self.recipe_reason[:MAX_TEXT],
                names.BATCH_IDS_TAG: ",".join(self.batch_ids),
                names.DATA_HASH_TAG: self.data_hash,
                names.CHAMPION_SEEN_TAG: str(self.champion_seen)
                if self.champion_seen is not None else "none"}
        if self.trained_until is not None:
            tags[TRAINED_UNTIL_TAG] = self.trained_until
        if self.members:
            tags[names.ENSEMBLE_TAG] = json.dumps(self.members)[:MAX_TEXT]
        if self.backtest:
            tags[names.BACKTEST_TAG] = json.dumps(self.backtest)[:MAX_TEXT]
        return tags


def acknowledged(champion: VersionInfo | None) -> frozenset[str]:
    """Drift kinds the champion has answered: a retrain on them found nothing better, so the
    same drift does not retrain again against the same champion (tasks/gate/decide.py)."""
    raw = champion.tags.get(names.ACK_TAG, "") if champion else ""
    return frozenset(filter(None, raw.split(",")))


def baseline_metric(champion: VersionInfo, primary_metric: str) -> float:
    """The score decay is measured against: the champion's score on the newest data when it
    last held against a challenger, else the gate metric it was registered with."""
    return float(champion.tags.get(names.BASELINE_TAG)
                 or champion.metrics[f"gate_challenger_{primary_metric}"])


def held_tags(champion: VersionInfo, kinds: Iterable[str], score: float) -> dict[str, str]:
    """Tags for a champion that held on the newest data: the drift it answered (added to what
    it answered before) and its score there, the new baseline for decay."""
    answered = (set(kinds) - {"decay", "forced"}) | acknowledged(champion)
    return {names.ACK_TAG: ",".join(sorted(answered)), names.BASELINE_TAG: f"{score}"}
