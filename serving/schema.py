"""Request validation built from the model's MLflow signature, so every field is checked
against what the model was trained on: names, types, nothing missing, nothing extra.

Two paths, one verdict. `Records.check` is a plain type check over the whole request (a
100-row request is 700 `type()` look-ups, a few times cheaper than building and dumping
100 pydantic models); it accepts only what the pydantic validator accepts unchanged. Any
request it does not accept goes through pydantic, which accepts it or says exactly why not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import repeat
from operator import eq, itemgetter
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    create_model,
)

from core.clean import non_finite

_DOUBLE_MAX, _LONG_MAX = 1.7976931348623157e308, 2**63 - 1


def _digits(value: int) -> int:
    """Decimal digits of an integer, without `str` (refused past 4,300 digits)."""
    return int(value.bit_length() * 0.30103) + 1


def _a_double(value: float | int) -> float | int:
    """A number the model can compute with: finite, and an integer within a double. NaN
    and infinities are not JSON, and a huge integer failed inside the model as a 500."""
    if non_finite(value):
        raise ValueError(f"{value} is not a finite number")
    if isinstance(value, int) and abs(value) > _DOUBLE_MAX:
        raise ValueError(f"an integer of about {_digits(value)} digits does not fit a double")
    return value


_Double = Annotated[StrictFloat | StrictInt, AfterValidator(_a_double)]
_Long = Annotated[StrictInt, Field(ge=-_LONG_MAX - 1, le=_LONG_MAX)]
# Numbers may be sent as 3 or 3.0; null is a missing value, which LightGBM handles.
_TYPES: dict[str, Any] = {
    "double": _Double | None, "float": _Double | None, "long": _Long | None,
    "integer": _Long | None, "string": StrictStr, "boolean": StrictBool,
}
# What the fast check lets through unchanged: exact JSON types (bool is not a number).
_FAST: dict[str, frozenset[type]] = {
    "double": frozenset({float, int, type(None)}), "float": frozenset({float, int, type(None)}),
    "long": frozenset({int, type(None)}), "integer": frozenset({int, type(None)}),
    "string": frozenset({str}), "boolean": frozenset({bool}),
}
_NUMBERS = frozenset({float, int})
NoneType = type(None)


class BadRequest(ValueError):
    """A request the service refuses, with the HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Records:
    """The validator of one signature: field names, the pydantic adapter, the fast check."""

    fields: list[str]
    adapter: TypeAdapter
    kinds: tuple[tuple[str, frozenset[type], bool], ...]  # name, accepted types, is a long

    def check(self, rows: list[Any]) -> bool:
        """True when every row is a dict with exactly the signature's fields, each of an
        accepted JSON type, every number finite and within a double, every long within 64
        bits. Column by column over the whole request, each step one C-level pass (`map`,
        `set`, `sum`): a 100-row request costs ~0.1 ms, against ~0.7 ms for pydantic to
        build and dump 100 models. False sends the request to pydantic, for the verdict and
        its reason."""
        if set(map(type, rows)) != {dict}:
            return False
        if not all(map(eq, map(dict.keys, rows), repeat(set(self.fields)))):
            return False
        total = 0.0
        try:
            for name, ok, is_long in self.kinds:
                column = list(map(itemgetter(name), rows))
                found = set(map(type, column))
                if not found <= ok:
                    return False
                if found & _NUMBERS:
                    numbers = [v for v in column if v is not None] if NoneType in found \
                        else column
                    if is_long and not (-_LONG_MAX - 1 <= min(numbers) and
                                        max(numbers) <= _LONG_MAX):
                        return False
                    total += sum(numbers)  # NaN, an infinity or a huge integer: not finite
        except OverflowError:  # an integer too large for a double
            return False
        return math.isfinite(total)


def record_adapter(schema: Any) -> tuple[list[str], Records]:
    """Field names and a validator for a list of records, from an MLflow input schema."""
    fields: dict[str, Any] = {}
    kinds: list[tuple[str, frozenset[type], bool]] = []
    for col in schema.inputs:
        kind = getattr(col.type, "name", str(col.type))
        if kind not in _TYPES:
            raise ValueError(f"column {col.name}: unsupported signature type {kind}")
        fields[col.name] = _TYPES[kind]
        kinds.append((col.name, _FAST[kind], kind in ("long", "integer")))
    record = create_model("Record", __config__=ConfigDict(extra="forbid"),
                          **{name: (kind, ...) for name, kind in fields.items()})
    return list(fields), Records(list(fields), TypeAdapter(list[record]), tuple(kinds))


def _describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error["loc"]]
    where = f"record {loc[0]}" + (f", field '{loc[1]}'" if len(loc) > 1 else "")
    kind = error["type"]
    if kind == "missing":
        return f"{where}: missing field"
    if kind == "extra_forbidden":
        return f"{where}: unexpected field (not in the model signature)"
    return f"{where}: {error['msg']} (got {_short(error.get('input'))})"[:200]


def _short(value: Any) -> str:
    """A refused value as quoted; a huge integer by its size (its digits are no help)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of about {_digits(value)} digits"
    return repr(value)


def parse_records(payload: Any, records: Records, max_records: int) -> list[dict[str, Any]]:
    """One record (an object) or a list of records, validated; else a BadRequest (422)."""
    rows = [payload] if isinstance(payload, dict) else payload
    if not isinstance(rows, list):
        raise BadRequest(422, "body must be one record (a JSON object) or a list of records")
    if not rows:
        raise BadRequest(422, "no records: send one record or a non-empty list")
    if len(rows) > max_records:
        raise BadRequest(413, f"{len(rows)} records: at most {max_records} per request")
    if records.check(rows):
        fields = records.fields  # the signature's order, as the validated records had it
        return [row if list(row) == fields else {f: row[f] for f in fields} for row in rows]
    try:
        return [r.model_dump() for r in records.adapter.validate_python(rows)]
    except ValidationError as exc:
        errors = _one_per_field(exc.errors())
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        raise BadRequest(422, "; ".join(_describe(e) for e in errors[:3]) + more) from None


def _one_per_field(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first error of each (record, field). A number may be a float or an int, so
    pydantic reports a string in a number field twice, once per member of the union, and
    the 422 said the same thing twice."""
    seen: dict[tuple[str, ...], dict[str, Any]] = {}
    for error in errors:
        seen.setdefault(tuple(str(p) for p in error["loc"][:2]), error)
    return list(seen.values())
