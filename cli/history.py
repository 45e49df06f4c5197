"""`greenlight history`: every move of `@champion`, read from the promotion log alone.

Who moved the champion, when, why and on what evidence: promotions, approvals, refreshes,
canaries, rollbacks, auto-rollbacks and moves made outside greenlight, oldest first, as a
table, JSON or CSV. Nothing here imports MLflow: the log is the history (on an
object-store home, its one-object-per-record folder, read through core/jsonl).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from registry import history

COLUMNS = ("at", "kind", "from", "to", "by", "reason", "evidence")


def _log(dataset: str) -> list[dict[str, Any]]:
    """The promotion log's records about a dataset's model (the spec names the model)."""
    from tasks.data.home import Home
    from tasks.data.spec import load_spec

    name = load_spec(dataset).name
    return history.read(Home.from_env().root / "promotions.jsonl", f"greenlight-{name}")


def logged_champion(dataset: str) -> int | None:
    """The champion by the promotion log: a cheap read, before MLflow is imported, so a
    command records what the operator saw when it started."""
    try:
        return history.champion(_log(dataset))
    except ValueError:  # an unknown dataset: said in one line once the registry is opened
        return None


def since(text: str | None) -> datetime | None:
    """`--since` as an aware time: an ISO date or time (UTC when no zone is given)."""
    if not text:
        return None
    found = datetime.fromisoformat(text)
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def rows(dataset: str, after: datetime | None) -> list[dict[str, Any]]:
    return history.rows(_log(dataset), after)


def as_csv(found: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*COLUMNS, "batches"], extrasaction="ignore")
    writer.writeheader()
    for row in found:
        writer.writerow({**row, "batches": " ".join(row["batches"])})
    return out.getvalue()


def as_json(found: list[dict[str, Any]]) -> str:
    return json.dumps(found, indent=2, default=str) + "\n"


def table(found: list[dict[str, Any]], width: int | None) -> Any:
    """A rich table; every cell is text (never markup): reasons come from people and data."""
    from rich.table import Table
    from rich.text import Text

    shown = Table(title=f"{len(found)} move(s) of @champion", title_justify="left")
    for name in COLUMNS:
        shown.add_column(name, overflow="fold",
                         no_wrap=name in ("from", "to", "kind") or (name == "at" and
                                                                     (width or 200) >= 120))
    for row in found:
        shown.add_row(*(Text("" if row[c] is None else
                             f"v{row[c]}" if c in ("from", "to") else str(row[c]))
                        for c in COLUMNS))
    return shown
