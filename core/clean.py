"""Strict JSON: NaN and infinity become null.

`json.dumps` writes them as `NaN`/`Infinity`, which is not JSON: strict parsers (jq,
JavaScript, Go) refuse the whole document. An undefined metric is null instead.
"""

from __future__ import annotations

import math
from typing import Any


def non_finite(value: Any) -> bool:
    """True for a float that is NaN or infinite: a number strict JSON cannot hold."""
    return isinstance(value, float) and not math.isfinite(value)


def finite_or_none(value: Any) -> Any:
    """`value`, or None where it is a float that is NaN or infinite."""
    return None if non_finite(value) else value


def finite_floats(values: dict[str, Any]) -> dict[str, float]:
    """The entries that are finite numbers, as floats: MLflow metrics take no None, and a
    NaN would chart as a hole, so an undefined metric is left out instead."""
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None, recursively; a numpy number or
    bool becomes Python's first (json cannot write numpy's bool or int)."""
    if getattr(getattr(value, "dtype", None), "kind", "") in ("b", "i", "u", "f") \
            and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
