"""The dataset spec: what a dataset's columns mean, read from `expectations/<name>/spec.json`.

Every step reads the same spec, so the time column, target and features are named once,
next to the Great Expectations suite that guards them.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from tasks.data.home import EXPECTATIONS_DIR

# The primary metrics of a multiclass task (accuracy is the only one binary shares).
MULTICLASS_METRICS = ("accuracy", "macro_f1", "balanced_accuracy", "log_loss")


class TrainingDefaults(BaseModel):
    """The dataset's default training recipe; flow parameters override it."""

    half_life_days: float | None = Field(
        None, description="Recency half-life in days; null means equal weights."
    )
    window_days: float | None = Field(
        None, description="Train only on the last N days before the gate window; null = all."
    )


class DatasetSpec(BaseModel):
    """The columns and task of one dataset; the single source every step reads."""

    name: str
    time_column: str
    target: str
    task: Literal["classification", "regression", "multiclass"]
    features: list[str]
    categorical_features: list[str] = []
    primary_metric: Literal["accuracy", "roc_auc", "mae", "rmse", "macro_f1",
                            "balanced_accuracy", "log_loss"]
    positive_class: str | int | None = Field(
        None, description="For classification: the label that counts as 1."
    )
    classes: list[str | int] | None = Field(
        None, description="For multiclass: every label the target may take (3 or more); "
                          "the model's probabilities come in this order.")
    training: TrainingDefaults = TrainingDefaults()
    label_key: str | None = Field(
        None, description="Column that joins late labels (labels/ feed) to their rows; "
                          "null joins on the time column.")
    slice_feature: str | None = Field(
        None, description="Categorical feature whose values the gate guards one by one.")
    source: dict[str, Any] | None = Field(
        None, exclude=True,  # never dumped with a model or a report: it may hold a URL
        description="Where batches come from besides landing/: a SQL table or query, "
                    "or a landing folder at an fsspec URL (tasks/data/source.py).")

    @model_validator(mode="after")
    def _multiclass_is_whole(self) -> DatasetSpec:
        """A multiclass spec names its classes and a metric defined on K classes; the new
        metrics are multiclass only (binary and regression specs are read as before)."""
        if self.task == "multiclass":
            if not self.classes or len({str(c) for c in self.classes}) < 3:
                raise ValueError("task multiclass needs 'classes': 3 or more distinct labels")
            if self.primary_metric not in MULTICLASS_METRICS:
                raise ValueError(f"primary_metric {self.primary_metric!r} is not one of "
                                 f"{', '.join(MULTICLASS_METRICS)} (multiclass)")
        elif self.primary_metric in MULTICLASS_METRICS[1:]:
            raise ValueError(f"primary_metric {self.primary_metric!r} is for task multiclass")
        return self

    @property
    def numerical_features(self) -> list[str]:
        return [f for f in self.features if f not in self.categorical_features]

    @property
    def columns(self) -> list[str]:
        """Columns a batch must carry: time, features, target."""
        return [self.time_column, *self.features, self.target]

    @property
    def higher_is_better(self) -> bool:
        return self.primary_metric in ("accuracy", "roc_auc", "macro_f1", "balanced_accuracy")


def available_datasets() -> list[str]:
    """Datasets that ship a spec; used for CLI choices and clear errors."""
    return sorted(p.parent.name for p in EXPECTATIONS_DIR.glob("*/spec.json"))


@cache
def load_spec(name: str) -> DatasetSpec:
    """Load a dataset spec, failing with one line that names the file and the problem."""
    path = EXPECTATIONS_DIR / name / "spec.json"
    if not path.exists():
        raise ValueError(
            f"{path}: no such dataset spec (known: {', '.join(available_datasets()) or 'none'})"
        )
    try:
        return DatasetSpec.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid dataset spec: {exc}".splitlines()[0]) from exc


def suite_path(name: str) -> Path:
    return EXPECTATIONS_DIR / name / "suite.json"
