"""The help, the README and docs/index.md say what the code does (issue 32.12)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def _help(*args: str, columns: int = 80) -> str:
    done = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": str(columns)})
    assert done.exit_code == 0, done.output
    return done.output


def test_each_command_is_described_on_one_line_at_80_columns():
    panel = _help().split("Commands")[1]
    rows = [ln.strip("│ ").rstrip() for ln in panel.splitlines() if ln.startswith("│")]
    assert len(rows) == len(COMMANDS), rows  # no description runs onto a second line
    assert sorted(r.split()[0] for r in rows) == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_bool_type_and_no_stray_space(command):
    text = _help(command, columns=200)
    assert "<bool>" not in text
    assert not re.search(r"\w \.(\s|$)", text), text  # "rows ." where `[default: x]` was eaten


def test_set_points_to_the_configuration_page_and_names_every_section():
    from cli.settings import SECTIONS

    text = " ".join(_help("run", columns=200).split())
    assert "docs/configuration.md" in text and "README's" not in text
    assert all(section in text for section in SECTIONS)


def test_run_help_says_the_exit_codes_and_the_approval_timeout():
    text = " ".join(_help("run", columns=200).split())
    assert "Exit 0: the cycle ran, also when it quarantined or held a batch" in text
    assert "--approval-timeout" in text and "[default: 86400]" in text


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_the_docs_say_what_a_bad_input_exits_with(page):
    text = " ".join((ROOT / page).read_text().split())
    assert "with exit code 2" not in text  # it exits 0: the cycle ran and quarantined it
    assert "jq -e '[.quarantined, .held] | add | length == 0'" in text
    assert "approval_timeout_seconds=3600" in text
    # the demo's figures are one dated run's, and say that they move
    assert "+14.73%" in text and "move a little" in text and "+13.5%" not in text


def test_index_counts_its_tiers_and_has_no_stale_times():
    text = (ROOT / "docs" / "index.md").read_text()
    assert "two tiers" not in text and "three tiers" in text
    assert "1.5 minutes" not in text and "427 passed" not in text


def test_the_demo_says_where_to_look_with_home_and_a_tracking_server(tmp_path, monkeypatch):
    from cli.demo import where_to_look
    from tasks.data.home import Home

    home = Home.from_env(tmp_path / "gl")
    state = {"tracking_uri": "http://127.0.0.1:5000", "model": "greenlight-synthetic"}
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    lines = [" ".join(str(p if isinstance(p, str) else p[0]) for p in said)
             for said in where_to_look(state, home, "synthetic")]
    text = "\n".join(lines)
    assert "--backend-store-uri http" not in text and "http://127.0.0.1:5000" in text
    assert f"greenlight status --dataset synthetic --home {home.root}" in text
