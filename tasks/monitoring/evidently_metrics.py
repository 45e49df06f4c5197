"""greenlight's own numbers as Evidently metrics, so the Evidently UI can plot them over time.

Imported only where Evidently is (its import costs seconds). Evidently's models are
pydantic v1 models (`pydantic.v1` under the pydantic 2 we pin), so `PrivateAttr` comes from
pydantic's public v1 namespace, not from Evidently's private `_pydantic_compat`."""

from __future__ import annotations

import math
from typing import Any

from evidently import Dataset
from evidently.core.metric_types import SingleValueCalculation, SingleValueMetric
from pydantic.v1 import PrivateAttr

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
