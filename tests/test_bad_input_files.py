"""Fast half of the bad-input corpus: every case through read + tidy + GX, no Prefect.

The slow half (`test_bad_input_cycle.py`) runs the same corpus through `greenlight run`.
"""

from __future__ import annotations

import pytest

from tasks import ingest
from tasks.spec import load_spec, suite_path
from tasks.validate import read_suite, validate_frame
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
    assert case.expect in result, result
    if case.quarantined:
        assert result.startswith(f"{case.file}: ") and "\n" not in result, result
    assert bad_inputs.sha256(path) == before  # reading never touches the raw bytes


def test_the_corpus_is_big_enough():
    assert sum(c.quarantined for c in bad_inputs.CASES) >= 25
