"""Test traces for the storage contract suite, built in code: spans, processes and trace ids."""

from __future__ import annotations

import time

from tracemesh.model.attributes import Attributes
from tracemesh.model.span import Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode

MS = 1_000_000
MINUTE = 60_000 * MS
# Recent, whole-second times: backends that partition by day or expire old data keep them.
BASE_NS = (time.time_ns() // 1_000_000_000 - 3600) * 1_000_000_000
DEFAULT_SCOPE = Scope("contract-suite", "1.0")


def trace_id(n: int) -> bytes:
    return n.to_bytes(16, "big")


def span_id(n: int) -> bytes:
    return n.to_bytes(8, "big")


def process(service: str, **attributes: str | int | bool | float) -> Resource:
    """A resource; share one object between spans of the same process, as receivers do."""
    return Resource({"service.name": service, **attributes})


def make_span(
    trace: int | bytes,
    span: int,
    resource: Resource,
    *,
    name: str = "op",
    parent: int | None = None,
    start_ms: float = 0,
    duration_ms: float = 1,
    kind: SpanKind = SpanKind.SERVER,
    attributes: Attributes | None = None,
    events: list[Event] | None = None,
    links: list[Link] | None = None,
    status: StatusCode = StatusCode.UNSET,
    scope: Scope = DEFAULT_SCOPE,
) -> Span:
    start = BASE_NS + int(start_ms * MS)
    return Span(
        trace_id=trace if isinstance(trace, bytes) else trace_id(trace),
        span_id=span_id(span),
        parent_span_id=b"" if parent is None else span_id(parent),
        name=name,
        start_ns=start,
        end_ns=start + int(duration_ms * MS),
        kind=kind,
        attributes=attributes or {},
        events=events or [],
        links=links or [],
        status=Status(status),
        resource=resource,
        scope=scope,
    )


def event(attributes: Attributes, name: str = "log", at_ms: float = 0.5) -> Event:
    return Event(BASE_NS + int(at_ms * MS), name, attributes)


def span_ids(spans: list[Span]) -> list[bytes]:
    return [s.span_id for s in spans]


def trace_ids(traces: list[list[Span]]) -> list[bytes]:
    """The id of each returned trace; each must be one trace, whole."""
    ids = []
    for spans in traces:
        assert spans, "a returned trace has no spans"
        assert len({s.trace_id for s in spans}) == 1, "a returned trace mixes trace ids"
        ids.append(spans[0].trace_id)
    return ids
