"""Strict JSON: NaN and infinity become null.

`json.dumps` writes them as `NaN`/`Infinity`, which is not JSON: strict parsers (jq,
JavaScript, Go) refuse the whole document. An undefined metric is null instead.
"""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(value: Any) -> Any:
    """`value`, or None where it is a float that is NaN or infinite."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None, recursively."""
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
