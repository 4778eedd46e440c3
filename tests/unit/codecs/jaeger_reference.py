"""A plain reference of the Jaeger Thrift -> model mapping, written the obvious way (a dict of
attributes per span, popped as OpenTelemetry's translator pops them), to check the codec's fast
path, which writes OTLP bytes directly, against."""

from __future__ import annotations

from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.jaeger_thrift import (
    MAX_US,
    SAMPLED_FLAG,
    attributes_from_tags,
    invalid_reason,
    resource_from_process,
    status_from_attributes,
)
from tracemesh.model.ids import span_id_from_int, trace_id_from_ints
from tracemesh.model.span import REF_TYPE_KEY, Event, Link, Scope, Span, SpanKind


def reference_spans(batch: ts.Batch) -> tuple[list[Span], int]:
    """(spans, how many were rejected)."""
    assert batch.process is not None
    resource = resource_from_process(batch.process)
    spans: list[Span] = []
    rejected = 0
    for jspan in batch.spans or ():
        reason = invalid_reason(
            jspan.traceIdHigh, jspan.traceIdLow, jspan.spanId, jspan.startTime, jspan.duration
        )
        if reason or any(not 0 <= (log.timestamp or 0) <= MAX_US for log in jspan.logs or ()):
            rejected += 1
            continue
        high, low = jspan.traceIdHigh or 0, jspan.traceIdLow or 0
        parent = _parent(jspan, high, low)
        attributes = attributes_from_tags(jspan.tags)
        scope = Scope()
        if "otel.scope.name" in attributes:
            name = attributes.pop("otel.scope.name")
            version = attributes.pop("otel.scope.version", "")
            scope = Scope(
                name if isinstance(name, str) else "", version if isinstance(version, str) else ""
            )
        kind = SpanKind.UNSPECIFIED
        if "span.kind" in attributes:
            kind_name = attributes.pop("span.kind")
            if isinstance(kind_name, str):
                kind = SpanKind.from_jaeger_name(kind_name)
        status = status_from_attributes(attributes, kind)
        state = attributes.pop("w3c.tracestate", "")
        start = jspan.startTime or 0
        spans.append(
            Span(
                trace_id=trace_id_from_ints(high, low),
                span_id=span_id_from_int(jspan.spanId or 0),
                name=jspan.operationName or "",
                start_ns=start * 1000,
                end_ns=(start + (jspan.duration or 0)) * 1000,
                parent_span_id=span_id_from_int(parent) if parent else b"",
                kind=kind,
                attributes=attributes,
                events=[_event(log) for log in jspan.logs or ()],
                links=_links(jspan.references or (), parent),
                status=status,
                trace_state=state if isinstance(state, str) else "",
                flags=SAMPLED_FLAG if (jspan.flags or 0) & SAMPLED_FLAG else 0,
                resource=resource,
                scope=scope,
            )
        )
    # A SpanBatch groups rows by scope, in the order each scope first appears.
    first_seen: dict[tuple[str, str], int] = {}
    for span in spans:
        first_seen.setdefault((span.scope.name, span.scope.version), len(first_seen))
    spans.sort(key=lambda span: first_seen[(span.scope.name, span.scope.version)])
    return spans, rejected


def _parent(jspan: ts.Span, high: int, low: int) -> int:
    if jspan.parentSpanId:
        return jspan.parentSpanId
    follows = 0
    for ref in jspan.references or ():
        if (ref.traceIdHigh or 0, ref.traceIdLow or 0) != (high, low):
            continue
        if (ref.refType or 0) == ts.SpanRefType.CHILD_OF:
            return ref.spanId or 0
        if not follows and ref.refType == ts.SpanRefType.FOLLOWS_FROM:
            follows = ref.spanId or 0
    return follows


def _links(refs: list[ts.SpanRef], parent: int) -> list[Link]:
    links = []
    for ref in refs:
        child_of = (ref.refType or 0) == ts.SpanRefType.CHILD_OF
        if child_of and (ref.spanId or 0) == parent:
            continue
        links.append(
            Link(
                trace_id_from_ints(ref.traceIdHigh or 0, ref.traceIdLow or 0),
                span_id_from_int(ref.spanId or 0),
                attributes={REF_TYPE_KEY: "child_of" if child_of else "follows_from"},
            )
        )
    return links


def _event(log: ts.Log) -> Event:
    attributes = attributes_from_tags(log.fields)
    name = attributes.pop("event", "")
    return Event((log.timestamp or 0) * 1000, name if isinstance(name, str) else "", attributes)
