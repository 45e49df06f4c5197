"""Late labels: a separate feed of (key, target) files under `GREENLIGHT_HOME/labels/`.

Features arrive with the batch, but the outcome is often known days later. Labels land as
their own files (CSV or parquet, any number of rows, any batch), and are joined to the lake's
rows by the spec's `label_key` (default: the time column). So batch t's decay is computed
once its labels land, possibly with batch t+k, and re-computed as more of them arrive.

A batch whose labels are implausible (one class only, a constant target, or a share outside
the suite's label-share checks) is held from training and gating until a person releases it
(`implausible`, `tasks.data.manifest.hold`): the gate judges on the newest rows, so such a batch
would otherwise both train the challenger and be the window that judges it.

Outcomes of served predictions land in the same feed keyed by `prediction_id` instead (the
`<request_id>-<index>` the service answered with); `tasks/data/harvest.py` joins those. Each
join reads the files that carry its key and passes over the others without a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data.home import Home
from tasks.data.idle import is_candidate
from tasks.data.predictions import PREDICTION_ID
from tasks.data.spec import DatasetSpec
from tasks.monitoring.monitor import MonitorResult, score_decay
from tasks.training.model import GreenlightModel

log = logging.getLogger("greenlight.labels")


def _files(home: Home) -> list[Path]:
    if not home.labels.is_dir():
        return []
    return sorted(p for p in home.labels.iterdir() if is_candidate(p))


def available(home: Home) -> bool:
    return bool(_files(home))


def key_column(spec: DatasetSpec) -> str:
    return spec.label_key or spec.time_column


def read_file(path: Path, spec: DatasetSpec, key: str | None = None) -> pd.DataFrame | None:
    """One labels file as (key, target); None when it is keyed by the other known key
    (batch rows vs served predictions). A bad file is one line naming it and the problem."""
    key = key or key_column(spec)
    try:
        with path.open("rb") as fh:  # a local file or a store's object alike
            frame = (pd.read_parquet(fh) if path.name.endswith(".parquet")
                     else pd.read_csv(fh))
    except Exception as exc:  # pandas raises many types for unreadable input
        raise ValueError(f"{path}: cannot be read: {exc}".splitlines()[0]) from None
    missing = [c for c in (key, spec.target) if c not in frame.columns]
    other = {key_column(spec), PREDICTION_ID} - {key}
    if missing == [key] and other & set(frame.columns):
        return None  # labels for the other join
    if missing:
        raise ValueError(f"{path}: labels file lacks column(s) {', '.join(missing)}")
    return frame[[key, spec.target]]


def read_all(home: Home, spec: DatasetSpec, key: str | None = None) -> pd.DataFrame:
    """Every readable labels file keyed by `key` (default: the spec's); a later file's label
    for the same key wins (corrections)."""
    key = key or key_column(spec)
    frames = []
    for path in _files(home):
        try:
            frame = read_file(path, spec, key)
        except ValueError as exc:
            log.warning("%s (skipped)", exc)
            continue
        if frame is not None:
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[key, spec.target])
    return pd.concat(frames, ignore_index=True).drop_duplicates(key, keep="last")


def _align(keys: pd.Series, like: pd.Series) -> pd.Series:
    """Keys read from CSV as text become the lake's type (timestamps, numbers)."""
    if pd.api.types.is_datetime64_any_dtype(like):
        return pd.to_datetime(keys, errors="coerce")
    if pd.api.types.is_numeric_dtype(like):
        return pd.to_numeric(keys, errors="coerce")
    return keys.astype(str)


def attach(batch: pd.DataFrame, home: Home, spec: DatasetSpec, key: str | None = None
           ) -> pd.DataFrame:
    """The batch with missing targets filled from the labels feed (present labels kept),
    joined on `key` (default: the spec's `label_key`, else its time column)."""
    key = key or key_column(spec)
    if not available(home) or batch.empty or key not in batch:
        return batch
    feed = read_all(home, spec, key)
    if feed.empty:
        return batch
    lookup = pd.Series(feed[spec.target].to_numpy(), index=_align(feed[key], batch[key]))
    lookup = lookup[~lookup.index.duplicated(keep="last")]
    out = batch.copy()
    late = out[key].map(lookup)
    if spec.target not in out:
        out[spec.target] = late
    else:
        current = out[spec.target]
        if pd.api.types.is_numeric_dtype(current) and not pd.api.types.is_numeric_dtype(late):
            late = pd.to_numeric(late, errors="coerce")
        out[spec.target] = current.where(current.notna(), late)
    return out


def awaiting(batches: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Monitored batches whose decay is still unknown or measured on only part of its rows."""
    out = []
    for b in batches.values():
        if b.get("status") != "accepted" or not b.get("decision") or "drift_share" not in b:
            continue
        if b.get("decay") is None or (b.get("labelled_rows") or b.get("rows", 0)) < b.get(
                "rows", 0):
            out.append(b)
    return out


def late_decay(batch: dict[str, Any], frame: pd.DataFrame, champion: GreenlightModel,
               spec: DatasetSpec, registered: float) -> MonitorResult | None:
    """The batch's decay on its newly labelled rows; None if no new label has landed."""
    metric, decay, labelled = score_decay(champion, frame, spec, registered)
    if metric is None or labelled <= (batch.get("labelled_rows") or 0):
        return None
    return MonitorResult(batch["id"], len(frame), float(batch.get("drift_share") or 0.0),
                         list(batch.get("drifted_features") or []), batch.get("label_score"),
                         False, batch.get("prediction_score"), metric, registered, decay,
                         labelled_rows=labelled)


def implausible(frame: pd.DataFrame, spec: DatasetSpec, label_suite: dict, *, min_rows: int,
                source: str) -> str | None:
    """Why the batch's labels are implausible, in one line naming `source`; None if they
    are plausible, or if fewer than `min_rows` rows are labelled (every share of a handful
    of rows is extreme: the gate's per-class minimum guards those).

    Implausible: a classification batch of one class, a regression batch with one target
    value, or a failure of the suite's label-share checks (`label_suite`, from
    `tasks.data.validate.split_label_checks`), judged on the labelled rows."""
    from tasks.data.validate import validate_frame

    if spec.target not in frame:
        return None
    labelled = frame.loc[frame[spec.target].notna(), [spec.target]]
    if len(labelled) < min_rows:
        return None
    problems = []
    values = labelled[spec.target].unique()
    if len(values) == 1:
        kind = "class" if spec.task == "classification" else "target value"
        value = values[0].item() if hasattr(values[0], "item") else values[0]  # not np.int64(1)
        problems.append(f"all {len(labelled)} labelled rows have {kind} {value!r}")
    if label_suite.get("expectations"):
        checked = validate_frame(labelled, label_suite, source=source)
        problems += [f.text for f in checked.failures]
    if not problems:
        return None
    return (f"{source}: labels implausible ({'; '.join(problems)}): held from training "
            f"and gating until released")
