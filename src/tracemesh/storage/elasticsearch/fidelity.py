"""Whether Jaeger's document (plus the `ns` field) keeps a span whole, so that the `otlp` copy,
which costs about the span's size again in every document, is written only where it is needed.

The check is conservative and cheap (no read-back): any value or key whose trip through Jaeger's
shape is not exact sends the span to the `otlp` copy. `tests/unit/storage/test_elastic_fidelity.py`
reads back every span this passes and compares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tracemesh.model.attributes import AttrValue
from tracemesh.model.span import REF_TYPE_KEY, Span, StatusCode
from tracemesh.storage.elasticsearch.jaeger_read import NO_SERVICE_NAME

# Keys the reader gives a meaning (status, kind, scope, trace state): as attributes they would
# not come back as attributes.
RESERVED = frozenset({
    "otel.scope.name", "otel.scope.version", "span.kind", "otel.status_code", "error",
    "otel.status_description", "w3c.tracestate", "http.response.status_code",
    "http.status_message",
})  # fmt: skip
REF_TYPES = ("child_of", "follows_from")


def _plain(attributes: Mapping[str, AttrValue]) -> bool:
    """Every value one Jaeger tag holds exactly: strings, bools, ints, finite floats, bytes."""
    for value in attributes.values():
        if isinstance(value, str | bool | int | bytes):
            continue
        if isinstance(value, float) and math.isfinite(value) and math.copysign(1, value) > 0:
            continue
        if isinstance(value, float) and value < 0 and math.isfinite(value):
            continue
        return False
    return True


def nanos(span: Span) -> list[int] | None:
    """What Jaeger's µs fields drop, in ns (start, end, then each event), or None when nothing."""
    # the end as the reader rebuilds it: µs start plus µs duration, each rounded down
    end_us = span.start_ns // 1000 + (span.end_ns - span.start_ns) // 1000
    end = span.end_ns - end_us * 1000  # 0 to 1999
    parts = [span.start_ns % 1000, end, *(e.time_ns % 1000 for e in span.events)]
    return parts if any(parts) else None


def jaeger_keeps(span: Span) -> bool:
    """True when Jaeger's fields (and `ns`) read back as exactly `span`."""
    resource, scope = span.resource, span.scope
    if (span.dropped_attributes_count or span.dropped_events_count or span.dropped_links_count
            or resource.dropped_attributes_count or resource.schema_url
            or scope.dropped_attributes_count or scope.schema_url):  # fmt: skip
        return False
    if span.end_ns < span.start_ns or (scope.version and not scope.name):
        return False
    if span.status.message and span.status.code is StatusCode.UNSET:
        return False
    attributes = span.attributes
    if not _plain(attributes) or not RESERVED.isdisjoint(attributes):
        return False
    name = resource.attributes.get("service.name")
    if not isinstance(name, str) or not name or name == NO_SERVICE_NAME:
        return False
    if not _plain(resource.attributes) or not _plain(scope.attributes):
        return False
    for event in span.events:
        if event.dropped_attributes_count or "event" in event.attributes:
            return False
        if not _plain(event.attributes):
            return False
    for link in span.links:
        # the reader marks every link with its reference type, and folds one to the parent
        if link.dropped_attributes_count or link.attributes.get(REF_TYPE_KEY) not in REF_TYPES:
            return False
        if link.span_id == span.parent_span_id or not _plain(link.attributes):
            return False
        if len(link.trace_id) != 16 or len(link.span_id) != 8:
            return False
    if span.start_ns < 1000 or len(span.parent_span_id) not in (0, 8):
        return False
    return (
        len(span.trace_id) == 16
        and len(span.span_id) == 8
        and any(span.trace_id)
        and any(span.span_id)
    )
