"""Fast half of the bad-input corpus: every case through read + tidy + GX, no Prefect.

The slow half (`test_bad_input_cycle.py`) runs the same corpus through `greenlight run`.
"""

from __future__ import annotations

import pytest

from tasks.data import ingest
from tasks.data.spec import load_spec, suite_path
from tasks.data.validate import read_suite, validate_frame
from tests import bad_inputs

SPEC = load_spec("synthetic")


def outcome(path) -> str:
    """What the cycle would do with one file: its quarantine reason, or 'accepted'."""
    frame, error = ingest.try_read(path, SPEC)
    if error:
        return error
    checked = validate_frame(frame, read_suite(suite_path("synthetic")), source=path.name,
                             time_column=SPEC.time_column)
    return "accepted" if checked.success else checked.reason


@pytest.mark.parametrize("case", bad_inputs.CASES, ids=[c.name for c in bad_inputs.CASES])
def test_each_bad_input_gets_a_one_line_reason(case, tmp_path, monkeypatch):
    monkeypatch.setenv(ingest.MAX_BYTES_ENV, str(bad_inputs.MAX_BYTES))
    path = bad_inputs.write_case(case, tmp_path)
    before = bad_inputs.sha256(path)
    result = outcome(path)
    assert case.expect in result, result[:300]
    if case.quarantined:
        assert result.startswith(f"{case.file}: ") and "\n" not in result, result
        assert len(result) <= 500, result[:300]  # quoted values are cut (tasks/validate.quote)
    assert bad_inputs.sha256(path) == before  # reading never touches the raw bytes


def test_the_corpus_is_big_enough():
    assert sum(c.quarantined for c in bad_inputs.CASES) >= 25


@pytest.mark.parametrize("name", ["garbage-line-long", "long-category-value"])
def test_a_quoted_value_is_cut_to_about_40_characters(name, tmp_path):
    """A 5,000-character value gave a 5,000-character "one-line" reason (issue 16.10f)."""
    case = next(c for c in bad_inputs.CASES if c.name == name)
    reason = outcome(bad_inputs.write_case(case, tmp_path))
    assert "… (5,000 characters)" in reason, reason[:300]
    assert len(reason) < 300, reason[:300]


def test_quote_keeps_short_values_whole_and_cuts_long_ones():
    from tasks.data.validate import quote

    assert quote("east") == "'east'" and quote(2) == "2"
    assert quote("x" * 41) == f"'{'x' * 40}'… (41 characters)"
    assert "\n" not in quote("a\nb" * 30, marks=False)
