"""Why the challenger differs from the champion, on the gate window: for the person who
approves it, the cycle's artifact and the model card.

Three answers, a few lines each:
- features: how differently the two models use each feature, as the mean over rows of the
  change of its contribution (both in score space, tasks/monitoring/attribution.py), with
  the direction (does the challenger lean on it more or less, in mean |contribution|). The
  per-row change, not the change of the mean: when price stops mattering to the young and
  matters four times as much to the old, its mean |contribution| barely moves, yet the
  challenger uses it very differently (synthetic W17).
- segments: per value of the dataset's `slice_feature` (else of the categorical feature the
  challenger leans on most), the gain with the gate's own paired bootstrap interval
  (tasks/gate/bootstrap.py, the level shared out as the gate's slice guard does), the
  segments gaining and losing most; too-small segments are said to be too small.
- rows: where the two scores differ most, a few as a table, all of them as a CSV.

Multiclass: a row's contribution is to the whole probability vector (its |change| summed
over the classes, tasks/monitoring/attribution.py says why), the segments are judged on the
gate's multiclass metric, and a row's two "scores" are each model's predicted class, the
difference how far apart the two probability vectors are (half the sum of |p' - p| over
the classes: 0 the same, 1 certain of different classes).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.clean import json_safe
from tasks.data.spec import DatasetSpec
from tasks.gate.bootstrap import SUPPORTED, auto_block_rows, draws_for, row_losses
from tasks.gate.gate import slice_level
from tasks.monitoring.attribution import ATTRIBUTION_ROWS, contributions, magnitude, sample_for
from tasks.monitoring.segments import segment_feature
from tasks.training.multiclass import class_codes
from tasks.training.train import binary_target

log = logging.getLogger("greenlight.explain")
TOP_FEATURES = 3
TOP_ROWS = 5
MIN_SEGMENT_ROWS = 50  # as the gate's min_slice_rows default


@dataclass
class Explanation:
    """What the challenger does differently on the gate window (module docstring)."""

    rows: int
    features: list[dict[str, Any]] = field(default_factory=list)
    segment_feature: str | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)
    disagreements: pd.DataFrame = field(default_factory=pd.DataFrame)
    note: str = ""  # why a part could not be said (e.g. a metric the bootstrap cannot take)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, with its lines and its few rows: what the cycle keeps and shows."""
        return json_safe({"rows": self.rows, "features": self.features,
                          "segment_feature": self.segment_feature, "segments": self.segments,
                          "disagreements": self.top_rows(), "note": self.note,
                          "lines": self.lines(), "text": self.text()})

    def top_rows(self, n: int = TOP_ROWS) -> list[dict[str, Any]]:
        """The `n` rows the two disagree on most, narrow enough to read: the segment, the
        features used most differently, the label and both scores."""
        if self.disagreements.empty:
            return []
        named = [self.segment_feature, *(f["feature"] for f in self.features[:TOP_FEATURES])]
        columns = list(dict.fromkeys(c for c in named if c in self.disagreements))
        columns += list(self.disagreements.columns[-4:])  # label, both scores, difference
        return json_safe(self.disagreements.head(n)[columns].to_dict(orient="records"))

    def feature_line(self) -> str:
        """`... price (0.126 a row; relied on less: 0.156 -> 0.096); ...`: per feature, the
        mean change of a row's contribution, and mean |contribution| champion -> challenger."""
        parts = [f"{f['feature']} ({f['change']:.3f} a row; relied on "
                 f"{'more' if f['challenger'] >= f['champion'] else 'less'}: "
                 f"{f['champion']:.3f} -> {f['challenger']:.3f})"
                 for f in self.features[:TOP_FEATURES]]
        return ("features used most differently (mean change of a row's contribution to the "
                "score; mean |contribution| champion -> challenger): " + "; ".join(parts)
                if parts else "no feature contributions to compare")

    def segment_line(self) -> str:
        """`market=west gains most: +25.1% (CI +18.0..+31.2%, 540 rows); ...`"""
        if not self.segment_feature:
            return "segments: none to compare (no slice feature and no categorical feature)"
        judged = [s for s in self.segments if s["judged"] and s["gain"] is not None
                  and math.isfinite(s["gain"])]
        small = [s for s in self.segments if not s["judged"]]
        parts = []
        if judged:
            best, worst = max(judged, key=lambda s: s["gain"]), min(judged, key=lambda s: s["gain"])
            parts.append(f"{_seg(self.segment_feature, best)} gains most: {_gain(best)}")
            if worst is not best:
                parts.append(f"{_seg(self.segment_feature, worst)} "
                             f"{'loses most' if worst['gain'] < 0 else 'gains least'}: "
                             f"{_gain(worst)}")
        if small:
            parts.append(", ".join(_seg(self.segment_feature, s) for s in small)
                         + f" too small to judge (< {MIN_SEGMENT_ROWS} rows)")
        return (f"segments by {self.segment_feature}: " + "; ".join(parts) if parts
                else f"segments by {self.segment_feature}: {self.note or 'none judged'}")

    def lines(self) -> list[str]:
        """The explanation in a few lines of markdown (the approval form, the artifact)."""
        n = len(self.disagreements)
        return [f"- {self.feature_line()}", f"- {self.segment_line()}",
                f"- rows the two disagree on most (of {self.rows}; all {n}, most different "
                "first, in `why/disagreements.csv` of a registered version's training run):"]

    def text(self, limit: int = 1500) -> str:
        """The card's paragraph: the features and segments, no table."""
        return f"{self.feature_line()}. {self.segment_line()}."[:limit]


