"""Typed flow parameters: the Prefect UI renders them as forms, the CLI fills them from flags."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from flows.policies import Policy  # noqa: F401 (the flow's names)

ENV_PREFIX = "GREENLIGHT_"


def env_name(section: str, key: str) -> str:
    """The environment variable that sets a setting's default: GREENLIGHT_TRAINING__LEAF_REFIT."""
    return f"{ENV_PREFIX}{section.upper()}__{key.upper()}"


class Section(BaseModel):
    """A section of settings whose defaults the environment may replace.

    `GREENLIGHT_<SECTION>__<KEY>` (e.g. GREENLIGHT_TRAINING__RECIPE_MODE=best) sets a key
    that is not given, wherever the model is built: the CLI (below greenlight.toml and
    `--set`, which give their keys), a Prefect worker's flow runs, and Python callers. A
    container or a CI job sets it once for every process it starts. The value is read as
    JSON where it parses (3, 0.5, true, null), else as the text it is."""

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        section = cls.__name__.lower()
        found = {key: os.environ[env_name(section, key)] for key in cls.model_fields
                 if key not in data and env_name(section, key) in os.environ}
        return {**{key: _env_value(cls, section, key, raw) for key, raw in found.items()},
                **data} if found else data


def _env_value(model: type[BaseModel], section: str, key: str, raw: str) -> Any:
    """The variable's value as the field holds it (JSON first, then the text), or a
    ValueError naming the variable: a bad value is found before anything runs."""
    field = model.model_fields[key]
    adapter = TypeAdapter(Annotated[field.annotation, field])
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw
    problem = ""
    for candidate in (parsed, raw):
        try:
            return adapter.validate_python(candidate)
        except ValidationError as exc:
            problem = problem or exc.errors()[0]["msg"]
    raise ValueError(f"{env_name(section, key)}={raw!r}: {problem}")


class Thresholds(Section):
    """Every monitoring threshold, in one place. Crossing one emits a Prefect event
    (greenlight.drift.detected, .model.decayed, .data.quality, .predictions.failed); drift
    and decay also retrain. Null means "use the documented default" or "off"."""

    drift_share: float = Field(
        0.3, ge=0, le=1,
        description="Retrain when at least this share of features drifts (Evidently per-column "
                    "tests against the champion's reference).")
    label_drift: float | None = Field(
        None, gt=0,
        description="Label drift threshold (PSI, default 0.05, for classification; normed "
                    "Wasserstein, default 0.1, for regression); null uses those defaults.")
    min_rows: int = Field(
        30, ge=1,
        description="A batch with fewer rows is not judged: its drift and decay are \"not "
                    "enough rows\" (no retrain, no alarm), and its label share is not held "
                    "against the suite. On a handful of rows every share is 0 or 1.")
    max_decay: float = Field(
        0.05, ge=0,
        description="Retrain when the champion's primary metric on a batch is this much worse "
                    "(relative) than the metric it was registered with.")
    max_estimated_decay: float | None = Field(
        None, ge=0,
        description="Retrain when the champion's primary metric, estimated without labels "
                    "(CBPE for classification, DLE for regression), is this much worse "
                    "(relative) than on its gate window, on a batch whose labels have not "
                    "landed. Off (null) by default: benchmarks/estimation.py shows the "
                    "estimate's error on your data first.")
    prediction_drift: float | None = Field(
        None, gt=0,
        description="Drift threshold of the champion's scores on the batch vs on its reference "
                    "(same test as label drift); null uses PSI 0.1 for classification (its "
                    "reference scores are in-sample) and the label threshold for regression.")
    adversarial_auc: float = Field(
        0.65, ge=0.5, le=1,
        description="Drift when a LightGBM domain classifier tells the batch from the reference "
                    "with at least this cross-validated AUC (0.5 = indistinguishable).")
    max_missing_share: float | None = Field(
        0.05, ge=0, le=1,
        description="Data-quality alarm when any feature has at least this share missing.")
    max_out_of_range: float | None = Field(
        0.01, ge=0, le=1,
        description="Data-quality alarm when at least this share of a feature lies outside the "
                    "ranges or value sets of the dataset's GX suite.")
    max_failed_predictions: float | None = Field(
        0.0, ge=0, le=1,
        description="Alarm when more than this share of the champion's predictions on a "
                    "batch, or of a served version's predictions in any variant (the "
                    "prediction log since the last cycle), failed: an error, null or not "
                    "finite (0: any failure).")
    num_method: str | None = Field(
        None, description="Evidently stat test for numerical features (ks, wasserstein, psi, "
                          "anderson, ...); null lets Evidently choose by size.")
    cat_method: str | None = Field(
        None, description="Evidently stat test for categorical features (chisquare, "
                          "jensenshannon, psi, z, ...); null lets Evidently choose.")
    per_column_method: dict[str, str] = Field(
        default_factory=dict, description="Stat test per column, overriding the type's method, "
                                          "e.g. {\"price\": \"psi\"}.")
    column_threshold: float | None = Field(
        None, gt=0, description="Cut of the per-column stat tests (p-value or distance, by "
                                "method); null uses Evidently's (0.05 p, 0.1 distance).")
    max_attribution_shift: float | None = Field(
        None, gt=0,
        description="Alarm (greenlight.drift.detected, no retrain) when the champion's mean "
                    "absolute contribution of a feature on a batch moves by at least this "
                    "share of its total on the reference (its training sample): a change in "
                    "what the model relies on, a concept-drift hint. Off (null) by default "
                    "until measured on your data (docs/monitoring.md).")


