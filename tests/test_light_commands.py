"""Every command pays only for what it does: the registry commands load MLflow, not the cycle."""

from __future__ import annotations

from tests.test_idle import _cli

# What a registry command must never import: the cycle's libraries (MLflow itself loads pandas).
CYCLE_ONLY = ["evidently", "great_expectations", "lightgbm", "prefect", "sklearn"]


def _imported(stdout: str) -> list[str]:
    line = next(x for x in stdout.splitlines() if x.startswith("IMPORTED "))
    return eval(line.removeprefix("IMPORTED "))  # the probe printed a list of names


def test_registry_commands_do_not_import_the_cycle(home):
    for args in (["status"], ["status", "--json"], ["rollback", "--by", "pytest"]):
        done = _cli(args, home.root)
        assert done.returncode in (0, 2), done.stderr  # rollback: nothing to roll back to
        assert not set(_imported(done.stdout)) & set(CYCLE_ONLY), (args, done.stdout)


def test_help_imports_nothing_heavy(home):
    done = _cli(["--help"], home.root)
    assert done.returncode == 0 and "status" in done.stdout
    assert _imported(done.stdout) == []


def test_an_unknown_dataset_is_one_line_for_status(home):
    done = _cli(["status", "--dataset", "nope"], home.root)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert "no such dataset spec" in done.stderr
