"""Why a batch looks as it does to the champion, for monitoring: attribution drift (what the
champion relies on, against its reference: attribution.py) and the batch per segment
(segments.py), as MonitorResult's fields and the monitoring run's metrics.

Best effort: a view of the verdicts, never one of them. Whatever fails here (a model kind
LightGBM gives no contributions for, a segment column gone) leaves the fields empty with a
warning, and drift and decay are judged as before."""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd

from core.clean import finite_floats, json_safe
from tasks.data.spec import DatasetSpec
from tasks.monitoring import attribution, segments

log = logging.getLogger("greenlight.monitoring")


def explained(champion: Any, batch: pd.DataFrame, scores: np.ndarray,
              reference: pd.DataFrame, spec: DatasetSpec, registered_metric: float,
              limits: Any) -> dict[str, Any]:
    """MonitorResult's `attribution_shift`, `segment_feature`, `segments` and
    `segment_note` for one batch (`scores`: the champion's, of every row of `batch`)."""
    out: dict[str, Any] = {}
    leaning = None
    try:
        leaning = attribution.mean_abs(champion, batch)
        out["attribution_shift"] = finite_floats(attribution.attribution_shift(
            leaning, attribution.reference_attribution(champion, reference)))
    except Exception as exc:  # noqa: BLE001 (see the module docstring)
        log.warning("no attribution drift: %s: %s", type(exc).__name__, exc)
    column = segments.segment_feature(spec, leaning)
    if column is None or column not in batch or column not in reference:
        return out
    try:
        found = segments.by_segment(champion, batch, scores, reference, spec,
                                    registered_metric, column, limits)
    except Exception as exc:  # noqa: BLE001
        log.warning("no per-segment monitoring: %s: %s", type(exc).__name__, exc)
        return out
    # strict JSON: the manifest and the summary keep these, and an undefined metric is null
    return {**out, "segment_feature": column, "segments": json_safe(found),
            "segment_note": segments.segment_note(found, limits.max_decay,
                                                  limits.max_estimated_decay)}


def _safe(value: Any) -> str:
    """A value as MLflow takes it in a metric name (letters, digits, _ - . / : and space)."""
    return re.sub(r"[^\w.\- /:]", "_", str(value))[:100]


def why_metrics(shift: dict[str, float], found: list[dict[str, Any]]) -> dict[str, float]:
    """The monitoring run's metrics of attribution drift and of each judged segment: MLflow
    charts them over batches (`attribution.price`, `segment.market:west.decay`)."""
    flat: dict[str, Any] = {f"attribution.{f}": v for f, v in shift.items()}
    if shift:
        flat["attribution_shift"] = max(abs(v) for v in shift.values())
    for s in found:
        if not s.get("judged"):
            continue
        name = f"segment.{_safe(s['feature'])}:{_safe(s['value'])}"
        for key in ("drift_share", "label_score", "champion_metric", "decay",
                    "estimated_metric", "estimated_decay"):
            flat[f"{name}.{key}"] = s.get(key)
    return finite_floats(flat)
