"""Request validation built from the model's MLflow signature, so every field is checked
against what the model was trained on: names, types, nothing missing, nothing extra."""

from __future__ import annotations

from typing import Any

from pydantic import (
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    create_model,
)

# Numbers may be sent as 3 or 3.0; null is a missing value, which LightGBM handles.
_TYPES: dict[str, Any] = {
    "double": StrictFloat | StrictInt | None, "float": StrictFloat | StrictInt | None,
    "long": StrictInt | None, "integer": StrictInt | None,
    "string": StrictStr, "boolean": StrictBool,
}


class BadRequest(ValueError):
    """A request the service refuses, with the HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def record_adapter(schema: Any) -> tuple[list[str], TypeAdapter]:
    """Field names and a validator for a list of records, from an MLflow input schema."""
    fields: dict[str, Any] = {}
    for col in schema.inputs:
        kind = getattr(col.type, "name", str(col.type))
        if kind not in _TYPES:
            raise ValueError(f"column {col.name}: unsupported signature type {kind}")
        fields[col.name] = (_TYPES[kind], ...)
    record = create_model("Record", __config__=ConfigDict(extra="forbid"), **fields)
    return list(fields), TypeAdapter(list[record])


def _describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error["loc"]]
    where = f"record {loc[0]}" + (f", field '{loc[1]}'" if len(loc) > 1 else "")
    kind = error["type"]
    if kind == "missing":
        return f"{where}: missing field"
    if kind == "extra_forbidden":
        return f"{where}: unexpected field (not in the model signature)"
    return f"{where}: {error['msg']} (got {error.get('input')!r})"[:200]


def parse_records(payload: Any, adapter: TypeAdapter, max_records: int) -> list[dict[str, Any]]:
    """One record (an object) or a list of records, validated; else a BadRequest (422)."""
    rows = [payload] if isinstance(payload, dict) else payload
    if not isinstance(rows, list):
        raise BadRequest(422, "body must be one record (a JSON object) or a list of records")
    if not rows:
        raise BadRequest(422, "no records: send one record or a non-empty list")
    if len(rows) > max_records:
        raise BadRequest(413, f"{len(rows)} records: at most {max_records} per request")
    try:
        return [r.model_dump() for r in adapter.validate_python(rows)]
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        raise BadRequest(422, "; ".join(_describe(e) for e in errors[:3]) + more) from None
