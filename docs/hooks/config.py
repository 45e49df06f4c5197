"""mkdocs hook: the configuration tables, generated from the code at build time.

`docs/configuration.md` (and any page) may hold these markers, each on a line of its own;
the build replaces them with tables read from the code, so the manual cannot drift from it:

- `<!-- greenlight:settings -->`: every key of the typed flow parameters
  (`flows/params.py`: the sections `cli.settings.SECTIONS` names), with its type, limits,
  default and description: what `--set SECTION.KEY=VALUE` and `greenlight.toml` take, and
  what the Prefect UI's form shows. A field without a description fails the build.
- `<!-- greenlight:flow-parameters -->`: the cycle flow's own parameters (the signature of
  `flows.cycle.cycle`, read with `ast`, so Prefect is not imported), with the notes below.
  A parameter without a note fails the build.
- `<!-- greenlight:policies -->`: what each promotion policy does with each gate verdict,
  by calling `flows.policies.route`.

`tests/test_docs.py` renders the same functions, so a new parameter without a description
fails the fast tier too.
"""

from __future__ import annotations

import ast
import json
import sys
import types
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MARKERS = ("settings", "flow-parameters", "policies")

# The cycle flow's parameters that are not one of the models above. Each parameter of
# `flows.cycle.cycle` needs a note here (the model-typed ones point at their section).
FLOW_PARAMETER_NOTES: dict[str, str] = {
    "dataset": "The dataset's folder under `expectations/` (its spec and GX suite); the "
               "registered model is `greenlight-<dataset>`.",
    "policy": "The promotion policy: what happens after the gate's verdict (table under "
              "[Policies](approval.md#policies)). `manual` and `partial` need a Prefect "
              "server to ask in.",
    "thresholds": "The `[thresholds]` section below.",
    "training": "The `[training]` section below.",
    "force_retrain": "Retrain even when monitoring saw no drift or decay.",
    "approval_timeout_seconds": "An approval left unanswered this long counts as a "
                                "rejection (`timed out`).",
    "home": "The state dir; null reads `GREENLIGHT_HOME` (default `./.greenlight`).",
    "harvest_served": "First land served predictions whose labels have arrived as a batch "
                      "(`greenlight harvest`); `greenlight run --no-harvest` turns it off.",
    "scale": "The `[scale]` section below.",
    "guardrails": "The `[guardrails]` section below: probation after a promotion.",
}

VERDICTS = ("bootstrap", "clear", "refresh", "marginal", "fail", "insufficient")
ROUTE_WORDS = {"promote": "promote", "ask": "ask a person", "challenger": "`@challenger`",
               "none": "—"}


def _importable() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _cell(text: str) -> str:
    """One table cell: no line breaks, no bare pipes."""
    return " ".join(str(text).split()).replace("|", "\\|")


def type_name(annotation: object) -> str:
    """`float or null`, `one of drift, decay, never`, `dict[str, str]`: no pipes."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in args)
    if origin is not None:
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def limits(info) -> str:
    """The field's bounds (`≥ 0`, `< 1`) from its pydantic metadata."""
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    out = []
    for item in info.metadata:
        for attr, sign in signs.items():
            value = getattr(item, attr, None)
            if value is not None:
                out.append(f"{sign} {value}")
    return ", ".join(out)


def default_of(info) -> object:
    from pydantic_core import PydanticUndefined

    if info.default is PydanticUndefined and info.default_factory is not None:
        return info.default_factory()
    return info.default


def model_rows(section: str, model) -> list[str]:
    """One table row per field of `model`; a field without a description is an error."""
    rows = []
    for key, info in model.model_fields.items():
        description = (info.description or "").strip()
        if not description:
            raise ValueError(f"flows/params.py {model.__name__}.{key}: no description; give "
                             f"the Field a description= (the manual's configuration page "
                             f"is generated from it)")
        kind = type_name(info.annotation)
        bounds = limits(info)
        if bounds:
            kind = f"{kind} ({bounds})"
        rows.append(f"| `{section}.{key}` | {_cell(kind)} | "
                    f"`{_cell(json.dumps(default_of(info)))}` | {_cell(description)} |")
    return rows


def render_settings() -> str:
    """Every section of `cli.settings.SECTIONS`, one table each, from `flows/params.py`."""
    _importable()
    from cli.settings import SECTIONS
    from flows import params

    parts = []
    for section, name in SECTIONS.items():
        model = getattr(params, name)
        doc = " ".join((model.__doc__ or "").split())
        parts += [f"### `[{section}]`", "",
                  f"`{name}` in `flows/params.py`. {doc}".rstrip(), "",
                  "| key | type | default | description |", "|---|---|---|---|",
                  *model_rows(section, model), ""]
    return "\n".join(parts)


def cycle_parameters(path: Path | None = None) -> list[tuple[str, str, str]]:
    """`(name, annotation, default)` of `flows.cycle.cycle`, as written in its source."""
    tree = ast.parse((path or ROOT / "flows" / "cycle.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "cycle":
            args = node.args.args + node.args.kwonlyargs
            defaults = ([None] * (len(node.args.args) - len(node.args.defaults))
                        + node.args.defaults + node.args.kw_defaults)
            return [(a.arg, ast.unparse(a.annotation) if a.annotation else "",
                     ast.unparse(d) if d is not None else "")
                    for a, d in zip(args, defaults, strict=True)]
    raise ValueError("flows/cycle.py: no function cycle")


def _shown_default(source: str) -> str:
    """A literal default as JSON (`"auto"`, `false`, `null`); a call as written."""
    try:
        return json.dumps(ast.literal_eval(source))
    except (ValueError, SyntaxError):
        return source


def render_flow_parameters() -> str:
    _importable()
    from flows.policies import Policy

    rows = ["| parameter | type | default | what it does |", "|---|---|---|---|"]
    for name, annotation, default in cycle_parameters():
        note = FLOW_PARAMETER_NOTES.get(name)
        if not note:
            raise ValueError(f"flows/cycle.py cycle({name}=...): no note in "
                             f"docs/hooks/config.py FLOW_PARAMETER_NOTES")
        if annotation == "Policy":
            annotation = type_name(Policy)
        annotation = annotation.replace(" | ", " or ").replace("None", "null")
        default = _shown_default(default)
        rows.append(f"| `{name}` | {_cell(annotation)} | `{_cell(default)}` | {_cell(note)} |")
    return "\n".join(rows) + "\n"


def render_policies() -> str:
    """What each policy does with each verdict, from `flows.policies.route` itself."""
    _importable()
    from flows.policies import Policy, route

    rows = ["| policy | " + " | ".join(f"`{v}`" for v in VERDICTS) + " |",
            "|---|" + "---|" * len(VERDICTS)]
    for policy in typing.get_args(Policy):
        rows.append(f"| `{policy}` | "
                    + " | ".join(ROUTE_WORDS[route(policy, v)] for v in VERDICTS) + " |")
    return "\n".join(rows) + "\n"


RENDER = {"settings": render_settings, "flow-parameters": render_flow_parameters,
          "policies": render_policies}


def render(markdown: str) -> str:
    """The page with each marker line replaced by its table."""
    for name in MARKERS:
        marker = f"<!-- greenlight:{name} -->"
        if marker in markdown:
            markdown = markdown.replace(marker, RENDER[name]())
    return markdown


def on_page_markdown(markdown: str, page, config, files) -> str:  # mkdocs hook
    return render(markdown)
