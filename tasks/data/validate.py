"""Validate: check a landed batch against its dataset's Great Expectations suite.

A failing batch is quarantined, so the outcome must explain itself to a person: one line
for logs and alarms, a table for the quarantine report. GX is imported lazily because its
import costs seconds and most CLI commands never validate anything.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

MAX_IN_REASON = 5  # keep the one-line reason readable in logs and alarm titles
MAX_REASON_CHARS = 200  # the whole line, at most; report.md in quarantine/<id>/ has every failure
MAX_NAMED_COLUMNS = 3  # missing columns a reason names; the rest are counted
QUOTE_LIMIT = 40  # characters of a value a reason quotes (a garbage field can be 5,000)
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_LOCK = threading.Lock()  # one shared GX context; Prefect may call us from several threads


def quote(value: Any, limit: int = QUOTE_LIMIT, *, marks: bool = True) -> str:
    """A value as a one-line reason quotes it: repr'd (or bare, for names), and cut to about
    `limit` characters with its full length said.

    Reasons go to logs, alarm titles and the console; a field of 5,000 characters of garbage
    must not make a 5,000-character "one line". Every reason that quotes a value uses this."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()  # 1.0, not np.float64(1.0)
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(value) if marks else text
    cut = " ".join(text[:limit].split())  # a cut value never breaks the line
    shown = repr(cut) if marks else cut
    return f"{shown}… ({len(text):,} characters)"


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    text: str
    missing_columns: list[str] = field(default_factory=list)


