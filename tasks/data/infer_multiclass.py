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
    return divergence(observed.astype(str).value_counts(normalize=True).to_dict(), expected)


def divergence(p: dict[str, float], q: dict[str, float]) -> float:
    """KL(p || q) of two class mixes keyed by class text (a class q lacks is left out, as
    `kl` always did: the class value set refuses it first)."""
    return float(sum(v * math.log(v / q[c]) for c, v in p.items() if v > 0 and c in q))


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


# --- `greenlight init --update` on a multiclass dataset (tasks/data/infer.py `merge`) -----
MIX_CHECK = "expect_column_kl_divergence_to_be_less_than"
PRESENT_CHECK = "expect_column_distinct_values_to_contain_set"


def merged_classes(old: list[Any], seen: list[Any]) -> list[Any]:
    """The spec's classes after an update: the old ones in their order (a class the newer
    sample lacks is kept: a registered model still scores it, and it may come back), then
    the sample's new ones appended. Appended, not sorted in: each model's probability
    columns follow `classes`, so a registered champion's columns keep their places."""
    known = {str(c) for c in old}
    return [*old, *(c for c in seen if str(c) not in known)]


def _mix(kwargs: dict[str, Any]) -> dict[str, float]:
    part = kwargs.get("partition_object") or {}
    return {str(v): float(w) for v, w in zip(part.get("values") or [],
                                             part.get("weights") or [], strict=False)}


def widen_mix(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The class-mix check's kwargs widened to hold the newer sample's mix as well.

    Unchanged when the old check already holds it (no new class, and the new sample's own
    slack plus its distance from the old mix is within the old bound): a re-run on the
    same sample changes nothing. Else the expected mix is the two samples' mixes averaged
    (a new class gets half its new share, so a batch holding it is no longer an infinite
    divergence; a class gone from the sample keeps half its old share, so its return is
    finite too), and the bound the larger of each sample's bound plus its mix's divergence
    from the average: batches like either sample's stay within it."""
    p_old, p_new = _mix(old), _mix(new)
    t_old, t_new = old.get("threshold"), new.get("threshold") or 0.0
    if set(p_new) <= set(p_old) and (t_old is None or
                                     t_new + divergence(p_new, p_old) <= t_old):
        return old
    part_old, part_new = old.get("partition_object") or {}, new.get("partition_object") or {}
    values = merged_classes(list(part_old.get("values") or []), list(part_new.get("values")
                                                                     or []))
    mix = {str(v): (p_old.get(str(v), 0.0) + p_new.get(str(v), 0.0)) / 2 for v in values}
    out = {**old, "partition_object": {"values": values,
                                       "weights": [round(mix[str(v)], 6) for v in values]}}
    if t_old is not None:
        wider = max(t_old + divergence(p_old, mix), t_new + divergence(p_new, mix))
        out["threshold"] = max(t_old, math.ceil(wider * 100) / 100)
    return out


def settle_class_checks(expectations: list[dict[str, Any]], produced: dict[tuple, Any],
                        target: str, seen: list[Any]) -> list[dict[str, Any]]:
    """The merged suite's class checks on `target`: the class mix widened (`widen_mix`),
    and a class the newer sample lacks (or did not have in every period) no longer
    required in every batch, or every batch would be held for it; the check goes when no
    class is left to require."""
    present = produced.get((PRESENT_CHECK, target))
    always = {str(c) for c in ((present or {}).get("kwargs") or {}).get("value_set", seen)}
    out = []
    for e in expectations:
        kwargs = e.get("kwargs") or {}
        if kwargs.get("column") != target:
            out.append(e)
        elif e.get("type") == MIX_CHECK and (MIX_CHECK, target) in produced:
            out.append({**e, "kwargs": widen_mix(kwargs, produced[(MIX_CHECK, target)]
                                                 .get("kwargs") or {})})
        elif e.get("type") == PRESENT_CHECK:
            keep = [c for c in kwargs.get("value_set") or [] if str(c) in always]
            if keep:
                out.append({**e, "kwargs": {**kwargs, "value_set": keep}})
        else:
            out.append(e)
    return out


def class_lines(target: str, old_spec: dict[str, Any], new_spec: dict[str, Any],
                seen: list[Any], old_required: list[Any], new_required: list[Any],
                changing: bool) -> list[str]:
    """`init --update`'s lines about the classes: one for the classes the newer sample adds,
    one for the classes it lacks (kept) when the files change (`changing`: other lines) or
    stop requiring them; a re-run on the same sample says nothing and changes nothing."""
    old, new = old_spec.get("classes") or [], new_spec.get("classes") or []
    added = [c for c in new if str(c) not in {str(o) for o in old}]
    gone = [c for c in old if str(c) not in {str(v) for v in seen}]
    lines = []
    if added:
        lines.append(f"{target}: new class {', '.join(map(repr, added))}: added to the spec's "
                     "classes after the existing ones (a registered model's probability "
                     "columns keep their places), to the class value set and to the "
                     "class-mix bound")
    unrequired = [c for c in old_required if str(c) not in {str(n) for n in new_required}]
    if unrequired or (gone and (added or changing)):
        kept = (f"class {', '.join(map(repr, gone))} not in this sample: kept in the spec's "
                "classes and the value set" if gone else "")
        others = [c for c in unrequired if str(c) not in {str(g) for g in gone}]
        freed = ("no longer required in every batch" if unrequired and not others else
                 f"{', '.join(map(repr, others))} no longer required in every batch"
                 if others else "")
        lines.append(f"{target}: " + "; ".join(x for x in (kept, freed) if x))
    return lines


def mix_line(target: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    """The class-mix check's change in words (diff's line for it)."""
    return (f"{target}: class-mix bound KL {before.get('threshold')} -> "
            f"{after.get('threshold')}, the expected mix now the old and new samples' "
            f"averaged ({', '.join(f'{k} {v:.2f}' for k, v in _mix(after).items())})")
