"""Harvest: served predictions whose outcomes have landed become the next training batch.

This closes the loop. Every record a caller was answered for (variant `champion` or
`canary`; `shadow` lines repeat a champion's inputs) is one row: its inputs, the time it
was scored as the time column, and its label from the labels feed (`tasks/data/labels.py`),
joined by `prediction_id` (and by the spec's `label_key` when it names an input column).
Only labelled rows go: the dataset's suite refuses a row without a target.

The batch lands in `landing/` as an ordinary file with the dataset's columns, so the next
cycle ingests and validates it like any other. The prediction log is never touched. Each
harvest leaves a record in `harvest/<batch id>.json` with the prediction ids it took; a
prediction counts as harvested once its file is in landing or known to the manifest
(accepted or quarantined), so a crash between the record and the file loses nothing, and
harvesting again with nothing new writes nothing. The file's name carries its content hash,
which is also its batch id at ingest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

from core.files import replacing
from tasks.data import labels, manifest, predictions
from tasks.data.home import Home
from tasks.data.spec import DatasetSpec


@dataclass(frozen=True)
class Harvest:
    """What one harvest did: the file it landed (None if nothing new), and why."""

    path: Path | None
    rows: int
    waiting: int | None  # served records with no label yet (None: not read, no new label)
    already: int  # labelled records an earlier harvest took

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.path) if self.path else None, "rows": self.rows,
                "waiting_for_labels": self.waiting, "already_harvested": self.already}


def _dir(home: Home) -> Path:
    return home.root / "harvest"


def harvested_ids(home: Home) -> set[str]:
    """Prediction ids taken by harvests whose file landed (see the module docstring)."""
    known = manifest.load(home.manifest)
    taken: set[str] = set()
    for record in sorted(_dir(home).glob("*.json")):
        try:
            entry = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if record.stem in known or (home.landing / entry.get("file", "")).is_file():
            taken.update(entry.get("prediction_ids", []))
    return taken


def served_rows(home: Home, spec: DatasetSpec, model: str,
                since: datetime | None = None) -> pd.DataFrame:
    """One row per answered request record: prediction id, time scored, the inputs, and the
    label where it has landed (NaN where not). `since`: only records scored from then on
    (the canary's quality guard reads its ramp's, not the whole log)."""
    log = predictions.read(home, since=since)
    log = log[(log["model"] == model) & log["variant"].isin(predictions.SERVED)]
    if log.empty:
        return pd.DataFrame(columns=[predictions.PREDICTION_ID, *spec.columns])
    # A canary that failed falls back to the champion: keep the record once, as answered.
    log = log.assign(_rank=log["variant"].map(predictions.SERVED.index))
    log = log.sort_values(["_rank"], kind="stable").drop_duplicates(predictions.PREDICTION_ID)
    log = log.sort_values(["at", "request_id", "index"], kind="stable")
    inputs = pd.DataFrame(list(log["input"]), index=log.index)
    rows = pd.concat([log[[predictions.PREDICTION_ID]], inputs], axis=1)
    rows[spec.time_column] = log["at"].dt.tz_convert("UTC").dt.tz_localize(None)
    rows[spec.target] = None  # object: labels may be numbers or names
    rows = labels.attach(rows, home, spec, key=predictions.PREDICTION_ID)
    if spec.label_key and spec.label_key in spec.features:
        rows = labels.attach(rows, home, spec)
    return rows.reset_index(drop=True)


def _new_labels(home: Home, spec: DatasetSpec, taken: set[str]) -> bool:
    """Whether any label may pick a record no harvest took yet. Keyed by prediction id,
    that is known from the labels feed alone; a join on an input column needs the log."""
    if spec.label_key and spec.label_key in spec.features:
        return True
    keys = labels.read_all(home, spec, key=predictions.PREDICTION_ID)[predictions.PREDICTION_ID]
    return not set(keys.astype(str)) <= taken


def _target(values: pd.Series) -> pd.Series:
    """Whole-number labels stay integers (a CSV must say 1, not 1.0, for the suite's set)."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and (numeric == numeric.round()).all():
        return numeric.astype("int64")
    return numeric if numeric.notna().all() else values


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%f").encode()


def _write(path: Path, data: bytes) -> None:
    """A scan of landing never sees half a harvested file."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def harvest(home: Home, spec: DatasetSpec, model: str) -> Harvest:
    """Land the newly labelled served records of `model` as one CSV batch, or nothing."""
    _dir(home).mkdir(parents=True, exist_ok=True)
    home.landing.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home.lock("harvest.lock")), timeout=600):
        taken = harvested_ids(home)
        if not _new_labels(home, spec, taken):  # the common case: skip reading the log
            return Harvest(None, 0, None, len(taken))
        rows = served_rows(home, spec, model)
        labelled = rows[rows[spec.target].notna()]
        fresh = labelled[~labelled[predictions.PREDICTION_ID].isin(taken)]
        waiting, already = len(rows) - len(labelled), len(labelled) - len(fresh)
        if fresh.empty:
            return Harvest(None, 0, waiting, already)
        batch = fresh[spec.columns].assign(**{spec.target: _target(fresh[spec.target])})
        data = _csv_bytes(batch)
        digest = hashlib.sha256(data).hexdigest()
        newest = batch[spec.time_column].max()
        path = home.landing / f"harvest-{newest:%Y%m%dT%H%M%S}-{digest[:16]}.csv"
        # The record first, then the file: the ids count only once the file has landed.
        record = _dir(home) / f"{digest[:16]}.json"
        _write(record, json.dumps({
            "file": path.name, "sha256": digest, "rows": len(batch), "at": manifest.now_iso(),
            "prediction_ids": fresh[predictions.PREDICTION_ID].tolist()}).encode())
        if not path.exists():
            _write(path, data)
        return Harvest(path, len(batch), waiting, already)
