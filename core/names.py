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
