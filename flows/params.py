"""Typed flow parameters: the Prefect UI renders them as forms, the CLI fills them from flags."""

from __future__ import annotations

from typing import Literal

from prefect.input import RunInput
from pydantic import BaseModel, Field

Policy = Literal["monitor", "shadow", "manual", "partial", "auto"]


class Thresholds(BaseModel):
    """When a batch counts as drifted; crossing any one triggers retraining."""

    drift_share: float = Field(
        0.3, ge=0, le=1,
        description="Retrain when at least this share of features drifts (Evidently per-column "
                    "tests against the champion's reference).")
    label_drift: float | None = Field(
        None, gt=0,
        description="Label drift threshold (PSI, default 0.05, for classification; normed "
                    "Wasserstein, default 0.1, for regression); null uses those defaults.")
    max_decay: float = Field(
        0.05, ge=0,
        description="Retrain when the champion's primary metric on a batch is this much worse "
                    "(relative) than the metric it was registered with.")


class Training(BaseModel):
    """How a challenger is trained and gated; nulls fall back to the dataset spec's defaults."""

    auto_recipe: bool = Field(
        True, description="Choose the recency half-life or sliding window by rolling-origin "
                          "backtest on the batches before the gate window. Setting "
                          "half_life_days or window_days fixes the recipe instead.")
    half_life_days: float | None = Field(
        None, gt=0, description="Recency half-life: weight = 0.5 ** (age_days / half_life).")
    window_days: float | None = Field(
        None, gt=0, description="Train only on the last N days before the gate window.")
    gate_fraction: float = Field(
        0.3, gt=0, lt=1,
        description="Share of the newest batch held out as the gate window (newest rows).")
    min_delta: float = Field(
        0.005, description="The challenger must beat the champion by this relative margin.")
    reference_rows: int = Field(
        1000, gt=100, description="At least this many of the newest training rows (normally "
                                   "the newest training batch) are logged as drift reference.")


class Approval(RunInput):
    """The form a person fills in the Prefect UI to promote a challenger, or not.

    `approve` and `approver` have no default: an empty submit is refused and the run keeps
    waiting, rather than a default deciding for nobody."""

    approve: bool = Field(description="Promote this challenger to @champion?")
    reason: str = Field("", max_length=1000, description="Why; kept with the version and in "
                                                         "the promotion record.")
    approver: str = Field(min_length=1, max_length=200, description="Your name.")


def approval_needs_server(policy: str, api_url: str | None) -> str | None:
    """Why this policy cannot run here, or None: approval needs a Prefect UI to answer in."""
    if policy in ("manual", "partial") and not api_url:
        return (f"policy {policy} asks for approval in the Prefect UI, which needs a Prefect "
                "server: run `greenlight up` or set PREFECT_API_URL")
    return None
