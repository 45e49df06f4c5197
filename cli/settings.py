"""Flow parameters from the command line and from `greenlight.toml`, through the typed models.

A cycle started from the command line must run with, and be recorded with, the same typed
parameters (`flows/params.py`: `Thresholds`, `Training`, `Scale`) as one started from the
Prefect UI's form. So every value, from a `--set SECTION.KEY=VALUE` flag or from the
settings file in the state dir, goes through the same Pydantic model, field by field, and
the cycle gets the models.

Precedence, highest first: `--set` flags (the last one wins for a key), the command's own
option for the setting (`--dask-min-rows`, `--dask-address`, or their environment
variables), the file's `[datasets.<dataset>.<section>]` table, its `[<section>]` table,
a `GREENLIGHT_<SECTION>__<KEY>` environment variable (it replaces the default wherever
the model is built, `flows.params.Section`), the model's default.

The settings file (`$GREENLIGHT_HOME/greenlight.toml`; optional)::

    [thresholds]
    drift_share = 0.2

    [training]
    gate_fraction = 0.25

    [datasets.elec2.training]   # only for --dataset elec2; beats [training]
    half_life_days = 30

Every table of the file is checked on every run, whichever dataset runs, so a typo is
found the first time, not on the day that dataset's cycle reads it.

Bad input is a `SettingsError` with one line naming the flag or the file, the table and the
key; the command prints it and exits 2.

Only the standard library is imported at module level: parsing needs nothing else, and
when nothing is set anywhere (`Settings.empty`) pydantic is never imported, which keeps
an idle `greenlight run` at a fraction of a second (`tasks/data/idle.py`). Validation imports
`flows.params` (pydantic, no Prefect).

`python -m cli.settings` lists every key with its type, default and description.
"""

from __future__ import annotations

import difflib
import json
import os
import textwrap
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.data.home import EXPECTATIONS_DIR

if TYPE_CHECKING:
    from pydantic import BaseModel

SETTINGS_FILE = "greenlight.toml"
# The cycle's parameters that take settings: section name -> model name in flows/params.py.
SECTIONS: dict[str, str] = {"thresholds": "Thresholds", "training": "Training",
                            "scale": "Scale", "guardrails": "Guardrails"}
FLAG = "--set"

Layer = dict[str, dict[str, Any]]  # section -> key -> value, one source's values


class SettingsError(ValueError):
    """One line for the user: which flag or file, which key, what is wrong."""


@dataclass(frozen=True)
class Settings:
    """The validated values that differ from the models' defaults, by section.

    Plain values, so holding them costs no import; `models()` builds the typed parameters."""

    values: Layer = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(self.values.values())

    def models(self) -> dict[str, BaseModel]:
        """`{"thresholds": Thresholds(...), "training": Training(...), "scale": Scale(...)}`:
        keyword arguments for `flows.cycle.cycle`."""
        from pydantic import ValidationError

        from flows import params

        try:
            return {section: getattr(params, name)(**self.values.get(section, {}))
                    for section, name in SECTIONS.items()}
        except ValidationError as exc:  # a GREENLIGHT_<SECTION>__<KEY> value
            raise SettingsError(_one_line(exc)) from None


