"""Typed attribute values, the same set OTLP's AnyValue can carry, and their Jaeger string form."""

from __future__ import annotations

import base64
import math
from typing import TypeAlias

# None stands for an AnyValue with no value set; lists are OTLP arrays, dicts are OTLP kvlists.
AttrValue: TypeAlias = (
    str | bool | int | float | bytes | list["AttrValue"] | dict[str, "AttrValue"] | None
)
Attributes: TypeAlias = dict[str, AttrValue]


def value_to_text(value: AttrValue) -> str:
    """The string a tag search compares against: `true`, `123`, `72.5`, base64 for bytes, JSON for
    arrays and kvlists (that is how Jaeger's OTLP translator renders them)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_to_text(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if value is None:
        return ""
    import orjson

    return orjson.dumps(to_json_compatible(value)).decode()


def float_to_text(value: float) -> str:
    """Shortest round-trip form, with integral floats shown without `.0` (Go's strconv 'g')."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e21:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def to_json_compatible(value: AttrValue) -> object:
    """A plain JSON value for arrays/kvlists: bytes become base64, non-finite floats strings."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return float_to_text(value)
    if isinstance(value, list):
        return [to_json_compatible(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json_compatible(v) for k, v in value.items()}
    return value
