"""Which package modules the fast tier leaves untouched: the check behind "it touches every
module" (docs/index.md, "The tests in tiers").

Run the fast tier under coverage, child processes included (the CLI tests run commands in
their own process), then this. coverage is not a project dependency: install it in your own
venv for the check.

    uv pip install coverage
    uv run python -m tests.tier_helpers --rc > /tmp/covrc
    uv run coverage run --rcfile=/tmp/covrc -m pytest -q -p no:cacheprovider
    uv run coverage combine --rcfile=/tmp/covrc
    uv run coverage json --rcfile=/tmp/covrc -o /tmp/fast.json
    uv run python -m tests.tier_helpers /tmp/fast.json

A module counts as exercised when a line inside one of its functions ran, not only its
definitions at import. Exit status 1 when any module is untouched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PACKAGES = ("flows", "tasks", "registry", "serving")
REPO = Path(__file__).resolve().parents[1]
COVERAGE_RC = f"""[run]
source = {",".join(PACKAGES)}
patch = subprocess
parallel = true
"""


def package_modules() -> list[str]:
    """Every package module with code in it (an `__init__.py` that is empty or only a
    docstring has nothing to exercise; `exercised` skips those by their statement count)."""
    return sorted(str(p.relative_to(REPO)) for pkg in PACKAGES for p in (REPO / pkg).glob("*.py")
                  if p.read_text().strip())


def exercised(report: dict, module: str) -> bool:
    """Whether a line inside a function of `module` ran (coverage's per-function data)."""
    entry = report["files"].get(module)
    if entry is None:
        return False
    if entry["summary"]["num_statements"] == 0:  # a docstring only: nothing to run
        return True
    functions = {k: v for k, v in entry.get("functions", {}).items() if k}
    if not functions:  # constants only: importing it is using it
        return entry["summary"]["covered_lines"] > 0
    return any(f["summary"]["covered_lines"] > 0 for f in functions.values())


def untouched(report: dict) -> list[str]:
    return [m for m in package_modules() if not exercised(report, m)]


def main(argv: list[str]) -> int:
    if argv[1:] == ["--rc"]:
        print(COVERAGE_RC, end="")
        return 0
    report = json.loads(Path(argv[1]).read_text())
    missing = untouched(report)
    for module in missing:
        print(f"untouched by the fast tier: {module}")
    print(f"{len(package_modules()) - len(missing)} of {len(package_modules())} modules "
          "exercised by the fast tier")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
