"""Infer a dataset's spec and Great Expectations suite from a sample: `greenlight init`.

A new user has a CSV, not a spec. Writing `expectations/<name>/spec.json` and `suite.json`
by hand means learning both formats from the shipped datasets; here a sample is enough.
The idea is TFDV's `infer_schema` (TFX SchemaGen): read the columns, their types and
nullability, the value sets of low-cardinality text columns and, unlike TFDV, numeric ranges
with a margin, then let a person review the result. Every decision is returned as one line
in words, so the command can say what it chose and why.

The suite uses only the expectation types and JSON shape of the shipped suites, including
their label checks on the target (a mean or class-presence bound, and a stdev floor for
regression), which `tasks.data.validate.split_label_checks` routes to the label hold of
`tasks.data.labels` instead of quarantine.

Run again on a newer sample, `diff` says what changed and `merge` widens the existing suite
(ranges, value sets, new columns) while keeping what a person edited by hand.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data.infer_multiclass import (
    MAX_TEXT_CLASSES,
    MIX_CHECK,
    PRESENT_CHECK,
    class_lines,
    class_mix_checks,
    classes_of,
    is_multiclass,
    merged_classes,
    mix_line,
    multiclass_task,
    settle_class_checks,
)
from tasks.data.ranges import (  # noqa: F401 (numeric_bounds: infer's name for it too)
    MARGIN,
    numeric_bounds,
    outlier_line,
    outliers,
)
from tasks.data.ranges import fmt as _fmt
from tasks.data.ranges import is_integer as _is_integer
from tasks.data.ranges import nice as _nice

# TFDV's default `max_string_domain_size`: text columns with more values get no value set.
MAX_DOMAIN = 100
# The target's upper bound gets a whole span of room: a target that grows (demand doubling,
# as in Bike Sharing) is drift for the loop to learn, not a data bug to quarantine.
TARGET_HEADROOM = 1.0
# Below this share of the rarer class, accuracy flatters a model that always says "no".
RARE_CLASS_SHARE = 0.2
# A numeric feature this correlated with the target may be known only with the outcome.
LEAK_CORRELATION = 0.9
# Slices the gate guards one by one: too many values and each slice is too thin to judge.
MAX_SLICE_VALUES = 10
MIN_PERIOD_ROWS = 20  # a period with fewer labelled rows says little about a label share
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

NUMBER_TYPES = ["int64", "float64"]  # a CSV int column with an empty cell reads as float
TEXT_TYPES = ["str"]  # GX checks object columns value by value, as Python types
# Expectation types `infer` writes on a column: on a re-run, one of these that the new
# inference no longer produces was dropped for a reason (nulls, too many values) and goes;
# any other expectation was added by a person and stays.
INFERRED_TYPES = frozenset({
    "expect_column_values_to_be_in_type_list", "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between", "expect_column_values_to_be_in_set",
    "expect_column_mean_to_be_between", "expect_column_stdev_to_be_between",
    "expect_column_distinct_values_to_equal_set"})
SPEC_KEYS_KEPT = ("task", "primary_metric", "positive_class", "training", "label_key",
                  "slice_feature")


class InitError(ValueError):
    """Bad input to `init`: one line naming the file or column and the problem (exit 2)."""


@dataclass
class Inference:
    """What `infer` produced: the two JSON documents and the reasons, one line each."""

    spec: dict[str, Any]
    suite: dict[str, Any]
    decisions: list[tuple[str, str]] = field(default_factory=list)  # (topic, sentence)
    review: list[str] = field(default_factory=list)  # what a person should look at
    # Rows of the sample holding an extreme outlier (tasks/data/ranges.py): named in
    # `review`, and left out of the sample's validation.
    outlier_rows: list[Any] = field(default_factory=list)
    # A classification target's classes in the sample: `merge` keeps a multiclass spec's
    # old classes and appends the new ones (infer_multiclass.merged_classes).
    classes_seen: list[Any] = field(default_factory=list)


# --- reading ---------------------------------------------------------------------------
def read_sample(path: Path, time_column: str) -> pd.DataFrame:
    """The sample as intake would see it (`tasks.data.ingest.read_batch`): CSV read as UTF-8 and
    the time column parsed with `pd.to_datetime`, so the inferred types are the ones the
    suite will later be checked against. Any problem is one `InitError` line."""
    if not path.exists():
        raise InitError(f"{path}: no such file")
    if not path.is_file():
        raise InitError(f"{path}: not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = (pd.read_parquet(path) if path.name.endswith(".parquet")
                     else pd.read_csv(path, encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise InitError(f"{path}: not UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise InitError(f"{path}: empty file (no header and no rows)") from None
    except Exception as exc:  # pandas and pyarrow raise many types for unreadable input
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InitError(f"{path}: cannot be read as a table: {detail}") from None
    if frame.empty:
        raise InitError(f"{path}: no rows, only a header: a sample needs data")
    _require(path, frame, time_column, "time")
    frame[time_column] = parse_times(path, frame[time_column])
    return frame


def _require(path: Path, frame: pd.DataFrame, column: str, role: str) -> None:
    if column not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:12])) + (", …" if frame.shape[1] > 12 else "")
        raise InitError(f"{path}: no {role} column {column!r} (columns: {shown})")


def parse_times(path: Path, raw: pd.Series) -> pd.Series:
    """Timestamps, refusing what intake would refuse or misread: unparseable values, plain
    numbers (pandas reads 17 as 1970-01-01 00:00:00.000000017) and time-zone offsets (the
    suites expect naive timestamps; mixed offsets fail the type check at intake)."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw
    elif pd.api.types.is_numeric_dtype(raw):
        raise InitError(f"{path}: column {raw.name!r} holds numbers, not timestamps "
                        "(write them as dates, e.g. 2024-01-31 or 2024-01-31T13:00:00)")
    else:
        from tasks.data.ingest import coerce_times

        try:
            parsed, bad = coerce_times(raw)
        except (ValueError, TypeError) as exc:  # mixed offsets in some pandas versions
            raise InitError(f"{path}: column {raw.name!r}: timestamps cannot be parsed: "
                            f"{str(exc).splitlines()[0]}") from None
        if len(bad):
            examples = ", ".join(repr(str(v)[:40]) for v in bad.astype(str).unique()[:3])
            raise InitError(f"{path}: {len(bad)} of {len(raw)} values in column {raw.name!r} "
                            f"are not timestamps, e.g. {examples}")
    if not pd.api.types.is_datetime64_dtype(parsed):
        raise InitError(f"{path}: column {raw.name!r} has time-zone offsets; greenlight "
                        "compares naive timestamps (write them in UTC without the offset)")
    if parsed.isna().all():
        raise InitError(f"{path}: column {raw.name!r} has no timestamps, only empty cells")
    return parsed


