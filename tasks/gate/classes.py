"""The gate's class checks for a multiclass window (K >= 3 classes).

A binary window needs both classes (tasks/gate/gate.py `_class_shortfall`). With K classes
some are rare by nature (Bike Sharing's heavy rain is 3 hours in two years), so a window
is judged when at least two classes reach the floor; each class below it is named as
"not enough evidence" for that class, and its rows still count in the metric.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.training.multiclass import class_codes, per_class_recall


def class_counts(rows: pd.DataFrame, spec: DatasetSpec) -> dict[str, int]:
    """Rows of each of the spec's classes (0 for a class absent), in the spec's order."""
    codes = class_codes(rows, spec)
    counts = np.bincount(codes[codes >= 0], minlength=len(spec.classes or []))
    return {str(c): int(n) for c, n in zip(spec.classes or [], counts, strict=True)}


def multiclass_shortfall(rows: pd.DataFrame, spec: DatasetSpec, floor: int) -> str | None:
    """Why a multiclass window cannot judge: fewer than two classes with `floor` rows."""
    counts = class_counts(rows, spec)
    if sum(n >= floor for n in counts.values()) >= 2:
        return None
    shown = ", ".join(f"{c}: {n}" for c, n in counts.items())
    return (f"the gate window has rows per class {{{shown}}}; at least two classes need "
            f"{floor} each")


def thin_classes(rows: pd.DataFrame, spec: DatasetSpec, floor: int) -> str:
    """'; not enough evidence for class X (n rows < floor)' for each class under the floor
    (a multiclass window), else ''."""
    if spec.task != "multiclass" or not len(rows):
        return ""
    thin = [f"{c} ({n} rows)" for c, n in class_counts(rows, spec).items() if n < floor]
    return f"; not enough evidence for class {', '.join(thin)} (< {floor} rows)" if thin else ""


def single_class(train: pd.DataFrame, spec: DatasetSpec) -> str | None:
    """Why no first multiclass champion can be made: its training rows hold one class."""
    present = [c for c, n in class_counts(train, spec).items() if n]
    if len(present) >= 2:
        return None
    return (f"no first champion: the {len(train)} training rows hold "
            f"{'only class ' + present[0] if present else 'no known class'} of "
            f"{spec.target}; a classifier needs two or more: land more batches and run again")


def same_everywhere(scores: np.ndarray) -> bool:
    """Every row gets the same probabilities (a multiclass model that learned nothing)."""
    return bool(len(scores)) and bool(np.all(np.std(scores, axis=0) <= 1e-9))


def recall_change(rows: pd.DataFrame, spec: DatasetSpec, old: np.ndarray,
                  new: np.ndarray) -> str:
    """'; recall fell most on class X (champion 0.62 -> challenger 0.48)' for a multiclass
    window, where a class's recall is lower under the challenger, else '': the per-class
    figure a reviewer needs (the approval form and the card show the gate's reason)."""
    if spec.task != "multiclass" or not len(rows) or np.ndim(new) != 2:
        return ""
    y, classes = class_codes(rows, spec), list(spec.classes or [])
    before = per_class_recall(old, y, classes)
    after = per_class_recall(new, y, classes)
    drops = {c: after[c] - before[c] for c in before if c in after}
    if not drops or min(drops.values()) >= 0:
        return ""
    worst = min(drops, key=lambda c: drops[c])
    return (f"; recall fell most on class {worst} (champion {before[worst]:.2f} -> "
            f"challenger {after[worst]:.2f})")


def class_notes(rows: pd.DataFrame, spec: DatasetSpec, floor: int, old: np.ndarray,
                new: np.ndarray) -> str:
    """What the gate's reason adds for a multiclass window: the thin classes
    (`thin_classes`) and the class whose recall fell most (`recall_change`)."""
    return thin_classes(rows, spec, floor) + recall_change(rows, spec, old, new)
