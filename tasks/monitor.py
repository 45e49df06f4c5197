"""Monitor one batch against the live champion: data, label and prediction drift, and decay.

Drift is measured against the champion's own reference sample, so it always answers
"has the world moved away from what the live model knows?"
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.drift import MAX_ROWS, measure_drift, sample_rows, save_report
from tasks.evaluate import evaluate, relative_gain
from tasks.model import GreenlightModel
from tasks.spec import DatasetSpec

PREDICTION = "prediction"


@dataclass
class MonitorResult:
    batch_id: str
    rows: int
    drift_share: float
    drifted_features: list[str]
    label_score: float
    label_drifted: bool
    prediction_score: float | None
    champion_metric: float
    registered_metric: float
    decay: float
    reports: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def run_metrics(self, metric: str) -> dict[str, float]:
        """The numbers a monitoring run logs, so MLflow can chart them over batches."""
        return {"drift_share": self.drift_share, "label_drift": self.label_score,
                f"champion_{metric}": self.champion_metric, "decay": self.decay,
                "rows": self.rows}

    def run_tags(self, champion_version: int) -> dict[str, str]:
        return {"greenlight.batch_id": self.batch_id,
                "greenlight.champion_version": str(champion_version),
                "greenlight.drifted_features": ",".join(self.drifted_features)}


def monitor_batch(batch_id: str, batch: pd.DataFrame, reference: pd.DataFrame,
                  champion: GreenlightModel, registered_metric: float, spec: DatasetSpec,
                  out_dir: Path, label_threshold: float | None = None,
                  max_rows: int = MAX_ROWS) -> MonitorResult:
    """Drift and decay for one batch, with the Evidently report written to `out_dir`.

    A batch (or reference) above `max_rows` rows is scored and measured on a seeded sample
    of that many rows (`sample_rows`); `rows` still counts the whole batch."""
    scored, reference = sample_rows(batch, max_rows), sample_rows(reference, max_rows)
    current = scored[spec.columns].assign(**{PREDICTION: champion.score(scored)})
    ref = reference[spec.columns].assign(**{PREDICTION: champion.score(reference)})
    drift = measure_drift(ref, current, spec, label_threshold=label_threshold,
                          prediction_column=PREDICTION, max_rows=max_rows)
    paths = save_report(drift, out_dir)
    metric = evaluate(champion, scored, spec)[spec.primary_metric]
    decay = -relative_gain(metric, registered_metric, spec.higher_is_better)
    return MonitorResult(
        batch_id=batch_id, rows=len(batch), drift_share=float(drift.drift_share),
        drifted_features=list(drift.drifted_features), label_score=float(drift.label_score),
        label_drifted=bool(drift.label_drifted),
        prediction_score=None if drift.prediction_score is None else float(drift.prediction_score),
        champion_metric=metric, registered_metric=registered_metric, decay=decay,
        reports={k: str(v) for k, v in paths.items()},
    )
