"""`greenlight status` as a person reads it, on a state whose data tries to break it.

A manifest and a promotion log written as the cycle writes them: a quarantine reason that
quotes markup (`[/]`), a file name with markup in it, a held batch whose reason names its
file and a numpy value, an approval with its reason, a rollback. Rendered by the real
command at 80 and 120 columns (issue 32.1, 32.9; issue 31 goal 5).
"""

from __future__ import annotations

import json

import pytest

from core import jsonl
from tasks.data import manifest
from tests.test_idle import _cli

MARKUP_FILE = "b2 [bold red]markup [blink]x.csv"
MARKUP_REASON = ("2026-W10.csv: 1 of 30 expectations failed: "
                 "expect_column_values_to_be_in_set(market): 10 rows (0.3%), e.g. '[/]'")
HELD = "2026-W22-ones.csv"
HELD_REASON = (f"{HELD}: labels implausible (all 3000 labelled rows have class 1; "
               "expect_column_mean_to_be_between(converted): observed np.float64(1.0)): "
               "held from training and gating until released")
MODEL = "greenlight-synthetic"


def _batch(home, batch_id: str, file: str, at: str, **fields) -> None:
    jsonl.append(home.manifest, {"id": batch_id, "at": at, "file": file, "rows": 3000,
                                 **fields})


def _state(home) -> None:
    _batch(home, "a" * 16, "2026-W02.csv", "2026-12-01T10:00:00+00:00", status="accepted",
           decision="bootstrap", registered_version=1, promoted_version=1)
    _batch(home, "b" * 16, "2026-W07-new-market-applicants.csv", "2026-12-01T10:05:00+00:00",
           status="accepted", decision="retrain", drift_share=0.57, label_score=0.012,
           champion_metric=0.801, challenger_metric=0.842, gate_champion_metric=0.79,
           registered_version=2, promoted_version=2)
    _batch(home, "c" * 16, "2026-W08.csv", "2026-12-01T10:10:00+00:00", status="accepted",
           decision="no action", drift_share=0.0, champion_metric=0.70)
    _batch(home, "d" * 16, "2026-W10.csv", "2026-12-01T10:15:00+00:00", status="quarantined",
           reason=MARKUP_REASON)
    _batch(home, "e" * 16, MARKUP_FILE, "2026-12-01T10:20:00+00:00", status="quarantined",
           reason=f"{MARKUP_FILE}: 1 of 30 expectations failed: [errno 28] [/] [bold]x")
    _batch(home, "f" * 16, HELD, "2026-12-01T10:25:00+00:00", status="accepted")
    _batch(home, "f" * 16, HELD, "2026-12-01T10:25:10+00:00", status=manifest.HELD,
           held_reason=HELD_REASON)  # as manifest.hold writes it
    _batch(home, "g" * 16, "2026-W23.csv", "2026-12-01T10:30:00+00:00", status="accepted",
           decision="retrain", drift_share=0.3, champion_metric=0.78,
           challenger_metric=0.80, gate_champion_metric=0.79, registered_version=3,
           approval="rejected", approval_by="bob", approval_reason="too risky [/]")
    log = home.root / "promotions.jsonl"
    for record in (
            {"at": "2026-12-01T10:00:30+00:00", "action": "promote", "from": None, "to": 1},
            {"at": "2026-12-01T10:05:30+00:00", "action": "promote", "from": 1, "to": 2},
            {"at": "2026-12-01T10:10:30+00:00", "action": "auto-rollback", "from": 2, "to": 1,
             "by": "greenlight", "reason": "worse than v1 on 2026-W08", "batches": ["c" * 16]},
            {"at": "2026-12-01T10:27:00+00:00", "action": "rollback", "from": 1, "to": 2,
             "by": "alice", "reason": "manual rollback"}):
        jsonl.append(log, {"model": MODEL, "previous": None, "metrics": {}, **record})
    _registry(home, versions=3, champion=2)


