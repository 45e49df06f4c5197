"""greenlight's own numbers as Evidently metrics, so the Evidently UI can plot them over time,
and Evidently's multiclass classification quality of a monitored batch (`quality_report`).

Imported only where Evidently is (its import costs seconds). Evidently's models are
pydantic v1 models (`pydantic.v1` under the pydantic 2 we pin), so `PrivateAttr` comes from
pydantic's public v1 namespace, not from Evidently's private `_pydantic_compat`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from evidently import Dataset
from evidently.core.metric_types import SingleValueCalculation, SingleValueMetric
from pydantic.v1 import PrivateAttr

from tasks.data.spec import DatasetSpec
from tasks.training.multiclass import class_codes

# The UI prefixes any type without it with "evidently:metric_v2:", so ours carries it too.
VALUE = "evidently:metric_v2:GreenlightValue"


class GreenlightValue(SingleValueMetric):
    """A number greenlight computed (decay, the decision's drift share) as an Evidently metric.

    The value is private, not a field: fields become series labels, and a label that
    changed every batch would split one line into one point per batch."""

    name: str
    _value: float = PrivateAttr(default=math.nan)

    class Config:
        type_alias = VALUE

    def __init__(self, name: str, value: float | None = None, **data: Any) -> None:
        super().__init__(name=name, **data)
        self._value = math.nan if value is None else float(value)


class GreenlightValueCalculation(SingleValueCalculation[GreenlightValue]):
    def calculate(self, context: Any, current_data: Dataset, reference_data: Dataset | None):
        return self.result(self.metric._value), None

    def display_name(self) -> str:
        return f"greenlight: {self.metric.name}"


# The classification report's two label columns; the probability columns are the class
# names themselves, which is how Evidently's multiclass metrics know which class each is.
TARGET, PREDICTED = "greenlight_target", "greenlight_predicted"


def quality_frame(frame: pd.DataFrame, scores: np.ndarray, classes: list[Any],
                  spec: DatasetSpec) -> pd.DataFrame:
    """The rows whose label is one of `classes`, as Evidently's multiclass classification
    reads them: the label and the predicted class as text (a gappy label column is float,
    and 2.0 must still be class "2"), then one probability column per class, named by it.

    Unlabelled rows and labels outside the classes are left out: Evidently's ROC AUC and
    log loss have no probability column for them (the champion's own metric counts an
    unknown label as wrong; the suite's label hold keeps such batches out in the first
    place)."""
    codes = (class_codes(frame, spec) if spec.target in frame
             else np.full(len(frame), -1, dtype=int))
    known = codes >= 0
    names = [str(c) for c in classes]
    out = pd.DataFrame({TARGET: np.asarray(names, dtype=object)[codes[known]],
                        PREDICTED: np.asarray(names, dtype=object)[
                            np.argmax(scores[known], axis=1)]})
    for i, name in enumerate(names):
        out[name] = np.asarray(scores, dtype=float)[known, i]
    return out


def quality_report(current: pd.DataFrame, classes: list[Any], title: str | None = None
                   ) -> Any:
    """Evidently's classification quality of a `quality_frame`: accuracy, macro precision,
    recall and F1, each per class too, and the confusion matrix; None when the batch has no
    labelled row. ClassificationPreset's metrics without its PR curve, PR table and ROC
    curve widgets, which cost 40% more time (1.35 s against 0.77 s on 3,000 rows, page
    included) for plots nobody reads per batch.

    ROC AUC and log loss (from the probabilities) only when every class has labelled rows:
    Evidently 0.7.23 raises on a probability column whose class no row holds (`KeyError`
    in ClassificationQualityByClass, scikit-learn's "only one class" in ROC AUC), and a
    rare class (Bike Sharing's heavy rain: 3 hours in 17,379) is often absent. No reference
    beside it: Evidently's per-class widgets raise when the reference's classes differ from
    the batch's, and the champion's quality on its own training rows is in-sample anyway;
    the registered metric is the comparison (the dashboard draws it)."""
    from evidently import DataDefinition, MulticlassClassification, Report
    from evidently.presets import ClassificationQuality, ClassificationQualityByLabel

    from tasks.monitoring.drift import _quiet

    if current.empty:
        return None
    names = [str(c) for c in classes]
    probas = names if set(names) <= set(current[TARGET]) else None
    definition = DataDefinition(
        classification=[MulticlassClassification(target=TARGET, prediction_labels=PREDICTED,
                                                  prediction_probas=probas)],
        categorical_columns=[TARGET, PREDICTED], numerical_columns=names)
    with _quiet():
        return Report([ClassificationQuality(conf_matrix=True),
                       ClassificationQualityByLabel()]).run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=None, name=title)
