"""Whether a cycle has anything to do, answered from file names, sizes and times alone.

A cycle scheduled every few minutes mostly finds nothing. Knowing that needs no pandas,
MLflow or Prefect: the landing folder, the manifest, the labels feed and the prediction
log say it, so `greenlight run` asks here before it imports any of them. Every doubt
counts as work: a file in landing (even one still being written), a batch no cycle has
decided on, a prediction logged after the last cycle read the log, or a labels feed that
changed since the last cycle looked at it all run the whole cycle.

This module imports only the standard library and the other light modules of `tasks`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from core.files import replacing
from tasks.data import landing_rules, manifest
from tasks.data.home import EXPECTATIONS_DIR, Home
from tasks.data.landing_rules import SUFFIXES  # noqa: F401 (what landing takes; named here too)

Fingerprint = list[list[str | int]]


def is_candidate(path: Path) -> bool:
    """A table file a cycle may take; hidden and `~` names are files still being written."""
    name = path.name
    return path.is_file() and not name.startswith((".", "~")) and name.endswith(SUFFIXES)


def is_landed(path: Path) -> bool:
    """A file in landing a cycle must deal with: a candidate, or a symlink (read through
    to an allowed regular file, or quarantined once with its reason: tasks/data/landing_rules.py)
    instead of skipping it in silence on every cycle. Only a regular file or a link counts:
    a FIFO is never opened (`is_file` is a stat, and says no)."""
    if path.is_symlink():
        return landing_rules.named_like_a_batch(path)
    return is_candidate(path)


def _mark(home: Home) -> Path:
    return home.root / "monitoring" / "predictions.json"


def last_monitored(home: Home) -> datetime | None:
    """Where the previous cycle stopped reading the prediction log (None: it never did)."""
    try:
        return datetime.fromisoformat(json.loads(_mark(home).read_text())["until"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def mark_monitored(home: Home, until: datetime) -> None:
    """Written after the window's run is logged: a crash before re-reports it, never skips."""
    with replacing(_mark(home)) as tmp:
        tmp.write_text(json.dumps({"until": until.isoformat()}))


def labels_fingerprint(home: Home) -> Fingerprint:
    """Name, size and mtime of every file in the labels feed: equal means nothing landed."""
    if not home.labels.is_dir():
        return []
    out: Fingerprint = []
    for path in sorted(home.labels.iterdir()):
        if is_candidate(path):
            st = path.stat()
            out.append([path.name, st.st_size, st.st_mtime_ns])
    return out


def _seen(home: Home, dataset: str) -> Path:
    """Per dataset: datasets sharing a state dir share its labels feed, not their cycles."""
    return home.root / "monitoring" / f"labels-seen-{dataset}.json"


def remember_labels(home: Home, dataset: str, fingerprint: Fingerprint) -> None:
    """Record the labels feed a whole cycle of `dataset` started from (taken before it read
    the feed, so a file landing during the cycle still counts as new for the next one)."""
    with replacing(_seen(home, dataset)) as tmp:
        tmp.write_text(json.dumps(fingerprint))


def _labels_unchanged(home: Home, dataset: str) -> bool:
    current = labels_fingerprint(home)
    if not current:
        return True
    try:
        return json.loads(_seen(home, dataset).read_text()) == current
    except (OSError, ValueError):
        return False


def _predictions_since(home: Home, since: datetime | None) -> bool:
    """Whether a prediction-log file was written after the last cycle read the log."""
    logs = home.root / "predictions"
    files = [p for p in logs.glob("*.jsonl")] if logs.is_dir() else []
    if since is None:
        return bool(files)
    return any(p.stat().st_mtime > since.timestamp() for p in files)


def _has_source(dataset: str) -> bool:
    """A SQL table or a remote landing feeds the dataset (tasks/data/source.py): only a
    query says whether it holds something new, so the whole cycle runs."""
    import os

    if os.environ.get("GREENLIGHT_SOURCE", "").strip():
        return True
    try:
        spec = json.loads((EXPECTATIONS_DIR / dataset / "spec.json").read_text())
    except (OSError, ValueError):
        return True  # the whole cycle names the problem
    return isinstance(spec, dict) and bool(spec.get("source"))


def nothing_new(home: Home, dataset: str) -> str | None:
    """One line saying there is nothing to do, or None when a whole cycle must run.

    An unknown dataset is left to the whole cycle, which names the problem."""
    if not (EXPECTATIONS_DIR / dataset / "spec.json").is_file() or _has_source(dataset):
        return None
    if home.landing.is_dir() and (any(is_landed(p) for p in home.landing.iterdir())
                                  or landing_rules.unreported(home.landing)):
        return None  # a FIFO or a directory not yet reported: the cycle says so, once
    if manifest.pending(home.manifest):
        return None
    if _predictions_since(home, last_monitored(home)) or not _labels_unchanged(home, dataset):
        return None
    return f"{dataset}: nothing new in {home.landing} (no landed file, no new labels, " \
           "no served predictions since the last cycle)"
