"""The served predictions, as monitoring sees them: read the prediction log and measure it.

The log is written by the scoring service (`serving/plog.py` documents its format: one JSON
line per scored record under `GREENLIGHT_HOME/predictions/YYYY-MM-DD.jsonl`). tasks/ may not
import serving/, so the log is read here with pandas; the field names below are that
format's, named once for every reader in tasks/.

What a cycle reports is every line logged since the previous cycle, per model version and
variant: how many, how many failed, the score distribution, the class share (or the
prediction mean), the share flagged for review and the latency. Nothing is ever deleted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import jsonl
from core.clean import finite_floats, finite_or_none
from tasks.data.home import Home
from tasks.data.idle import last_monitored, mark_monitored  # noqa: F401 (the cycle's names)
from tasks.data.spec import DatasetSpec
from tasks.monitoring.quality import output_metrics

# The log's fields (serving/plog.py): one line per scored record.
FIELDS = ("request_id", "index", "prediction_id", "at", "model", "version", "variant", "input",
          "output", "needs_review", "latency_ms", "error")
PREDICTION_ID = "prediction_id"  # "<request_id>-<index>": the key served labels join on
SERVED = ("champion", "canary")  # variants whose answer a caller got; `shadow` is silent


def log_dir(home: Home) -> Path:
    return home.root / "predictions"


def _lines(path: Path) -> pd.DataFrame:
    """One day's file; a line torn by a crash mid-write is skipped, never fatal."""
    try:
        return pd.read_json(path, lines=True, dtype=False, convert_dates=False)
    except ValueError:  # a torn line somewhere: keep the readable ones
        return pd.DataFrame(list(jsonl.read(path)))


def read(home: Home, since: datetime | None = None, until: datetime | None = None
         ) -> pd.DataFrame:
    """Lines logged in [since, until), oldest first, with `at` as UTC timestamps, a
    `prediction_id`, and `value` (the score, or the regression estimate; NaN if it failed)."""
    frames = [_lines(p) for p in sorted(log_dir(home).glob("*.jsonl"))
              if since is None or p.stem >= f"{since:%Y-%m-%d}"]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=[*FIELDS, "value"])
    log = pd.concat(frames, ignore_index=True).reindex(columns=list(FIELDS))
    log["at"] = pd.to_datetime(log["at"], utc=True, errors="coerce", format="ISO8601")
    keep = log["at"].notna()
    if since is not None:
        keep &= log["at"] >= pd.Timestamp(since)
    if until is not None:
        keep &= log["at"] < pd.Timestamp(until)
    log = log[keep].sort_values(["at", "request_id", "index"], kind="stable")
    log[PREDICTION_ID] = log[PREDICTION_ID].fillna(  # lines from before the field existed
        log["request_id"].astype(str) + "-" + log["index"].astype(str))
    log["value"] = [_value(out) for out in log["output"]]
    return log.reset_index(drop=True)


def _value(output: Any) -> float:
    if not isinstance(output, dict):
        return float("nan")
    v = output.get("score", output.get("prediction"))
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float("nan")


@dataclass
class ServedStats:
    """What one model version said in one variant since the last cycle."""

    version: int
    variant: str
    count: int
    failed_share: float  # an error, or no finite score
    score_mean: float | None
    score_quantiles: dict[str, float] = field(default_factory=dict)
    positive_share: float | None = None  # classification; regression: score_mean is the mean
    needs_review_share: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None

    @property
    def name(self) -> str:
        return f"v{self.version}.{self.variant}"

    def to_dict(self) -> dict[str, Any]:
        return {k: finite_or_none(v) for k, v in asdict(self).items()}

    def run_metrics(self) -> dict[str, float]:
        """`served.v<version>.<variant>.<number>`, so MLflow charts each one over cycles."""
        flat = {"count": self.count, "failed_share": self.failed_share,
                "score_mean": self.score_mean, "positive_share": self.positive_share,
                "needs_review_share": self.needs_review_share,
                "latency_p50_ms": self.latency_p50_ms, "latency_p99_ms": self.latency_p99_ms,
                **{f"score_{q}": v for q, v in self.score_quantiles.items()}}
        return {f"served.{self.name}.{k}": v for k, v in finite_floats(flat).items()}


def served_metrics(log: pd.DataFrame, spec: DatasetSpec) -> list[ServedStats]:
    """Output metrics per (version, variant), with the same definitions as a batch's
    (`tasks.monitoring.quality.output_metrics`), plus review share and latency."""
    out = []
    for (version, variant), lines in log.groupby(["version", "variant"], sort=True):
        failed = lines["error"].notna().to_numpy() | ~np.isfinite(lines["value"].to_numpy())
        scores = np.where(failed, np.nan, lines["value"].to_numpy(dtype=float))
        metrics = output_metrics(scores, spec)
        latency = pd.to_numeric(lines["latency_ms"], errors="coerce").dropna()
        out.append(ServedStats(
            int(version), str(variant), len(lines), metrics.failed_share,
            finite_or_none(metrics.score_mean),
            metrics.score_quantiles, metrics.positive_share,
            float(lines["needs_review"].eq(True).mean()),
            float(latency.quantile(0.5)) if len(latency) else None,
            float(latency.quantile(0.99)) if len(latency) else None))
    return out


# A line's `at` is taken just before it is appended: lines of the last second may still be
# on their way to the file, so a cycle reads up to a second ago and the next one goes on.
SETTLE_SECONDS = 1.0


def window_end() -> datetime:
    """Where this cycle stops reading the log (see SETTLE_SECONDS)."""
    return datetime.now(UTC) - timedelta(seconds=SETTLE_SECONDS)
