"""Console text that is never read as markup: the one place a line for a person is built.

Rich parses `[...]` in every plain string it prints: a quarantine reason quoting the value
`[/]` raised MarkupError (and crashed `greenlight status` on every later call), a file named
`b2 [bold red]x.csv` lost its brackets, a disk-full line lost `[errno 28]`. So nothing that
comes from data, a file name or an exception is given to rich as a string: it goes through
`text` (or `line`), which builds a `rich.text.Text` whose only styles are the ones we name.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

Part = str | tuple[str, str] | Text  # plain text, (text, style), or a Text built here


def text(*parts: Part | Any) -> Text:
    """Pieces as one Text, each shown exactly as written: a str (or any value, via str())
    is literal text, `(text, style)` is literal text in a style we chose."""
    out = Text()
    for part in parts:
        if isinstance(part, Text):
            out.append_text(part)
        elif isinstance(part, tuple):
            out.append(str(part[0]), style=part[1])
        else:
            out.append(str(part))
    return out


def line(console: Console, *parts: Part | Any, **options: Any) -> None:
    """Print one line of `text(*parts)`: no markup, no highlighting of numbers or paths."""
    options.setdefault("highlight", False)
    console.print(text(*parts), **options)
