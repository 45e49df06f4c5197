"""The names every layer agrees on, once: registry aliases, MLflow experiments, tags.

An alias is how serving, the flows and `greenlight status` find a version; an experiment
is where a model's runs are grouped in the MLflow UI. Spelling one differently in two
places would split what a user sees, so they are defined here and only here.
"""

from __future__ import annotations

# Registry aliases (blue-green: `previous` is the champion before the last promotion).
CHAMPION = "champion"
PREVIOUS = "previous"
CHALLENGER = "challenger"


def monitoring_experiment(model_name: str) -> str:
    """The MLflow experiment that holds a model's monitoring runs (one per batch)."""
    return f"{model_name}-monitoring"


# Model-version tags a retrain writes (registry/tags.py builds them; the cycle, status and
# the re-run after a crash read them back by these names).
DATASET_TAG = "greenlight.dataset"
DECISION_TAG = "greenlight.decision"
REASONS_TAG = "greenlight.reasons"
GATE_TAG = "greenlight.gate"
GATE_REASON_TAG = "greenlight.gate_reason"
GATE_GAIN_TAG = "greenlight.gate_gain"
GATE_CI_TAG = "greenlight.gate_ci"
POLICY_TAG = "greenlight.policy"
RECIPE_TAG = "greenlight.recipe"
RECIPE_REASON_TAG = "greenlight.recipe_reason"
BATCH_IDS_TAG = "greenlight.batch_ids"
DATA_HASH_TAG = "greenlight.data_hash"
CHAMPION_SEEN_TAG = "greenlight.champion_version"  # the champion the batches were judged by
ACK_TAG = "greenlight.drift_acknowledged"  # drift kinds the champion has answered
BASELINE_TAG = "greenlight.baseline_metric"  # the champion's score decay is measured against
# An ensemble challenger's members and weights, and every version's backtest table (mean
# score per recipe), as JSON: what the weights came from, beside the version.
ENSEMBLE_TAG = "greenlight.ensemble"
BACKTEST_TAG = "greenlight.recipe_backtest"