class Training(Section):
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
    gate_window_min_rows: int = Field(
        100, ge=1,
        description="Where gate_fraction of the batch is fewer rows, the gate window grows "
                    "toward this many, up to gate_max_fraction of the batch: enough rows to "
                    "judge a stale champion on (docs/approval.md, small windows).")
    gate_max_fraction: float = Field(
        0.5, gt=0, lt=1,
        description="The largest share of the newest batch the gate window grows to "
                    "(gate_window_min_rows); the rest still trains the challenger.")
    gate_min_rows: int = Field(
        200, ge=10, description="Fewest labelled rows in the gate window to prove a "
                                "challenger's gain. A smaller window still decides: a "
                                "challenger retrained on drift or decay is promoted as a "
                                "refresh unless the champion is proven better there; without "
                                "drift or decay the champion stays (docs/approval.md).")
    gate_min_class_rows: int = Field(
        30, ge=1, description="Fewest rows of each class (classification) in the gate window "
                              "to prove a gain, as gate_min_rows. Any verdict needs at least "
                              "10% of the window (5 rows at least) of each class: a window of "
                              "one class is never judged.")
    min_delta: float = Field(
        0.005, description="The challenger must beat the champion by this relative margin "
                           "(lower bound of the gate's 95% interval); negative: a tolerance.")
    refresh_on: Literal["drift", "decay", "never"] = Field(
        "drift", description="When a challenger that learned from newer rows is promoted "
                             "unless the champion is proven better by the same margin (gate "
                             "verdict refresh): on any drift or decay that retrained (not a "
                             "forced retrain), only once monitoring saw the champion decay "
                             "(max_decay), or never (every challenger must prove its gain).")
    refit: bool = Field(
        True, description="After the gate, refit the chosen recipe on every labelled row, "
                          "gate window included, and register that model (same sanity checks).")
    recipe_mode: Literal["best", "ensemble"] = Field(
        "ensemble", description="What the backtest gives the challenger: an ensemble of the "
                                "complete grid in batches (expanding, windows of 1-12 batches, "
                                "half-lives of 1/2-8 batches) weighted by softmax of their "
                                "backtest loss, or the best recipe alone (about a quarter of "
                                "a retrain's time). Either way one "
                                "model version, gated and served like any other. The "
                                "ensemble, with leaf_refit and six backtest_folds, beat the "
                                "best fixed strategy on Elec2 (docs/benchmarks.md).")
    ensemble_tau: float = Field(
        0.1, gt=0, description="Temperature of the ensemble's softmax, relative to the best "
                                "backtest loss: a recipe this much worse (relative) than the "
                                "best gets 1/e of its weight.")
    backtest_folds: int = Field(
        6, ge=1, le=24,
        description="Gate-sized windows the recipe backtest scores each candidate on, "
                    "newest first: more is a longer memory of which recipe does well, "
                    "at one fit per candidate and window.")
    leaf_refit: bool = Field(
        True, description="The backtest also tries every recipe with its leaves refitted on "
                          "the newest batch (LightGBM's Booster.refit, keeping 0.6 of each "
                          "old leaf value): a long memory's trees with the newest batch's "
                          "levels. Still one booster (docs/benchmarks.md).")
    member_trees: Literal["full", "light", "light_refit"] = Field(
        "light_refit", description="An ensemble's members (recipe_mode ensemble): "
                                   "light_refit judges members with the model's own settings "
                                   "at the gate and the history guard, then refits each on "
                                   "every row with a quarter of the trees at four times the "
                                   "learning rate (the backtest's shrinkage): the version "
                                   "served is light, at the gate's decisions. full fits both "
                                   "with the model's settings; light fits both light (it "
                                   "missed a challenger that learned flipped labels). On the "
                                   "adaptation matrix light_refit scored as full within noise "
                                   "on every cell, at about 0.7x the demo's CPU "
                                   "(docs/benchmarks.md, what a retrain costs). A single "
                                   "recipe always fits in full.")
    reference_rows: int = Field(
        1000, gt=100, description="At least this many of the newest training rows (normally "
                                   "the newest training batch) are logged as drift reference.")


class Scale(Section):
    """When the heavy steps (validation, monitoring, training) leave this process for Dask.

    Each step goes by its own input: the landed file for validation, the batch for
    monitoring, the labelled history for training. Below the threshold nothing of Dask runs."""

    dask_min_rows: int = Field(
        20_000_000, ge=1,
        description="A step whose input has at least this many rows runs on Dask. The "
                    "default keeps the single-process path for what one 2-core machine "
                    "handles (benchmarks/growth.py); lower it when a cluster is there.")
    dask_address: str | None = Field(
        None, description="Dask scheduler, e.g. tcp://dask-scheduler:8786; null reads "
                          "GREENLIGHT_DASK_ADDRESS, else a LocalCluster (one worker per core) "
                          "is started when a step first needs it and closed after the cycle.")
    partition_rows: int = Field(
        1_000_000, ge=1, description="Rows per partition for validation and monitoring.")


class Guardrails(Section):
    """Probation after a promotion: how long the new champion is judged against @previous
    on what is new, and rolled back by itself when the evidence turns against it."""

    baking_batches: int = Field(
        2, ge=0, description="The champion is on probation for this many newly labelled "
                             "batches after a promotion (0: no probation).")
    baking_hours: float | None = Field(
        None, gt=0, description="Or for this many hours after the promotion, whichever "
                                "ends first; null counts batches only.")