def _registry(home, versions: int, champion: int) -> None:
    """The versions and the alias the log names, in the home's real MLflow store: status
    checks the registry against the log (issue 33), so a log with no registry behind it
    would be refused as a lost store before a row is drawn."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=home.tracking_uri)
    client.create_registered_model(MODEL)
    for _ in range(versions):
        client.create_model_version(MODEL, source=str(home.root / "no-model"))
    client.set_registered_model_alias(MODEL, "champion", str(champion))


@pytest.fixture
def shown(home):
    _state(home)
    return lambda columns: _cli(["status"], home.root, COLUMNS=str(columns))


@pytest.mark.parametrize("columns", [80, 120])
def test_status_prints_markup_from_data_as_written(shown, columns):
    done = shown(columns)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr and done.stderr == ""
    out = done.stdout
    assert MARKUP_FILE in out  # in the table and under it, brackets and all
    assert f"quarantined {MARKUP_REASON}" in out
    assert "[errno 28] [/] [bold]x" in out


@pytest.mark.parametrize("columns", [80, 120])
def test_status_fits_the_terminal_and_never_cuts_a_batch_name(shown, columns):
    out = shown(columns).stdout
    table = [ln for ln in out.splitlines() if "│" in ln or "┃" in ln]
    assert table and max(len(ln) for ln in table) <= columns
    for name in ("2026-W07-new-market-applicants.csv", MARKUP_FILE, "2026-W02.csv"):
        assert any(name in ln for ln in table), (name, out)
    assert "…" not in "".join(table)  # no cell is cut, none is a lone `2026…`
    decisions = "".join(table)
    assert "retrain" in decisions and "no action" in decisions and "bootstrap" in decisions


def test_status_says_the_approval_reason_and_the_held_file_once_without_numpy(shown):
    out = shown(120).stdout
    flat = " ".join(" ".join(ln.strip("│ ").split()) for ln in out.splitlines())
    assert "rejected by bob: too risky [/]" in flat, out
    held = next(ln for ln in out.splitlines() if ln.startswith("held "))
    assert held.count(HELD) == 1, held
    assert "np.float64" not in out and "observed 1.0" in held


@pytest.mark.parametrize("columns", [80, 120])
def test_status_shows_rollbacks_where_they_happened(shown, columns):
    """v2 was promoted on W07 and rolled back after W08; a person rolled forward to v2
    between the held W22 and W23. The table must not imply v2 served from W07 on."""
    out = shown(columns).stdout
    rows = [ln for ln in out.splitlines() if "│" in ln]

    def where(text: str) -> int:
        return next(i for i, ln in enumerate(rows) if text in ln)

    assert where("2026-W08.csv") < where("auto-rollback v2") < where("2026-W10.csv")
    assert where(HELD) < where(" rollback v1 ->") < where("2026-W23.csv")


def test_status_json_keeps_its_shape(shown, home):
    done = _cli(["status", "--json"], home.root)
    state = json.loads(done.stdout[:done.stdout.rindex("}") + 1])
    files = [b["file"] for b in state["batches"]]
    assert MARKUP_FILE in files and len(state["promotions"]) == 4


def test_the_last_resort_line_keeps_brackets_and_never_raises(tmp_path, monkeypatch, capsys):
    """An exception quoting `[/]` and `[errno 28]`, on a state dir whose error log cannot be
    written (a full disk): one line on stderr, exit 1, no second traceback."""
    from cli import main as cli

    def broken() -> None:
        raise OSError(28, "No space left on device: closing tag '[/]' [errno 28] [bold]x")

    monkeypatch.setenv("GREENLIGHT_HOME", str(tmp_path / "gl"))
    (tmp_path / "gl" / "logs" / "errors.log").mkdir(parents=True)  # cannot be opened to append
    monkeypatch.setattr(cli, "app", broken)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    err = capsys.readouterr().err
    assert exited.value.code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "closing tag '[/]' [errno 28] [bold]x" in err and "traceback not kept" in err
