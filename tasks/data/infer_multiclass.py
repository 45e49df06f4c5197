"""`greenlight init` on a target with 3 or more classes (tasks/data/infer.py asks here).

A low-cardinality target, text with up to MAX_TEXT_CLASSES values or integers with up to
MAX_INT_CLASSES, is a multiclass task. The metric proposed follows the class balance, and
the label checks (held for a person, not quarantined: tasks/data/labels.py) bound the class
mix per batch and ask for every class that was in every period of the sample.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

MAX_TEXT_CLASSES = 20
MAX_INT_CLASSES = 10  # more integer values than this look like a count: regression
# The smallest class under this share of an even split (1/K): accuracy flatters a model
# that never predicts it, so macro-F1 (each class weighs the same) is proposed.
BALANCE = 0.5
MIX_FLOOR = 0.05  # the smallest KL-divergence bound: a batch within it is plausible


def is_multiclass(values: pd.Series, numeric: bool, integer: bool) -> bool:
    """A target of 3+ values that reads as classes: text, or a few integers."""
    n = values.nunique()
    return n >= 3 and ((not numeric and n <= MAX_TEXT_CLASSES)
                       or (numeric and integer and n <= MAX_INT_CLASSES))


def classes_of(values: pd.Series) -> list[Any]:
    """The classes in the spec's order (sorted; numbers as numbers)."""
    native = [v.item() if hasattr(v, "item") else v for v in values.dropna().unique()]
    return sorted(native, key=lambda v: (isinstance(v, str), v))


def multiclass_task(values: pd.Series, target: str, numeric: bool
                    ) -> tuple[str, None, str, list[str]]:
    """(task, positive_class, primary_metric, reasons) for a multiclass target."""
    shares = values.astype(str).value_counts(normalize=True)
    k, rarest = len(shares), shares.idxmin()
    kind = "integer codes" if numeric else "text values"
    why = (f"multiclass: {target} has {k} {kind} ({', '.join(map(str, classes_of(values)))})"
           + ("; if they are amounts rather than categories, set task regression, "
              "primary_metric mae and no classes in spec.json" if numeric else ""))
    if float(shares.min()) >= BALANCE / k:
        return "multiclass", None, "accuracy", [
            why, f"accuracy: the classes are balanced enough (the rarest, {rarest!r}, is "
                 f"{shares.min():.0%} of rows; an even split is {1 / k:.0%})"]
    return "multiclass", None, "macro_f1", [
        why, f"macro_f1: the rarest class, {rarest!r}, is only {shares.min():.1%} of rows "
             f"({int((values.astype(str) == rarest).sum()):,}); "
             "accuracy flatters a model that never predicts it, macro-F1 weighs each class "
             "the same"]


def kl(observed: pd.Series, expected: dict[str, float]) -> float:
    """KL(observed || expected) of class shares, as Great Expectations'
    expect_column_kl_divergence_to_be_less_than computes it for a categorical partition."""
    p = observed.astype(str).value_counts(normalize=True)
    return float(sum(p[c] * math.log(p[c] / expected[c]) for c in p.index if c in expected))


def class_mix_checks(periods: list[pd.Series], values: pd.Series, target: str, basis: str,
                     expect: Any) -> tuple[list[dict[str, Any]], str]:
    """The label checks of a multiclass target: its class mix per batch within a KL bound
    twice the widest the sample's periods showed (at least MIX_FLOOR), and every class that
    was in every period present in each batch (a class missing is a hold, as one class is
    for binary). `expect` is infer's expectation builder."""
    classes = classes_of(values)
    shares = values.astype(str).value_counts(normalize=True)
    expected = {str(c): float(shares[str(c)]) for c in classes}
    widest = max((kl(p, expected) for p in periods if len(p)), default=0.0)
    bound = max(MIX_FLOOR, math.ceil(2 * widest * 100) / 100)
    always = [c for c in classes if all((p.astype(str) == str(c)).any() for p in periods)]
    checks = [expect("column_kl_divergence_to_be_less_than", {
        "label": f"class mix of {target} far from the sample's (KL divergence above {bound})",
        "notes": f"Class mix bound, inferred: the KL divergence of each period's mix from "
                 f"the whole sample's ran up to {widest:.3f} in {basis}; twice that (at least "
                 f"{MIX_FLOOR}). A batch outside is held for a person (tasks/data/labels.py), "
                 "not quarantined."},
        column=target, partition_object={
            "values": classes,
            "weights": [round(expected[str(c)], 6) for c in classes]},
        threshold=bound)]
    said = f"class mix of {target} within KL {bound} of the sample's"
    if len(always) >= 2:
        checks.append(expect("column_distinct_values_to_contain_set", {
            "label": f"a class of {target} missing ({', '.join(map(str, always))} expected)",
            "notes": "Label check, inferred: these classes were in every period of the "
                     "sample; a batch without one is held for a person, not quarantined."},
            column=target, value_set=always))
        said += f"; {', '.join(map(str, always))} present in every batch"
    return checks, said


def rarest_share(values: pd.Series) -> float:
    return float(np.min(values.astype(str).value_counts(normalize=True)))