def _one_line(exc: Exception) -> str:
    """A model's refusal of an environment value, as the line its validator wrote."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return exc.errors()[0]["msg"].removeprefix("Value error, ")
    return str(exc)


def check_environment(environ: Mapping[str, str]) -> None:
    """The GREENLIGHT_<SECTION>__<KEY> variables (flows.params.Section), checked before
    anything heavy loads: an unknown key or a value the field refuses is one line naming
    the variable. Pydantic is imported only when such a variable is set."""
    sections = set()
    for var in environ:
        for section in SECTIONS:
            prefix = f"GREENLIGHT_{section.upper()}__"
            if var.startswith(prefix):
                _check_key(section, var[len(prefix):].lower(), var)
                sections.add(section)
    for section in sections:
        try:
            _model(section)()
        except ValueError as exc:
            raise SettingsError(_one_line(exc)) from None


def settings_file(home: Path) -> Path:
    """Where the settings file of a state dir is: beside everything else it configures."""
    return Path(home) / SETTINGS_FILE


def resolve(dataset: str, flags: Sequence[str] = (), home: Path | None = None,
            options: Mapping[str, Mapping[str, Any]] | None = None) -> Settings:
    """Merge default < file < file's dataset table < command options < `--set` flags.

    `flags` are the raw `--set` values; `options` the command's own options for settings,
    as `{section: {key: value}}` with None meaning "not given". Raises `SettingsError`."""
    check_environment(os.environ)
    path = settings_file(home) if home is not None else None
    layers: list[Layer] = []
    if path is not None and path.is_file():
        base, per_dataset = read_file(path)
        layers += [base, per_dataset.get(dataset, {})]
    given = {s: {k: v for k, v in keys.items() if v is not None}
             for s, keys in (options or {}).items()}
    if any(given.values()):
        layers.append(_validated(given, lambda s, k: f"{s}.{k}"))
    if flags:
        layers.append(parse_flags(flags))
    merged: Layer = {}
    for layer in layers:
        for section, values in layer.items():
            if values:
                merged.setdefault(section, {}).update(values)
    return Settings(merged)


def parse_flags(flags: Sequence[str]) -> Layer:
    """`["training.gate_fraction=0.5", ...]` -> validated values by section.

    A value is first given to the model as the string it is (pydantic turns "0.5" into a
    float, "true" into a bool); if the field refuses the string, the value is read as JSON,
    so a list, a table, or `null` can be set too (`thresholds.per_column_method={"x":"psi"}`,
    `thresholds.label_drift=null`)."""
    out: Layer = {}
    for flag in flags:
        name, sep, raw = flag.partition("=")
        name = name.strip()
        where = f"{FLAG} {name}" if sep else f"{FLAG} {flag}"
        if not sep:
            raise SettingsError(f"{where}: expected SECTION.KEY=VALUE, e.g. "
                                f"{FLAG} training.gate_fraction=0.5")
        section, dot, key = name.partition(".")
        if not dot or not key:
            raise SettingsError(f"{where}: expected SECTION.KEY=VALUE, with SECTION one of "
                                f"{', '.join(SECTIONS)}")
        _check_key(section, key, where)
        out.setdefault(section, {})[key] = _field_value(section, key, raw, where, from_text=True)
    return out


def read_file(path: Path) -> tuple[Layer, dict[str, Layer]]:
    """The file's `[section]` tables and its `[datasets.<name>.<section>]` tables, validated.

    TOML gives typed values already (a float, a list, a table); the model still checks and
    coerces them. TOML has no null: to get a null back, leave the key out."""
    try:
        text = path.read_bytes().decode("utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read the settings file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from exc
    base = _tables(data, path, "", allow_datasets=True)
    per_dataset: dict[str, Layer] = {}
    datasets = data.get("datasets", {})
    if not isinstance(datasets, dict):
        raise SettingsError(f"{path} datasets: expected tables [datasets.<name>.<section>]")
    for name, tables in datasets.items():
        if not (EXPECTATIONS_DIR / name / "spec.json").is_file():
            known = sorted(p.parent.name for p in EXPECTATIONS_DIR.glob("*/spec.json"))
            raise SettingsError(f"{path} [datasets.{name}]: no such dataset "
                                f"(known: {', '.join(known)})")
        if not isinstance(tables, dict):
            raise SettingsError(f"{path} datasets.{name}: expected tables "
                                f"[datasets.{name}.<section>]")
        per_dataset[name] = _tables(tables, path, f"datasets.{name}.", allow_datasets=False)
    return base, per_dataset


def _tables(data: dict[str, Any], path: Path, prefix: str, allow_datasets: bool) -> Layer:
    """Validate one level of the file: `[thresholds]`, `[training]`, `[scale]` (and, at the
    top, `[datasets...]`); anything else is named with the tables it could be."""
    out: Layer = {}
    for name, table in data.items():
        if allow_datasets and name == "datasets":
            continue
        table_name = f"{prefix}{name}"
        if name not in SECTIONS:
            if not isinstance(table, dict):  # a key outside any table: say which table
                owner = [s for s in SECTIONS if name in _fields(s)]
                hint = f"put it under [{prefix}{owner[0]}]" if owner else \
                    f"settings go in the tables [{'], ['.join(SECTIONS)}]"
                raise SettingsError(f"{path} {table_name}: not in a table; {hint}")
            tables = [*SECTIONS] + (["datasets.<name>.<section>"] if allow_datasets else [])
            close = difflib.get_close_matches(name, tables, n=1)
            hint = f"did you mean [{prefix}{close[0]}]? " if close else ""
            raise SettingsError(f"{path} [{table_name}]: unknown table ({hint}known: "
                                f"{', '.join(tables)})")
        if not isinstance(table, dict):
            raise SettingsError(f"{path} {table_name}: expected a table [{table_name}]")
        out[name] = _validated({name: table}, lambda s, k, t=table_name: f"{path} [{t}] {k}")[name]
    return out


def _validated(layer: Mapping[str, Mapping[str, Any]], where) -> Layer:
    """Typed values through the models; `where(section, key)` names the source in errors."""
    out: Layer = {}
    for section, values in layer.items():
        for key, value in values.items():
            _check_key(section, key, where(section, key))
            out.setdefault(section, {})[key] = _field_value(section, key, value,
                                                            where(section, key))
    return out


def _model(section: str):
    from flows import params

    return getattr(params, SECTIONS[section])


def _fields(section: str) -> list[str]:
    return list(_model(section).model_fields)


def _check_key(section: str, key: str, where: str) -> None:
    """An unknown section or key, with the names it could have been."""
    if section not in SECTIONS:
        close = difflib.get_close_matches(section, SECTIONS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise SettingsError(f"{where}: unknown section {section!r} ({hint}sections: "
                            f"{', '.join(SECTIONS)})")
    names = _fields(section)
    if key not in names:
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise SettingsError(f"{where}: unknown setting ({hint}{section} has: "
                            f"{', '.join(names)})")


def _field_value(section: str, key: str, value: Any, where: str, from_text: bool = False) -> Any:
    """The value as the model's field holds it, or a `SettingsError` with pydantic's reason.

    Each field is validated alone (all fields have defaults, and no validator looks across
    fields), so the error names exactly the key that is wrong."""
    from pydantic import ValidationError

    model = _model(section)
    try:
        return getattr(model.model_validate({key: value}), key)
    except ValidationError as exc:
        first = exc
    if from_text:
        try:
            parsed = json.loads(value)
        except ValueError:
            pass
        else:
            try:
                return getattr(model.model_validate({key: parsed}), key)
            except ValidationError as exc:
                first = exc if isinstance(parsed, (dict, list)) else first
    problem = first.errors()[0]
    inner = ".".join(str(p) for p in problem["loc"][1:])
    shown = repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."
    raise SettingsError(f"{where}: {inner + ': ' if inner else ''}{problem['msg']} "
                        f"(got {shown})")


def describe() -> str:
    """Every key, its type, default and description: what `--set` and the file take."""
    from pydantic_core import PydanticUndefined

    lines = []
    for section in SECTIONS:
        model = _model(section)
        lines.append(f"[{section}]  ({model.__name__} in flows/params.py)")
        for key, info in model.model_fields.items():
            default = info.default_factory() if info.default is PydanticUndefined \
                and info.default_factory else info.default
            kind = getattr(info.annotation, "__name__", None) or str(info.annotation)
            kind = kind.replace("typing.", "")
            lines.append(f"  {section}.{key} = {json.dumps(default)}   ({kind})")
            lines.append(textwrap.fill(info.description or "", 96, initial_indent=" " * 6,
                                       subsequent_indent=" " * 6))
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe())
