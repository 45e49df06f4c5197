"""The data stage's modules import one another in one direction: no module imports one that
imports it back (directly or through others, lazily inside a function included), and no two
modules are named one letter apart."""

from __future__ import annotations

import ast
import difflib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tasks" / "data"


def _imports(path: Path) -> set[str]:
    """The `tasks.data` modules `path` imports, anywhere in the file."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tasks.data":
                out.update(alias.name for alias in node.names)
            elif node.module.startswith("tasks.data."):
                out.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[2] for a in node.names
                       if a.name.startswith("tasks.data."))
    return out & {p.stem for p in DATA.glob("*.py")}


def _cycle_through(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the module names along it, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_tasks_data_has_no_import_circle():
    graph = {p.stem: _imports(p) - {p.stem} for p in DATA.glob("*.py")}
    assert _cycle_through(graph) is None, " -> ".join(_cycle_through(graph) or [])


def test_no_two_data_modules_are_named_one_letter_apart():
    """source.py (the interface) and sources.py (the replay) were told apart by an `s`."""
    names = sorted(p.stem for p in DATA.glob("*.py") if p.stem != "__init__")
    close = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
             if difflib.SequenceMatcher(None, a, b).ratio() > 0.9]
    assert close == []