@dataclass
class ValidationOutcome:
    source: str
    success: bool
    evaluated: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """One line naming the file and its problems, for logs, alarms and quarantine."""
        if self.success:
            return f"{self.source}: all {self.evaluated} expectations passed"
        head = f"{self.source}: {len(self.failures)} of {self.evaluated} expectations failed"
        return _fit(" ".join(head.split()), [" ".join(i.split())
                                             for i in _reason_items(self.failures)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "success": self.success,
            "evaluated": self.evaluated,
            "failed": len(self.failures),
            "reason": self.reason,
            "failures": [asdict(f) for f in self.failures],
        }

    def to_markdown(self) -> str:
        if self.success:
            return f"**{self.source}**: all {self.evaluated} expectations passed."
        lines = [
            f"**{self.source}**: {len(self.failures)} of {self.evaluated} expectations failed.",
            "",
            "| expectation | column | unexpected rows | unexpected % | problem |",
            "|---|---|---:|---:|---|",
        ]
        for f in self.failures:
            count = "" if f.unexpected_count is None else str(f.unexpected_count)
            pct = "" if f.unexpected_percent is None else f"{f.unexpected_percent:.2f}"
            problem = f.text.split(": ", 1)[-1].replace("|", "\\|")
            lines.append(f"| `{f.expectation}` | {f.column or ''} | {count} | {pct} | {problem} |")
        return "\n".join(lines)


def _rank(failure: Failure) -> int:
    """Root causes first: a missing column, then a wrong type (which makes range checks on
    the same column fail to evaluate), then the rest, then checks that could not run."""
    if failure.missing_columns:
        return 0
    if failure.expectation == "expect_column_values_to_be_in_type_list":
        return 1
    return 3 if "could not be evaluated" in failure.text else 2


def _fit(head: str, items: list[str]) -> str:
    """`head: item; item; and N more`, at most MAX_IN_REASON items and MAX_REASON_CHARS
    characters: as many whole items as fit, a first item cut with `…` if it alone does not.
    The line goes to logs, alarm titles and the console; report.md holds every failure."""
    shown: list[str] = []
    for n, item in enumerate(items[:MAX_IN_REASON]):
        left = len(items) - n - 1
        tail = f"; and {left} more" if left else ""
        candidate = f"{head}: {'; '.join([*shown, item])}{tail}"
        if len(candidate) <= MAX_REASON_CHARS:
            shown.append(item)
            continue
        if not shown:  # the first problem alone is too long: keep its start
            room = MAX_REASON_CHARS - len(f"{head}: …{tail}")
            shown.append(item[:max(room, 0)].rstrip() + "…")
        break
    more = len(items) - len(shown)
    return f"{head}: {'; '.join(shown)}" + (f"; and {more} more" if more > 0 else "")


def _reason_items(failures: list[Failure]) -> list[str]:
    """A missing column fails every expectation on it; say so once, not once per expectation,
    and several missing columns in one clause, not one clause per column."""
    by_column: dict[str, list[Failure]] = {}
    for f in failures:
        for col in f.missing_columns:
            by_column.setdefault(col, []).append(f)
    items = []
    if len(by_column) == 1:
        ((col, hits),) = by_column.items()
        hits.sort(key=lambda f: f.expectation != "expect_column_to_exist")
        label = hits[0].text.split(": ", 1)[0]
        others = f" and {len(hits) - 1} more" if len(hits) > 1 else ""
        items.append(f"{label}{others}: column {col} is missing")
    elif by_column:
        names = [quote(c, marks=False) for c in by_column]
        shown = ", ".join(names[:MAX_NAMED_COLUMNS]) + (
            ", …" if len(names) > MAX_NAMED_COLUMNS else "")
        items.append(f"missing {len(names)} columns: {shown}")
    rest = [f.text if not by_column or f.expectation != "expect_table_columns_to_match_set"
            else _unsaid_missing(f.text) for f in failures if not f.missing_columns]
    return items + [t for t in rest if t]


def _unsaid_missing(text: str) -> str | None:
    """The column-set check without its `missing: …` part, which the items above already
    say; None when that was all it said."""
    label, _, problem = text.partition(": ")
    parts = [p for p in problem.split("; ") if not p.startswith("missing: ")]
    return f"{label}: {'; '.join(parts)}" if parts else None


def read_suite(path: Path) -> dict:
    """Load a suite JSON; a broken file must stop the run with a line naming it."""
    try:
        suite = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read expectation suite: {exc}".splitlines()[0]) from None
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise ValueError(f"{path}: not an expectation suite (no 'expectations' list)")
    return suite


@contextmanager
def _quiet() -> Iterator[None]:
    """GX logs and warns per call (e.g. about ephemeral stores); what matters is in the outcome.

    Some GX modules set their own logger to INFO, so every GX logger that exists is muted,
    not only the package's."""
    names = ["great_expectations", *(n for n in list(logging.root.manager.loggerDict)
                                     if n.startswith("great_expectations."))]
    loggers = [logging.getLogger(n) for n in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@cache
def _gx() -> tuple[Any, Any]:
    """One ephemeral context and batch definition per process: setup is not free."""
    with _quiet():  # the import creates GX's loggers; the second _quiet mutes them all
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
    with _quiet():
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas("greenlight").add_dataframe_asset("batch")
        return context, asset.add_batch_definition_whole_dataframe("whole")


def _columns_of(kwargs: dict) -> list[str]:
    cols = [kwargs[k] for k in _COLUMN_KWARGS if kwargs.get(k) is not None]
    return [*cols, *kwargs.get("column_list", [])]


def _is_null(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays: not a null scalar
        return False


def _examples(result: dict) -> str:
    values = [c.get("value") for c in result.get("partial_unexpected_counts") or []]
    values = [v for v in values if not _is_null(v)][:3]
    return f", e.g. {', '.join(map(quote, values))}" if values else ""


def _problem(result: dict, raised: str | None, missing: list[str]) -> str:
    """Say what is wrong in words a person fixing the file can act on."""
    if missing:
        return "; ".join(f"column {c} is missing" for c in missing)
    if raised is not None:
        return f"could not be evaluated: {raised}"
    count, pct = result.get("unexpected_count"), result.get("unexpected_percent")
    if count is not None:
        share = f" ({pct:.1f}%)" if pct is not None else ""
        return f"{count} row{'' if count == 1 else 's'}{share}{_examples(result)}"
    mismatched = (result.get("details") or {}).get("mismatched")
    if isinstance(mismatched, dict):
        parts = [f"{k}: {', '.join(quote(c, marks=False) for c in v)}"
                 for k, v in mismatched.items() if v]
        return "; ".join(parts) or "columns do not match"
    if "observed_value" in result:
        return f"observed {quote(result['observed_value'])}"
    return "failed"


def _exception_message(info: dict) -> str | None:
    """GX nests errors per metric, or not, depending on where it failed; flatten both."""
    entries = [info, *(v for v in info.values() if isinstance(v, dict))]
    for entry in entries:
        if entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "error").strip()
            return (message.splitlines() or ["error"])[0][:160]
    return None


def _failure(res: Any, frame_columns: set) -> Failure:
    config = res.expectation_config
    kwargs = dict(config.kwargs)
    result = dict(res.result or {})
    raised = _exception_message(res.exception_info or {})
    columns = _columns_of(kwargs)
    missing = [c for c in columns if c not in frame_columns]
    label = f"{config.type}({', '.join(map(str, columns))})" if columns else config.type
    label = (config.meta or {}).get("label", label)  # a check added at run time names itself
    problem = _problem(result, raised, missing)
    count, pct = result.get("unexpected_count"), result.get("unexpected_percent")
    return Failure(
        expectation=config.type,
        column=str(columns[0]) if columns else None,
        unexpected_count=None if count is None else int(count),
        unexpected_percent=None if pct is None else float(pct),
        text=f"{label}: {problem}",
        missing_columns=[str(c) for c in missing],
    )


def _build_suite(name: str, suite: dict) -> Any:
    """GX logs and silently drops an expectation it cannot build; we refuse such a suite."""
    import great_expectations as gx

    expectations = suite.get("expectations", [])
    try:
        built = gx.ExpectationSuite(name=name, expectations=expectations,
                                    meta=suite.get("meta") or {})
    except Exception as exc:  # GX raises several types for a malformed expectation
        detail = " ".join(str(exc).split())[:300]
        raise ValueError(f"suite {name}: invalid expectation: {detail}") from None
    if len(built.expectations) < len(expectations):
        bad = [e for e in expectations
               if not gx.ExpectationSuite(name=name, expectations=[e]).expectations]
        kinds = ", ".join(str(e.get("type") if isinstance(e, dict) else e) for e in bad)
        raise ValueError(f"suite {name}: unknown or invalid expectation: {kinds}")
    return built


# Expectations on the target's distribution (its share, mean, spread, classes): a batch that
# breaks one has plausible rows but implausible labels. It is held for a person, not
# quarantined (tasks/data/labels.py): the rows may be right and the labels a bug, or the world.
LABEL_SHARE_CHECKS = frozenset({
    "expect_column_mean_to_be_between", "expect_column_median_to_be_between",
    "expect_column_stdev_to_be_between", "expect_column_proportion_of_unique_values_to_be_between",
    "expect_column_unique_value_count_to_be_between", "expect_column_distinct_values_to_equal_set",
    "expect_column_distinct_values_to_contain_set", "expect_column_most_common_value_to_be_in_set",
    "expect_column_kl_divergence_to_be_less_than"})


def split_label_checks(suite: dict, target: str) -> tuple[dict, dict]:
    """The suite without its label-share checks (validated at intake: a failure
    quarantines) and those checks alone (a failure holds the batch; `tasks.data.labels`)."""
    def on_target(e: dict) -> bool:
        return e.get("type") in LABEL_SHARE_CHECKS and (e.get("kwargs") or {}).get(
            "column") == target

    expectations = suite.get("expectations", [])
    return ({**suite, "expectations": [e for e in expectations if not on_target(e)]},
            {**suite, "name": f"{suite.get('name') or 'suite'}-labels",
             "expectations": [e for e in expectations if on_target(e)]})


FUTURE_TOLERANCE = pd.Timedelta(days=1)  # clock skew and time zones, not next week's data


def not_in_future(time_column: str, now: pd.Timestamp | None = None) -> dict:
    """The one expectation a static suite cannot hold: no row is stamped after now.

    A row from the future is a clock or time-zone bug upstream; trained on, it would put
    itself in the gate window (the newest rows) and judge every challenger."""
    bound = (now or pd.Timestamp.now(tz="UTC").tz_localize(None)) + FUTURE_TOLERANCE
    return {"type": "expect_column_values_to_be_between",
            "kwargs": {"column": time_column, "max_value": bound.isoformat()},
            "meta": {"label": f"timestamps in the future ({time_column} after "
                              f"{bound:%Y-%m-%d %H:%M})",
                     "notes": "added at validation time: no row may be stamped after now"}}


def with_time_checks(suite: dict, time_column: str | None) -> dict:
    """The suite plus the checks bound to now (`not_in_future`), fixed once: partitions of
    one batch validated apart must be judged against the same "now"."""
    if time_column is None:
        return suite
    return {**suite, "expectations": [*suite.get("expectations", []),
                                      not_in_future(time_column)]}


def validate_frame(frame: pd.DataFrame, suite: dict, *, source: str,
                   time_column: str | None = None) -> ValidationOutcome:
    """Validate a frame; expectation errors (e.g. a missing column) become failures, not raises.

    With `time_column`, rows stamped in the future fail too (see `not_in_future`).
    A broken suite is our bug, not the batch's, so it raises ValueError instead of failing
    the batch (quarantining good data for a typo in a suite would be worse).
    """
    suite = with_time_checks(suite, time_column)
    name = suite.get("name") or "suite"
    with _LOCK, _quiet():
        context, batch_definition = _gx()
        gx_suite = context.suites.add_or_update(_build_suite(name, suite))
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(gx_suite)
    columns = set(frame.columns)
    failures = [_failure(r, columns) for r in result.results if not r.success]
    failures.sort(key=_rank)  # the root cause first
    return ValidationOutcome(source, bool(result.success), len(result.results), failures)
