"""A quarantine reason is one readable line, and `greenlight run` cuts it only for a terminal
(issue 32.11): the corpus gave reasons of up to 592 characters, a file missing columns
repeated the same clause per column, and the line was cut at 209 characters in a file."""

from __future__ import annotations

import io

import pytest

from tasks.data import ingest
from tasks.data.spec import load_spec, suite_path
from tasks.data.validate import MAX_REASON_CHARS, read_suite, validate_frame
from tests import bad_inputs
from tests.test_bad_input_files import outcome

SPEC = load_spec("synthetic")


def test_every_corpus_reason_is_at_most_about_200_characters(tmp_path, monkeypatch):
    monkeypatch.setenv(ingest.MAX_BYTES_ENV, str(bad_inputs.MAX_BYTES))
    longest = max((outcome(bad_inputs.write_case(c, tmp_path)) for c in bad_inputs.CASES
                   if c.quarantined), key=len)
    assert MAX_REASON_CHARS == 200 and len(longest) <= MAX_REASON_CHARS, longest


def test_missing_columns_are_one_clause_and_the_report_has_them_all():
    gone = ["income", "age", "price", "discount", "tenure_months"]
    frame = bad_inputs.base().drop(columns=gone)
    checked = validate_frame(frame, read_suite(suite_path("synthetic")), source="w.csv",
                             time_column=SPEC.time_column)
    reason = checked.reason
    assert len(reason) <= MAX_REASON_CHARS, reason
    assert "missing 5 columns: income, age, price, …" in reason, reason
    assert "is missing" not in reason  # not one clause per column
    report = checked.to_markdown()  # what quarantine/<id>/report.md holds
    assert all(f"| {column} |" in report for column in gone)


def test_a_numpy_value_is_quoted_as_a_number():
    from numpy import float64, int64

    from tasks.data.validate import quote

    assert quote(float64(1.0)) == "1.0" and quote(int64(3)) == "3"


LONG = ("w.csv: 2 of 30 expectations failed: " + "expect_column_values_to_not_be_null(x): "
        "300 rows (100.0%); " * 4 + "and 1 more")


@pytest.mark.parametrize("terminal", [False, True])
def test_the_run_line_is_cut_only_for_a_terminal(tmp_path, monkeypatch, capsys, terminal):
    from cli import main as cli

    summary = {"batches": [], "quarantined": [LONG], "decision": None}
    if terminal:
        stdout = io.StringIO()
        stdout.isatty = lambda: True  # type: ignore[method-assign]
        monkeypatch.setattr("sys.stdout", stdout)
    cli._report(summary, tmp_path, "synthetic", as_json=False)  # noqa: SLF001
    printed = stdout.getvalue() if terminal else capsys.readouterr().out
    assert (LONG in printed) is not terminal, printed
    assert printed.startswith("synthetic: nothing new to decide on; quarantined w.csv: ")
