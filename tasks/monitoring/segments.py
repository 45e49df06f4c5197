"""Monitoring per segment: drift share, label drift, the champion's metric and its
label-free estimate for each value of one categorical feature, so that a segment that pays
for the whole is named ("decay 0.21 in market=west; 0.01 elsewhere").

The segment feature is the dataset's `slice_feature`, else the categorical feature the
champion leans on most on the batch (mean |contribution|, tasks/monitoring/attribution.py).
The numbers are the batch's own, by the same functions: column drift by `wide.column_drift`
(the same tests and cuts as drift.py, vectorised: no Evidently report per segment), decay
by `monitor.score_decay` and the estimate by `monitor.estimated`, each on the segment's
rows against the segment's rows of the champion's reference. A segment with fewer than
`MIN_SEGMENT_ROWS` rows is said to be too small, not judged: on 50 rows an accuracy moves
by 0.07 by chance. One absent from the reference is new: its drift has nothing to be
measured against, its decay still does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.clean import finite_or_none
from tasks.data.spec import DatasetSpec
from tasks.monitoring import wide
from tasks.monitoring.drift import CLASSIFICATION_LABEL_METHOD, CLASSIFICATION_LABEL_THRESHOLD

MIN_SEGMENT_ROWS = 200
MAX_SEGMENTS = 20  # the largest values judged; the rest are named as not judged
MISSING = "<missing>"


def segment_feature(spec: DatasetSpec, leaning: pd.Series | None) -> str | None:
    """The dataset's slice feature, else the categorical feature with the largest mean
    |contribution| in `leaning`, else None (no categorical feature to segment by)."""
    if spec.slice_feature:
        return spec.slice_feature
    cats = [c for c in spec.categorical_features
            if leaning is not None and c in leaning.index and np.isfinite(leaning[c])]
    return max(cats, key=lambda c: leaning[c]) if cats else None


def _values(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].astype(object).where(frame[column].notna(), MISSING)


def _drift_share(ref: pd.DataFrame, cur: pd.DataFrame, spec: DatasetSpec, column: str,
                 tests: Any) -> float:
    """The share of features (the segment's own excluded) drifted between the segment's rows
    of the reference and of the batch, by drift.py's tests and cuts (wide.column_drift)."""
    features = [f for f in spec.features if f != column]
    categorical = [f for f in features if f in spec.categorical_features]
    numerical = [f for f in features if f not in spec.categorical_features]
    methods = {f: tests.method_for(f, f in categorical) for f in features}
    judged = wide.column_drift(ref, cur, numerical, categorical, methods=methods,
                               threshold=tests.threshold)
    return float(np.mean([v.drifted for v in judged.values()])) if judged else float("nan")


def _label_drift(ref: pd.DataFrame, cur: pd.DataFrame, spec: DatasetSpec,
                 threshold: float | None) -> tuple[float | None, bool]:
    """The label's drift on the segment's labelled rows, as monitoring judges the batch's."""
    ref, cur = ref[ref[spec.target].notna()], cur[cur[spec.target].notna()]
    if len(ref) < MIN_SEGMENT_ROWS or len(cur) < MIN_SEGMENT_ROWS:
        return None, False
    classify = spec.task in ("classification", "multiclass")  # classes, as drift.py has them
    found = wide.column_drift(
        ref, cur, [] if classify else [spec.target], [spec.target] if classify else [],
        methods={spec.target: CLASSIFICATION_LABEL_METHOD if classify else None},
        threshold=threshold or (CLASSIFICATION_LABEL_THRESHOLD if classify else None))
    verdict = found.get(spec.target)
    return (None, False) if verdict is None else (float(verdict.score), bool(verdict.drifted))


def by_segment(champion: Any, batch: pd.DataFrame, scores: np.ndarray,
               reference: pd.DataFrame, spec: DatasetSpec, registered_metric: float,
               column: str, limits: Any) -> list[dict[str, Any]]:
    """One record per value of `column` in the batch (largest first, at most MAX_SEGMENTS):
    rows, whether too small or new, drift share, label drift, the champion's metric and
    decay (on its labelled rows), the estimate, and the decay of every other row."""
    from tasks.monitoring.monitor import estimated, score_decay  # monitor calls this module

    values, ref_values = _values(batch, column), _values(reference, column)
    counts = values.value_counts()
    scores = np.asarray(scores)
    out: list[dict[str, Any]] = []
    for rank, (value, rows) in enumerate(counts.items()):
        seg = {"feature": column, "value": value, "rows": int(rows)}
        if rank >= MAX_SEGMENTS or rows < MIN_SEGMENT_ROWS:
            out.append({**seg, "too_small": rank < MAX_SEGMENTS, "judged": False})
            continue
        mask = (values == value).to_numpy()
        cur, ref = batch[mask], reference[(ref_values == value).to_numpy()]
        new = len(ref) < MIN_SEGMENT_ROWS
        metric, decay, labelled = score_decay(champion, cur, spec, registered_metric,
                                              scores[mask])
        _, elsewhere, _ = score_decay(champion, batch[~mask], spec, registered_metric,
                                      scores[~mask]) if (~mask).any() else (None, None, 0)
        label_score, label_drifted = (None, False) if new else _label_drift(
            ref, cur, spec, limits.label_drift)
        guess = estimated(champion, cur, scores[mask], spec)
        other = estimated(champion, batch[~mask], scores[~mask], spec) if (~mask).any() else {}
        out.append({**seg, "too_small": False, "judged": True, "new": new,
                    "reference_rows": int(len(ref)), "labelled_rows": labelled,
                    "drift_share": None if new else finite_or_none(
                        _drift_share(ref, cur, spec, column, limits.tests)),
                    "label_score": label_score, "label_drifted": label_drifted,
                    "champion_metric": metric, "decay": finite_or_none(decay),
                    "decay_elsewhere": finite_or_none(elsewhere),
                    "estimated_metric": guess.get("estimated_metric"),
                    "estimated_decay": guess.get("estimated_decay"),
                    "estimated_decay_elsewhere": other.get("estimated_decay")})
    return out


def _alone(segments: list[dict[str, Any]], key: str, limit: float | None
           ) -> dict[str, Any] | None:
    """The judged segment most past `limit` in `key` while every other row stays under it,
    by at least `limit` again: a segment of a few hundred rows sits a few hundredths off the
    rest by chance (W11 of the synthetic stream: 0.05 in market=south, 0.01 elsewhere), and
    the line is for a segment that pays for the whole, not for that."""
    if limit is None:
        return None
    over = [s for s in segments if s.get("judged") and s.get(key) is not None
            and s[key] >= limit and (s.get(f"{key}_elsewhere") is None
                                     or (s[f"{key}_elsewhere"] < limit
                                         and s[key] - s[f"{key}_elsewhere"] >= limit))]
    return max(over, key=lambda s: s[key]) if over else None


def segment_note(segments: list[dict[str, Any]], max_decay: float | None,
                 max_estimated_decay: float | None = None) -> str:
    """The cycle line's words when one segment alone crosses a decay threshold, e.g.
    `decay 0.21 in market=west; 0.01 elsewhere`, with the segments too small to judge;
    "" when none does (the batch's own numbers already say it all)."""
    parts = []
    for key, limit, word in (("decay", max_decay, "decay"),
                             ("estimated_decay", max_estimated_decay, "estimated decay")):
        seg = _alone(segments, key, limit)
        if seg is None or (parts and key == "estimated_decay"):
            continue
        rest = seg.get(f"{key}_elsewhere")
        parts.append(f"{word} {seg[key]:.2f} in {seg['feature']}={seg['value']}"
                     + ("" if rest is None else f"; {rest:.2f} elsewhere")
                     + (" (new segment)" if seg.get("new") else ""))
    small = [f"{s['feature']}={s['value']}" for s in segments if s.get("too_small")]
    if parts and small:
        parts.append(f"{', '.join(small[:3])}{' +more' if len(small) > 3 else ''} too small "
                     f"to judge (< {MIN_SEGMENT_ROWS} rows)")
    return "; ".join(parts)
