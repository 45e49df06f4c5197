"""Terminal views of the state: the same status object the `--json` flag prints."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _num(value: Any, fmt: str = ".3f") -> str:
    return "" if value is None else format(value, fmt)


def batch_table(state: dict[str, Any], title: str = "Batches") -> Table:
    """One row per batch: validation, drift, the champion on the batch, decision and gate."""
    table = Table(title=title, header_style="bold")
    for col, justify in [("batch", "left"), ("rows", "right"), ("valid", "center"),
                         ("drift share", "right"), ("label drift", "right"),
                         ("champion on batch", "right"), ("decision", "left"),
                         ("challenger (gate)", "right"), ("champion (gate)", "right"),
                         ("promoted", "right")]:
        table.add_column(col, justify=justify)
    for b in state["batches"]:
        ok = b["status"] == "accepted"  # "held" and "quarantined" were not trained on
        decision = b.get("decision") or ""
        if ok and b.get("registered_version") and not b.get("promoted_version"):
            decision += " (registered, not promoted)"
        elif ok and b.get("no_champion"):
            decision += " (no champion)"
        elif ok and decision == "retrain" and not b.get("registered_version"):
            decision += f" (gate: {(b.get('gate') or 'none').split(':')[0]})"
        if ok and b.get("approval"):  # who said what, where the policy asked a person
            decision += f", {b['approval']}" + (f" by {b['approval_by']}"
                                                 if b.get("approval_by") else "")
        valid = "[red]no[/]" if b["status"] == "quarantined" else "[green]yes[/]"
        table.add_row(
            b["file"], _num(b.get("rows"), "d"), valid,
            _num(b.get("drift_share"), ".2f"), _num(b.get("label_score")),
            _num(b.get("champion_metric")),
            decision if ok else _not_taken(b["status"]),
            _num(b.get("challenger_metric")), _num(b.get("gate_champion_metric")),
            f"v{b['promoted_version']}" if b.get("promoted_version") else "",
        )
    return table


def _not_taken(status: str) -> str:
    """A batch kept out of training: held (its labels wait for a person) is not quarantined."""
    return "[yellow]held[/]" if status == "held" else "[red]quarantined[/]"


def print_status(state: dict[str, Any], console: Console) -> None:
    champion, previous = state["champion"], state["previous"]
    console.print(f"[bold]{state['model']}[/]  champion: "
                  f"{'v' + str(champion) if champion else 'none'}  previous: "
                  f"{'v' + str(previous) if previous else 'none'}  versions: "
                  f"{len(state['versions'])}  store: {state['tracking_uri']}")
    console.print(batch_table(state))
    print_quarantine(state, console)


def print_quarantine(state: dict[str, Any], console: Console) -> None:
    for b in state["batches"]:
        if b["status"] == "accepted" and b.get("no_champion") and not state.get("champion"):
            # why the data gave no first champion yet: text, never console markup
            console.print(f"[red]no champion[/] {escape(b['file'] or b['id'])}: "
                          f"{escape(b['no_champion'])}", highlight=False)
        if b["status"] == "quarantined":
            console.print(f"[red]quarantined[/] {b['reason']}", highlight=False)
        elif b["status"] == "held":
            console.print(f"[yellow]held[/] {b['file']}: {b.get('held_reason')}; to train on "
                          f"it: greenlight release {b['id'][:12]} --by NAME --reason TEXT",
                          highlight=False)