# --- small helpers ---------------------------------------------------------------------
def _native(value: Any) -> Any:
    """numpy scalars to Python ones: JSON and pydantic want plain values."""
    return value.item() if hasattr(value, "item") else value


def _expect(kind: str, meta: dict | None = None, **kwargs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": f"expect_{kind}", "kwargs": kwargs}
    if meta:
        out["meta"] = meta
    return out


def _periods(frame: pd.DataFrame, time_column: str, column: str
             ) -> tuple[list[pd.Series], str]:
    """The sample cut into weeks, or months when weeks are too thin (daily rows): a
    stand-in for the batches the label checks will judge one at a time. Falls back to the
    whole sample, and says so, when it spans fewer than two such periods."""
    for freq, word in (("W", "weeks"), ("M", "months")):
        groups = frame.groupby(frame[time_column].dt.to_period(freq), sort=True)[column]
        parts = [g for _, g in groups if len(g) >= MIN_PERIOD_ROWS]
        if len(parts) >= 2:
            return parts, f"{len(parts)} {word} of the sample"
    return [frame[column]], ("the whole sample (fewer than 2 weeks or months of "
                             f"{MIN_PERIOD_ROWS} labelled rows: review these bounds)")


# --- task and target -------------------------------------------------------------------
def infer_task(frame: pd.DataFrame, target: str, source: str
               ) -> tuple[str, str | int | None, str, list[str]]:
    """(task, positive_class, primary_metric, reasons): two values make a classification,
    numbers with more make a regression; anything else is refused with one line."""
    values = frame[target].dropna()
    distinct = values.unique()
    if len(values) == 0:
        raise InitError(f"{source}: target column {target!r} has no values, only empty cells")
    if len(distinct) == 1:
        raise InitError(f"{source}: target column {target!r} has one value only "
                        f"({_native(distinct[0])!r}): there is nothing to learn")
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if len(distinct) == 2:
        shares = values.astype(str).value_counts(normalize=True)
        if set(map(str, distinct)) == {"0", "1"}:
            positive: str | int = 1
            why = "1 is the positive class (the target is 0/1)"
        else:
            rare = sorted(shares.index, key=lambda v: (shares[v], v))[0]
            positive = int(rare) if numeric and _is_integer(values) else rare
            why = f"{positive!r} is the positive class (the rarer one, {shares[str(rare)]:.0%})"
        minority = float(shares.min())
        metric = "accuracy" if minority >= RARE_CLASS_SHARE else "roc_auc"
        metric_why = (f"accuracy (the rarer class is {minority:.0%} of rows)"
                      if metric == "accuracy" else
                      f"roc_auc: the rarer class is only {minority:.0%} of rows, where "
                      "accuracy flatters a model that never predicts it")
        return "classification", positive, metric, [
            f"classification: {target} has exactly two values; {why}", metric_why]
    if is_multiclass(values, numeric, numeric and _is_integer(values)):
        return multiclass_task(values, target, numeric)
    if not numeric:
        shown = ", ".join(repr(str(v)[:20]) for v in distinct[:4])
        raise InitError(f"{source}: target column {target!r} has {len(distinct)} text values "
                        f"({shown}{', …' if len(distinct) > 4 else ''}); greenlight classifies "
                        f"up to {MAX_TEXT_CLASSES} classes: map the target to fewer first")
    reasons = [f"regression: {target} is numeric with {len(distinct):,} distinct values "
               "(classification needs exactly two)",
               "mae: in the target's own units, and an outlier does not dominate it"]
    if len(distinct) <= 10:
        reasons[0] += "; with so few values it may be ordinal classes, modelled here as numbers"
    return "regression", None, "mae", reasons


def label_checks(frame: pd.DataFrame, target: str, time_column: str, task: str,
                 positive: Any) -> tuple[list[dict[str, Any]], str]:
    """The target's share/mean/spread bounds, as the shipped suites have them. They are
    judged per batch, so they come from the sample's weekly (or monthly) values, widened: a batch
    outside is held for a person (tasks/data/labels.py), so a bound should only catch the
    implausible (one class, a constant, a share far outside anything seen)."""
    labelled = frame.loc[frame[target].notna(), [time_column, target]]
    weeks, basis = _periods(labelled, time_column, target)
    values = labelled[target]
    if task == "multiclass":
        return class_mix_checks(weeks, values, target, basis, _expect)
    if task == "classification":
        classes = sorted(map(_native, values.unique()), key=str)
        if set(map(str, classes)) == {"0", "1"}:
            shares = [float((w == 1).mean()) for w in weeks]
            low = math.floor(min(shares) / 2 * 100) / 100
            high = math.ceil((max(shares) + (1 - max(shares)) / 2) * 100) / 100
            return [_expect("column_mean_to_be_between", {
                "label": f"share of {target}=1 outside {low:.2f}..{high:.2f}",
                "notes": f"Label share bound, inferred: shares per period ran {min(shares):.2f}.."
                         f"{max(shares):.2f} in {basis}; half the lowest up to halfway to 1 "
                         "from the highest. A batch outside is held for a person "
                         "(tasks/data/labels.py), not quarantined."},
                column=target, min_value=low, max_value=high)], (
                f"share of {target}=1 per batch within {low:.2f}..{high:.2f} "
                f"(seen {min(shares):.2f}..{max(shares):.2f} per period)")
        return [_expect("column_distinct_values_to_equal_set", {
            "label": f"both classes {' and '.join(map(str, classes))} present in {target}",
            "notes": "Label check, inferred: a batch of one class is held for a person "
                     "(tasks/data/labels.py), not quarantined."},
            column=target, value_set=classes)], (
            f"both classes present in every batch ({', '.join(map(str, classes))})")
    means = [float(w.mean()) for w in weeks]
    stdevs = [float(w.std()) for w in weeks if len(w) > 1]
    spread = max(max(means) - min(means), abs(float(values.mean())) / 2, 1e-9)
    step = 10.0 ** (math.floor(math.log10(spread)) - 1)
    low, high = _nice(min(means) - spread, step, False), _nice(max(means) + spread, step, True)
    if float(values.min()) >= 0:
        low = max(low, 0)
    checks = [_expect("column_mean_to_be_between", {
        "label": f"mean of {target} outside {_fmt(low)}..{_fmt(high)}",
        "notes": f"Regression target, inferred: means per period ran {min(means):.4g}.."
                 f"{max(means):.4g} in {basis}, widened by their spread. A batch outside is "
                 "held for a person (tasks/data/labels.py)."},
        column=target, min_value=low, max_value=high)]
    said = f"mean of {target} per batch within {_fmt(low)}..{_fmt(high)}"
    floor = min(stdevs) / 10 if stdevs else 0.0
    if floor > 0:
        floor = float(f"{floor:.2g}")
        checks.append(_expect("column_stdev_to_be_between", {
            "label": f"{target} (nearly) constant: stdev below {_fmt(floor)}",
            "notes": f"Inferred: stdevs per period ran from {min(stdevs):.4g}; a tenth of that "
                     "is a floor only a (nearly) constant target breaks. Held, not "
                     "quarantined."},
            column=target, min_value=floor, max_value=None))
        said += f"; stdev at least {_fmt(floor)}"
    return checks, said


# --- the inference -----------------------------------------------------------------------
def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "text"


def _type_list(series: pd.Series, kind: str) -> list[str]:
    if kind == "number":
        return NUMBER_TYPES + ([str(series.dtype)] if str(series.dtype) not in NUMBER_TYPES
                               else [])
    if kind in ("bool", "datetime"):
        return [str(series.dtype)]
    return TEXT_TYPES


def _suspects(frame: pd.DataFrame, features: list[str], target: str, time_column: str,
              task: str, positive: Any) -> list[str]:
    """Columns a person should look at twice: row ids (they encode time) and features
    that track the target so closely they may be known only with the outcome."""
    out = []
    times = frame[time_column]
    order = frame.assign(_t=times).sort_values("_t", kind="stable")
    y = frame[target]
    if task == "classification":
        y = (y.astype(str) == str(positive)).astype(float).where(frame[target].notna())
    for col in features:
        s = frame[col]
        if _kind(s) == "number" and _is_integer(s) and s.is_unique and (
                order[col].is_monotonic_increasing):
            out.append(f"{col}: unique and increasing with time, like a row id: as a feature "
                       f"it only encodes time; rerun with --exclude {col}")
        elif _kind(s) == "text" and s.nunique() > MAX_DOMAIN:
            unique = " (every value unique: an id?)" if s.is_unique else ""
            out.append(f"{col}: text with {s.nunique():,} values{unique}; as a categorical "
                       f"feature it rarely generalises: consider --exclude {col}")
        if _kind(s) == "number" and pd.api.types.is_numeric_dtype(y):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                corr = s.corr(y)
            if corr == corr and abs(corr) >= LEAK_CORRELATION:
                out.append(f"{col}: correlates {corr:+.2f} with {target}: if it is known only "
                           f"with the outcome (a part of it, a later status), rerun with "
                           f"--exclude {col}")
    return out


def infer(frame: pd.DataFrame, *, name: str, target: str, time_column: str, source: str,
          exclude: tuple[str, ...] | list[str] = ()) -> Inference:
    """The spec and suite of a sample (`frame`, time column already parsed), with every
    decision and every point to review in words. `source` names the sample in errors."""
    if not NAME_PATTERN.fullmatch(name):
        raise InitError(f"{name!r}: a dataset name is letters, digits, '_' and '-' (it names "
                        "a folder and a registered model)")
    path = Path(source)
    _require(path, frame, target, "target")
    if target == time_column:
        raise InitError(f"{source}: the target and the time column are both {target!r}")
    for col in exclude:
        _require(path, frame, col, "--exclude")
        if col in (target, time_column):
            raise InitError(f"{source}: --exclude {col}: it is the "
                            f"{'target' if col == target else 'time column'}")
    task, positive, metric, task_why = infer_task(frame, target, source)
    features = [str(c) for c in frame.columns if c not in (time_column, target, *exclude)]
    if not features:
        raise InitError(f"{source}: no feature columns left besides {time_column!r} and "
                        f"{target!r}")
    columns = [time_column, *features, target]
    kinds = {c: _kind(frame[c]) for c in columns}
    kinds[time_column] = "datetime"
    categorical = [c for c in features if kinds[c] in ("text", "bool")]

    expectations = [
        _expect("table_columns_to_match_set", column_set=columns, exact_match=True),
        _expect("table_row_count_to_be_between", min_value=1, max_value=None)]
    expectations += [_expect("column_values_to_be_in_type_list", column=c,
                             type_list=_type_list(frame[c], kinds[c])) for c in columns]
    nulls = {c: int(frame[c].isna().sum()) for c in columns}
    expectations += [_expect("column_values_to_not_be_null", column=c)
                     for c in columns if nulls[c] == 0]
    ranges, sets, wide, far, far_rows = [], [], [], [], set()
    for c in [*features, target]:
        s = frame[c]
        classification_target = c == target and task in ("classification", "multiclass")
        if kinds[c] == "number" and s.notna().any() and not classification_target:
            regression_target = c == target  # a classification target gets a value set
            low, high, why = numeric_bounds(
                s, headroom=TARGET_HEADROOM if regression_target else MARGIN)
            if regression_target:
                why += f"; {TARGET_HEADROOM:.0%} headroom above for growth"
            expectations.append(_expect("column_values_to_be_between",
                                        {"notes": f"Inferred: {why}."},
                                        column=c, min_value=low, max_value=high))
            ranges.append(f"{c} {_fmt(low)}..{_fmt(high)}")
            found = outliers(s, low, high)
            if len(found):
                far.append(outlier_line(c, found, low, high))
                far_rows.update(found.index)
        distinct = s.dropna().unique()
        if kinds[c] in ("text", "bool") or classification_target:
            if len(distinct) <= MAX_DOMAIN:
                value_set = sorted(map(_native, distinct), key=str)
                expectations.append(_expect("column_values_to_be_in_set", column=c,
                                            value_set=value_set))
                sets.append(f"{c} ({len(value_set)})")
            else:
                wide.append(c)
    checks, label_said = label_checks(frame, target, time_column, task, positive)
    expectations += checks

    slices = [c for c in categorical if 2 <= frame[c].nunique() <= MAX_SLICE_VALUES]
    slice_feature = slices[0] if slices else None
    times = frame[time_column]
    spec = {"name": name, "time_column": time_column, "target": target, "task": task,
            "features": features, "categorical_features": categorical,
            "primary_metric": metric, "positive_class": positive,
            "training": {"half_life_days": None, "window_days": None},
            "label_key": None, "slice_feature": slice_feature}
    if task == "multiclass":  # the model's probability columns, in this order
        spec["classes"] = classes_of(frame[target])
    suite = {"name": name, "expectations": expectations, "meta": {
        "dataset": name,
        "notes": f"Inferred by `greenlight init` from {path.name} ({len(frame):,} rows, "
                 f"{times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}); review it "
                 "(expectations/README.md). Ranges are the 0.1%..99.9% quantiles widened "
                 f"by {MARGIN:.0%} of their span (tasks/data/ranges.py), value sets are the "
                 "values seen. Types are "
                 "pandas dtype names, except text columns: GX checks object columns value "
                 "by value, so they list the Python type 'str'. Numbers allow float64 as "
                 "well as int64 because a CSV column with an empty cell reads as float; the "
                 "not-null checks catch that."}}

    numeric = [c for c in features if kinds[c] == "number"]
    with_nulls = [f"{c} ({nulls[c]:,})" for c in columns if nulls[c]]
    decisions = [
        ("sample", f"{len(frame):,} rows of {path.name}, {times.min():%Y-%m-%d %H:%M} to "
                   f"{times.max():%Y-%m-%d %H:%M}"),
        ("task", task_why[0]),
        ("metric", task_why[1]),
        ("features", f"{len(features)}: {', '.join(features)}"
                     + (f"; left out: {', '.join(exclude)}" if exclude else "")),
        ("categorical", (f"{', '.join(categorical)} (text columns); " if categorical else
                         "none (no text columns); ")
         + "numbers stay numerical, codes included, as in the shipped bike_sharing spec"),
        ("ranges", (f"{len(ranges)} numeric columns: 0.1%..99.9% quantiles ± {MARGIN:.0%} "
                    "of their span, no sign rule on a measured quantity (0 floors only for "
                    "integer counts that reach 0), kept at 0..1 for shares: "
                    f"{', '.join(ranges)}") if ranges
         else "none (no numeric columns)"),
        ("value sets", (f"the values seen, for text columns with at most {MAX_DOMAIN}: "
                        f"{', '.join(sets)}" if sets else "none")
         + (f"; none for {', '.join(wide)} (more than {MAX_DOMAIN} values)" if wide else "")),
        ("nulls", "none in the sample: every column must be complete" if not with_nulls else
         f"allowed where the sample had them: {', '.join(with_nulls)}; the rest must be "
         "complete"),
        ("labels", f"{label_said} (a batch outside is held for a person, not quarantined)"),
        ("slice", f"{slice_feature}: the gate also guards each of its values"
         if slice_feature else f"none (no text feature with 2 to {MAX_SLICE_VALUES} values)"),
        ("label key", f"none: late labels join on {time_column}"),
        ("training", "no default half-life or window: set training.* in spec.json if "
                     "there is too little history to backtest a recipe"),
    ]
    review = far + _suspects(frame, features, target, time_column, task, positive)
    if task in ("classification", "multiclass"):
        counts = frame[target].dropna().astype(str).value_counts()
        if counts.min() < MIN_PERIOD_ROWS:
            review.append(f"{target}: class {counts.idxmin()!r} has only {counts.min()} rows: "
                          "too few to learn from or to gate on; is this the right target?")
    if times.duplicated().any():
        review.append(f"{time_column}: {int(times.duplicated().sum()):,} rows repeat a "
                      "timestamp: if labels arrive later, set label_key to a column that is "
                      "unique per row")
    if numeric and ranges:
        review.append(f"ranges come from {len(frame):,} rows: a legitimate value outside "
                      "quarantines its batch; widen the bounds you know to be wider in "
                      "suite.json")
    if sets:
        review.append("value sets: a value not seen here quarantines its batch; add the "
                      "values you know are coming (a new market, a new product)")
    seen = classes_of(frame[target]) if task in ("classification", "multiclass") else []
    return Inference(spec, suite, decisions, review, sorted(far_rows), seen)


# --- re-running on a newer sample --------------------------------------------------------
def _key(e: dict[str, Any]) -> tuple[str, str | None]:
    return e.get("type", ""), (e.get("kwargs") or {}).get("column")


def _widen(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """One expectation of the existing suite, widened just enough to hold the new one's
    observations; its notes and meta are kept (they may be a person's)."""
    kwargs = dict(old.get("kwargs") or {})
    nk = new.get("kwargs") or {}
    kind = old.get("type")
    if kind in ("expect_column_values_to_be_between", "expect_column_mean_to_be_between",
                "expect_column_stdev_to_be_between"):
        for bound, pick in (("min_value", min), ("max_value", max)):
            a, b = kwargs.get(bound), nk.get(bound)
            kwargs[bound] = None if a is None or b is None else pick(a, b)
    elif kind in ("expect_column_values_to_be_in_set", "expect_column_values_to_be_in_type_list",
                  "expect_column_distinct_values_to_equal_set"):
        field_name = "type_list" if "type_list" in kwargs else "value_set"
        seen = list(kwargs.get(field_name) or [])
        kwargs[field_name] = seen + [v for v in nk.get(field_name) or [] if v not in seen]
    elif kind == "expect_table_columns_to_match_set":
        kwargs["column_set"] = nk.get("column_set")
    return {**old, "kwargs": kwargs}


def merge(old_spec: dict[str, Any], old_suite: dict[str, Any], new: Inference
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The existing spec and suite widened by a newer sample's inference: ranges and sets
    grow, columns follow the sample, checks the sample can no longer meet (a not-null on a
    column with nulls now) go, and whatever a person added or chose is kept."""
    columns = set(new.suite["expectations"][0]["kwargs"]["column_set"])
    old_columns = {old_spec.get("time_column"), old_spec.get("target"),
                   *old_spec.get("features", [])}
    produced = {_key(e): e for e in new.suite["expectations"]}
    old_by_key = {_key(e): e for e in old_suite.get("expectations", [])}
    # A check the old files lacked on a column they had would tighten them (a not-null
    # where the old sample had nulls): widening never adds one; new columns get all theirs.
    merged = [(_widen(old_by_key[k], e) if k in old_by_key else e) for k, e in produced.items()
              if k in old_by_key or k[1] is None or k[1] not in old_columns]
    merged += [e for k, e in old_by_key.items() if k not in produced
               and e.get("type") not in INFERRED_TYPES
               and (k[1] is None or k[1] in columns)]
    spec = {**new.spec, **{k: old_spec[k] for k in SPEC_KEYS_KEPT if k in old_spec}}
    if spec.get("slice_feature") not in (None, *new.spec["features"]):
        spec["slice_feature"] = None
    if spec.get("label_key") not in (None, *columns):
        spec["label_key"] = None
    if spec.get("task") == "multiclass" and old_spec.get("classes"):  # infer_multiclass.py
        spec["classes"] = merged_classes(old_spec["classes"], new.classes_seen)
        merged = settle_class_checks(merged, produced, spec["target"], new.classes_seen)
    return spec, {**old_suite, "expectations": merged}


def _describe(kwargs: dict[str, Any]) -> str:
    if "value_set" in kwargs:
        return ", ".join(map(repr, kwargs["value_set"]))
    if "type_list" in kwargs:
        return ", ".join(kwargs["type_list"])
    return f"{_fmt(kwargs.get('min_value'))}..{_fmt(kwargs.get('max_value'))}"


def diff(old_spec: dict[str, Any], old_suite: dict[str, Any], new_spec: dict[str, Any],
         new_suite: dict[str, Any], seen: list[Any] | None = None) -> list[str]:
    """What would change, one line each, in words: columns added or removed, ranges
    widened, new values, checks dropped, spec fields changed; for a multiclass target,
    the classes the sample (`seen`: its classes) adds or lacks first."""
    lines = []
    old_cols = set(old_spec.get("features", [])) | {old_spec.get("time_column"),
                                                     old_spec.get("target")}
    new_cols = set(new_spec["features"]) | {new_spec["time_column"], new_spec["target"]}
    lines += [f"added column {c}" for c in new_spec["features"] if c not in old_cols]
    lines += [f"removed column {c}" for c in sorted(old_cols - new_cols, key=str)]
    for key in ("time_column", "target", *SPEC_KEYS_KEPT, "categorical_features"):
        if old_spec.get(key) != new_spec.get(key):
            lines.append(f"spec {key}: {old_spec.get(key)!r} -> {new_spec.get(key)!r}")
    old_by_key = {_key(e): e for e in old_suite.get("expectations", [])}
    new_by_key = {_key(e): e for e in new_suite.get("expectations", [])}
    for key, e in new_by_key.items():
        kind, column = key
        short = kind.removeprefix("expect_")
        if key not in old_by_key:
            if column in old_cols:
                lines.append(f"{column}: new check {short} ({_describe(e['kwargs'])})")
            continue
        before, after = old_by_key[key].get("kwargs") or {}, e.get("kwargs") or {}
        if before == after or kind in ("expect_table_columns_to_match_set", PRESENT_CHECK):
            continue  # the required classes: class_lines below
        if kind == MIX_CHECK:
            lines.append(mix_line(column, before, after))
            continue
        if kind == "expect_column_values_to_be_in_set" and column == new_spec["target"] \
                and new_spec.get("task") == "multiclass":
            continue  # a new class: class_lines below says it once
        if "value_set" in after or "type_list" in after:
            name = "value_set" if "value_set" in after else "type_list"
            added = [v for v in after[name] if v not in (before.get(name) or [])]
            what = "new values" if name == "value_set" else "new types"
            if added:
                lines.append(f"{column}: {what} {', '.join(map(repr, added))}")
        else:
            lines.append(f"{column}: {short} {_describe(before)} widens to {_describe(after)}")
    for key in old_by_key:
        if key not in new_by_key and key[1] in new_cols:
            lines.append(f"{key[1]}: drops {key[0].removeprefix('expect_')} (the sample "
                         "no longer meets it)")
    if new_spec.get("task") == "multiclass" and old_spec.get("classes"):
        target = new_spec["target"]
        required = [(by.get((PRESENT_CHECK, target)) or {}).get("kwargs", {}).get("value_set")
                    or [] for by in (old_by_key, new_by_key)]
        lines = class_lines(target, old_spec, new_spec, seen or [], *required,
                            changing=bool(lines)) + lines
    return lines


# --- files -------------------------------------------------------------------------------
def paths(root: Path, name: str) -> tuple[Path, Path]:
    """Where `tasks.data.spec.load_spec` and `suite_path` look, under `root`."""
    return root / name / "spec.json", root / name / "suite.json"


def read_existing(root: Path, name: str) -> tuple[dict, dict] | None:
    """The dataset's current spec and suite, or None when NAME is new; a broken pair is
    one line naming the file."""
    spec_path, suite_path = paths(root, name)
    if not spec_path.exists() and not suite_path.exists():
        return None
    out = []
    for path in (spec_path, suite_path):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InitError(f"{path}: cannot read the existing file: "
                            f"{str(exc).splitlines()[0]} (fix or remove it)") from None
    return out[0], out[1]


def write(root: Path, name: str, spec: dict[str, Any], suite: dict[str, Any]
          ) -> tuple[Path, Path]:
    """Write both files, each atomically (a reader never sees half a suite)."""
    from core.files import replacing

    spec_path, suite_path = paths(root, name)
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    for path, doc in ((spec_path, spec), (suite_path, suite)):
        with replacing(path) as tmp:
            Path(tmp).write_text(json.dumps(doc, indent=2) + "\n")
    return spec_path, suite_path


def check_spec(spec: dict[str, Any], source: str) -> None:
    """The spec must load as `tasks.data.spec.DatasetSpec` does, or the loop cannot read it."""
    from tasks.data.spec import DatasetSpec

    try:
        DatasetSpec.model_validate(spec)
    except ValueError as exc:
        raise InitError(f"{source}: the inferred spec is invalid: "
                        f"{str(exc).splitlines()[0]}") from None


# --- the whole command -------------------------------------------------------------------
@dataclass
class InitResult:
    """What `greenlight init` did, for the CLI to print; `exit_code` 0 written or up to
    date, 1 differences found and not written (or the sample fails a hand-added check)."""

    inference: Inference
    spec_path: Path
    suite_path: Path
    existed: bool
    changes: list[str]
    written: bool
    validation: str
    current: str | None = None  # the existing suite's verdict on the new sample
    exit_code: int = 0

    def lines(self, update_flag: str = "--update") -> list[str]:
        """What a person reads: the decisions, what to review, and what happened."""
        name = self.inference.spec["name"]
        out = [f"{name}: inferred from {self.inference.decisions[0][1]}"]
        width = max(len(t) for t, _ in self.inference.decisions[1:])
        out += [f"  {topic:<{width}}  {text}" for topic, text in self.inference.decisions[1:]]
        if self.inference.review:
            out.append("review:")
            out += [f"  - {line}" for line in self.inference.review]
        if self.existed:
            out.append(f"{self.spec_path.parent} exists; {self.current}")
            if not self.changes:
                out.append("no change: the existing spec and suite already cover this sample; "
                           "nothing written")
            else:
                out.append(f"changes against the existing files ({len(self.changes)}):")
                out += [f"  - {line}" for line in self.changes]
                out.append(f"wrote {self.spec_path} and {self.suite_path.name} (widened; "
                           "hand edits kept)" if self.written else
                           f"not written: rerun with {update_flag} to widen the existing "
                           "files (hand edits are kept)")
        elif self.written:
            out.append(f"wrote {self.spec_path} and {self.suite_path.name}")
        out.append(f"validated the sample with tasks/data/validate.py: {self.validation}")
        return out


def init_dataset(name: str, data: Path, *, target: str, time_column: str, root: Path,
                 exclude: tuple[str, ...] | list[str] = (), update: bool = False
                 ) -> InitResult:
    """Infer, compare with what exists, validate with the project's own validation, and
    write only a new dataset or, with `update`, a widened one. Bad input raises InitError."""
    from tasks.data.validate import validate_frame

    frame = read_sample(data, time_column)
    inference = infer(frame, name=name, target=target, time_column=time_column,
                      source=str(data), exclude=exclude)
    check_spec(inference.spec, str(data))
    spec_path, suite_path = paths(root, name)
    existing = read_existing(root, name)
    spec, suite, changes, current = inference.spec, inference.suite, [], None
    if existing is not None:
        old_spec, old_suite = existing
        for key, given in (("target", target), ("time_column", time_column)):
            if old_spec.get(key) != given:
                raise InitError(f"{spec_path}: {key} is {old_spec.get(key)!r}, not {given!r}; "
                                "use another NAME or remove the folder to start over")
        spec, suite = merge(old_spec, old_suite, inference)
        check_spec(spec, str(spec_path))
        changes = diff(old_spec, old_suite, spec, suite, inference.classes_seen)
        old_columns = [c for c in [old_spec.get("time_column"), *old_spec.get("features", []),
                                   old_spec.get("target")] if c in frame.columns]
        before = validate_frame(frame[old_columns], old_suite, source=data.name,
                                time_column=time_column)
        current = ("the existing suite accepts this sample" if before.success else
                   f"the existing suite would quarantine this sample: {before.reason}")
    columns = [spec["time_column"], *spec["features"], spec["target"]]
    kept = frame.drop(index=inference.outlier_rows)  # named for review above
    checked = validate_frame(kept[columns], suite, source=data.name, time_column=time_column)
    left_out = (f" (less the {len(inference.outlier_rows):,} row(s) with an extreme "
                "outlier, listed for review)") if inference.outlier_rows else ""
    validation = checked.reason if not checked.success else (
        f"{data.name}{left_out} passes all {checked.evaluated} expectations "
        "(the suite's and the no-future-timestamps check)")
    write_now = checked.success and (existing is None or (update and bool(changes)))
    if write_now:
        write(root, name, spec, suite)
    code = 0 if checked.success and (existing is None or not changes or update) else 1
    return InitResult(inference, spec_path, suite_path, existing is not None, changes,
                      write_now, validation, current, code)
