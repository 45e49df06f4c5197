"""The model as MLflow sees it: LightGBM plus what it needs to score raw batch rows.

MLflow's pyfunc of an sklearn-API LightGBM returns labels only, and pandas `category`
columns break signature enforcement (STACK_NOTES). Wrapping the estimator with its
category mapping keeps the served contract "raw columns in, label and score out".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from tasks.spec import DatasetSpec


class GreenlightModel(PythonModel):
    """A fitted estimator with its feature list, category codes and label names."""

    def __init__(self, estimator: Any, spec: DatasetSpec, categories: dict[str, list[Any]],
                 labels: list[Any] | None = None) -> None:
        self.estimator = estimator
        self.spec = spec.model_dump()
        self.features = list(spec.features)
        self.categories = categories
        self.labels = labels  # [negative, positive] for classification

    @property
    def is_classifier(self) -> bool:
        return self.labels is not None

    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Map categoricals to the training codes; unseen values become -1, which LightGBM
        treats as missing instead of failing."""
        X = frame[self.features].copy()
        for col, cats in self.categories.items():
            X[col] = pd.Categorical(X[col], categories=cats).codes.astype("int32")
        return X

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class, or the regression estimate."""
        X = self.encode(frame)
        if self.is_classifier:
            return self.estimator.predict_proba(X)[:, 1]
        return self.estimator.predict(X)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        scores = self.score(model_input)
        if not self.is_classifier:
            return pd.DataFrame({"prediction": scores})
        labels = np.where(scores >= 0.5, self.labels[1], self.labels[0])
        return pd.DataFrame({"prediction": labels, "score": scores})

    def example(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Input rows for the signature, numbers as doubles: callers may send 3 or 3.0, and an
        integer schema would refuse missing values."""
        X = frame[self.features].copy()
        numeric = [c for c in self.features if c not in self.categories]
        X[numeric] = X[numeric].astype("float64")
        return X
