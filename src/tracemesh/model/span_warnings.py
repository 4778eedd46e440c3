"""Where ingest warnings live in a stored span: Jaeger v2's `@jaeger@warnings` attribute.

A span repaired at ingest (a broken string, a corrected end time) carries what was repaired in
this attribute, a list of strings, in every store; on read it becomes the span's `warnings`, which
the Jaeger JSON shows as the span's warnings and api_v3 puts back as the same attribute.
"""

from __future__ import annotations

from tracemesh.model.attributes import Attributes

WARNINGS_ATTRIBUTE = "@jaeger@warnings"


def pop_warnings(attributes: Attributes) -> list[str]:
    """Remove the warnings attribute from `attributes` and return its strings."""
    value = attributes.pop(WARNINGS_ATTRIBUTE, None)
    if isinstance(value, list):
        return [item if isinstance(item, str) else str(item) for item in value]
    if isinstance(value, str):  # Thrift and Zipkin tags are strings: a line per warning
        return value.split("\n")
    return []