def _seg(feature: str, s: dict[str, Any]) -> str:
    return f"{feature}={s['value']}"


def _gain(s: dict[str, Any]) -> str:
    lo, hi = s.get("ci_low"), s.get("ci_high")
    ci = (f" (CI {lo:+.1%}..{hi:+.1%})" if lo is not None and hi is not None
          and math.isfinite(lo) and math.isfinite(hi) else "")
    return f"{s['gain']:+.1%}{ci}, {s['rows']} rows"


def _truth(rows: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    """The labels as the gate reads them (1/0 for the positive class, the class position
    for multiclass, or the values)."""
    if spec.task == "multiclass":
        return class_codes(rows, spec)
    if spec.task == "classification":
        return binary_target(rows, spec).astype(float)
    return rows[spec.target].to_numpy(dtype=float)


def feature_changes(champion: Any, challenger: Any, rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Per feature, most changed first: the mean per-row change of its contribution, and
    each model's mean |contribution|, both in score space."""
    old, new = contributions(champion, rows, "score"), contributions(challenger, rows, "score")
    change = magnitude(new.values - old.values).mean(axis=0)
    before, after = old.mean_abs(), new.mean_abs()
    found = [{"feature": f, "change": float(change[i]), "champion": float(before[f]),
              "challenger": float(after[f])} for i, f in enumerate(old.features)]
    return sorted(found, key=lambda f: -f["change"])


def segment_gains(y: np.ndarray, old: np.ndarray, new: np.ndarray, values: pd.Series,
                  spec: DatasetSpec, n_resamples: int, seed: int,
                  min_rows: int = MIN_SEGMENT_ROWS) -> list[dict[str, Any]]:
    """Per segment: rows, both metrics, the gain and its paired block-bootstrap interval
    (the gate's draws; level shared out over the judged segments, as the slice guard)."""
    metric = spec.primary_metric
    block = auto_block_rows(row_losses(metric, y, new) - row_losses(metric, y, old))
    draws = draws_for(y, old, new, spec, block, n_resamples, seed,
                      slice_level(values, min_rows), values.reset_index(drop=True))
    out = []
    for j, value in enumerate(draws["values"]):
        rows = int(draws["rows"][j])
        out.append({"value": value, "rows": rows, "judged": rows >= min_rows,
                    "champion": float(draws["champion"][j]),
                    "challenger": float(draws["challenger"][j]),
                    "gain": float(draws["gain"][j]), "ci_low": float(draws["ci_low"][j]),
                    "ci_high": float(draws["ci_high"][j])})
    return out


def disagreements(rows: pd.DataFrame, old: np.ndarray, new: np.ndarray,
                  spec: DatasetSpec) -> pd.DataFrame:
    """Every row of the window with both scores, most different first (multiclass: each
    model's class, and how far apart their probability vectors are: module docstring)."""
    table = rows[[spec.time_column, *spec.features, spec.target]].copy()
    if np.ndim(new) == 2:
        classes = np.asarray(spec.classes, dtype=object)
        table["champion"], table["challenger"] = classes[old.argmax(1)], classes[new.argmax(1)]
        table["difference"] = 0.5 * np.abs(new - old).sum(axis=1)
    else:
        table["champion"], table["challenger"] = old, new
        table["difference"] = new - old
    order = np.argsort(-np.abs(table["difference"].to_numpy(dtype=float)), kind="stable")
    return table.iloc[order].reset_index(drop=True)


def explain(champion: Any, challenger: Any, window: pd.DataFrame, spec: DatasetSpec, *,
            min_segment_rows: int = MIN_SEGMENT_ROWS, n_resamples: int = 1000, seed: int = 0,
            max_rows: int = ATTRIBUTION_ROWS,
            slices: list[dict[str, Any]] | None = None) -> Explanation:
    """Champion vs challenger on the labelled rows of the gate window (module docstring).
    Contributions on a seeded sample (attribution.sample_for); segments and disagreements
    on every row. `slices`, the gate's own per-slice verdicts (GateResult.slices), are the
    segments when given: the gated model's intervals, where the registered one may have
    been refit on the window since."""
    rows = window[window[spec.target].notna()].sort_values(spec.time_column, kind="stable")
    rows = rows.reset_index(drop=True)
    if not len(rows):
        return Explanation(0, note="no labelled rows in the gate window")
    old, new = np.asarray(champion.score(rows)), np.asarray(challenger.score(rows))
    sample = sample_for(challenger, rows, max_rows, seed)
    features = feature_changes(champion, challenger, sample)
    leaning = pd.Series({f["feature"]: f["challenger"] for f in features})
    by = segment_feature(spec, leaning)
    found = Explanation(len(rows), features, by, disagreements=disagreements(rows, old, new, spec))
    if slices and by == slices[0].get("feature"):
        found.segments = [{k: s.get(k) for k in ("value", "rows", "judged", "champion",
                                                 "challenger", "gain", "ci_low", "ci_high")}
                          for s in slices]
    elif by is not None and by in rows:
        if spec.primary_metric not in SUPPORTED:
            found.note = f"no intervals for {spec.primary_metric} (the gate's bootstrap takes " \
                         f"{', '.join(SUPPORTED)})"
        else:
            values = rows[by].astype(object).where(rows[by].notna(), "<missing>")
            found.segments = segment_gains(_truth(rows, spec), old, new, values, spec,
                                           n_resamples, seed, min_segment_rows)
    return found


def write_disagreements(found: Explanation, path: Path) -> Path:
    """All the rows, most different first, as CSV (logged with the training run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    found.disagreements.to_csv(path, index=False)
    return path



def for_gate(champion: Any, challenger: Any, window: pd.DataFrame, spec: DatasetSpec,
             slices: list[dict[str, Any]], csv_path: Path) -> Explanation | None:
    """The explanation of a gated challenger with every row written to `csv_path`; None,
    with a warning, when it cannot be made: it explains a verdict, it never blocks one."""
    try:
        found = explain(champion, challenger, window, spec, slices=slices)
        write_disagreements(found, csv_path)
    except Exception as exc:  # noqa: BLE001 (a view of the verdict: see the docstring)
        log.warning("no explanation of the challenger: %s: %s", type(exc).__name__, exc)
        return None
    return found
