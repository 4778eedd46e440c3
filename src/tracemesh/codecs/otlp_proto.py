"""OTLP protobuf <-> model: the ingest fast path (`batch_from_request`) and full span decoding.

Ingest reads only the fields storage indexes and keeps each span as its serialized bytes; the
attribute-by-attribute conversion in `span_from_row` runs only when a span is read back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError as ProtoDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1 import trace_pb2

from tracemesh.codecs import DecodeError
from tracemesh.codecs.protowire import fields, length_delimited
from tracemesh.codecs.utf8_repair import Rules, repair
from tracemesh.model.attributes import Attributes, AttrValue
from tracemesh.model.batch import ResourceGroup, SpanBatch, SpanRow
from tracemesh.model.ids import SPAN_ID_SIZE, TRACE_ID_SIZE, ZERO_SPAN_ID, ZERO_TRACE_ID
from tracemesh.model.span import (
    Event,
    Link,
    Resource,
    Scope,
    Span,
    SpanKind,
    Status,
    StatusCode,
)
from tracemesh.model.span_warnings import WARNINGS_ATTRIBUTE, pop_warnings

PbSpan = trace_pb2.Span


@dataclass(slots=True)
class DecodedBatch:
    """What a receiver got: the spans it accepted and why it rejected the others."""

    batch: SpanBatch
    rejected: int = 0
    error: str = ""  # the first rejection reason, for OTLP partial success


def _warnings_field(warnings: list[str]) -> bytes:
    kv = common_pb2.KeyValue(key=WARNINGS_ATTRIBUTE)
    value_to_pb(list[AttrValue](warnings), kv.value)
    return length_delimited(9, kv.SerializeToString())  # Span.attributes


RULES = Rules(
    span="opentelemetry.proto.trace.v1.Span",
    warnings=_warnings_field,
    names=frozenset({"opentelemetry.proto.trace.v1.Span.name"}),
    keys=frozenset({"opentelemetry.proto.common.v1.KeyValue.key"}),
    values={"opentelemetry.proto.common.v1.AnyValue.string_value": (7, b"")},  # bytes_value
)


def parse_request(data: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except (ProtoDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"invalid OTLP protobuf: {exc}") from None
    return request


def decode_request(data: bytes) -> DecodedBatch:
    """Parse OTLP protobuf bytes into rows whose `raw` is sliced from `data`, not re-serialized.

    Strings that are not UTF-8 fail the parse; the request is then repaired (`utf8_repair`)
    rather than refused, so one bad attribute does not cost the batch."""
    try:
        request = parse_request(data)
    except DecodeError as exc:
        try:
            fixed = repair(data, ExportTraceServiceRequest.DESCRIPTOR, RULES)
            request = parse_request(fixed.data)
        except DecodeError:
            raise exc from None
        out = batch_from_request(request, fixed.data)
        out.batch.repaired = fixed.spans
        return out
    return batch_from_request(request, data)


def batch_from_request(
    request: ExportTraceServiceRequest, wire: bytes | None = None
) -> DecodedBatch:
    """Validate every span and pull out its index fields; invalid spans are counted, not stored.

    This is the hottest loop of ingest: each field is read from upb exactly once into a local.
    Given the request's `wire` bytes, each span's bytes are sliced out of them, which costs half
    as much as re-serializing the span (see `span_slices`).
    """
    out = DecodedBatch(SpanBatch())
    groups = out.batch.groups
    slices = _checked_slices(request, wire) if wire is not None else None
    for resource_spans in request.resource_spans:
        resource = resource_from_pb(resource_spans.resource, resource_spans.schema_url)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_from_pb(scope_spans.scope, scope_spans.schema_url)
            rows: list[SpanRow] = []
            append = rows.append
            new_row = tuple.__new__  # skips NamedTuple's Python-level __new__: ~1 µs a span
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                begin, finish = next(slices) if slices is not None else (0, 0)
                if (
                    len(trace_id) != TRACE_ID_SIZE
                    or trace_id == ZERO_TRACE_ID
                    or len(span_id) != SPAN_ID_SIZE
                    or span_id == ZERO_SPAN_ID
                    or (parent and len(parent) != SPAN_ID_SIZE)
                    or not start
                ):
                    reason = _invalid_reason(span)
                    if reason:
                        out.rejected += 1
                        out.error = out.error or reason
                        continue
                    span.trace_id = trace_id = ZERO_SPAN_ID + trace_id  # a 64-bit id
                    finish = begin  # the stored bytes must carry the widened id
                if parent == ZERO_SPAN_ID:
                    parent = b""
                raw = wire[begin:finish] if finish > begin else span.SerializeToString()  # type: ignore[index]
                append(
                    new_row(
                        SpanRow,
                        (
                            trace_id,
                            span_id,
                            parent,
                            span.name,
                            span.kind,
                            start,
                            end,
                            span.status.code,
                            raw,
                        ),
                    )
                )
            if rows:
                groups.append(ResourceGroup(resource, scope, rows))
    return out


def _checked_slices(
    request: ExportTraceServiceRequest, wire: bytes
) -> Iterator[tuple[int, int]] | None:
    """Span ranges when they line up one-to-one with upb's spans; None means re-serialize."""
    try:
        found = span_slices(wire)
    except (DecodeError, IndexError):
        return None
    expected = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    return iter(found) if len(found) == expected else None


def span_slices(data: bytes) -> list[tuple[int, int]]:
    """The byte range of every Span message in an ExportTraceServiceRequest, in document order
    (the order upb's repeated fields keep). Only called on bytes upb has already parsed.

    Request.resource_spans = 1, ResourceSpans.scope_spans = 2, ScopeSpans.spans = 2.
    """
    out: list[tuple[int, int]] = []
    for rs_begin, rs_end in fields(data, 0, len(data), 1):
        for ss_begin, ss_end in fields(data, rs_begin, rs_end, 2):
            out.extend(fields(data, ss_begin, ss_end, 2))
    return out


def _invalid_reason(span: PbSpan) -> str:
    """Why a span is refused; empty for the one tolerated oddity, a 64-bit (8-byte) trace id."""
    trace_id = span.trace_id
    if len(trace_id) not in (TRACE_ID_SIZE, SPAN_ID_SIZE) or trace_id.count(0) == len(trace_id):
        return f"span has an invalid trace id ({trace_id.hex() or 'empty'})"
    span_id = span.span_id
    if len(span_id) != SPAN_ID_SIZE or span_id == ZERO_SPAN_ID:
        return f"span has an invalid span id ({span_id.hex() or 'empty'})"
    if len(span.parent_span_id) not in (0, SPAN_ID_SIZE):
        return f"span {span_id.hex()} has an invalid parent span id"
    if span.start_time_unix_nano == 0:
        return f"span {span_id.hex()} has no start time"
    return ""


# ---- protobuf -> model -------------------------------------------------------------------------


def value_from_pb(value: common_pb2.AnyValue) -> AttrValue:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "bool_value":
        return value.bool_value
    if which == "double_value":
        return value.double_value
    if which == "bytes_value":
        return value.bytes_value
    if which == "array_value":
        return [value_from_pb(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes_from_pb(value.kvlist_value.values)
    return None


def attributes_from_pb(pairs: Iterable[common_pb2.KeyValue]) -> Attributes:
    return {kv.key: value_from_pb(kv.value) for kv in pairs}


def resource_from_pb(resource: PbResource, schema_url: str = "") -> Resource:
    return Resource(
        attributes_from_pb(resource.attributes), resource.dropped_attributes_count, schema_url
    )


def scope_from_pb(scope: common_pb2.InstrumentationScope, schema_url: str = "") -> Scope:
    return Scope(
        scope.name,
        scope.version,
        attributes_from_pb(scope.attributes),
        scope.dropped_attributes_count,
        schema_url,
    )


def _warnings_of(span: PbSpan, attributes: Attributes) -> list[str]:
    """Every warnings attribute of the span, in order: repairs at ingest may append more than
    one (a later KeyValue with the same key would otherwise hide the earlier ones)."""
    if WARNINGS_ATTRIBUTE not in attributes:
        return []
    out: list[str] = []
    for kv in span.attributes:
        if kv.key == WARNINGS_ATTRIBUTE:
            out += pop_warnings({WARNINGS_ATTRIBUTE: value_from_pb(kv.value)})
    del attributes[WARNINGS_ATTRIBUTE]
    return out


def span_from_pb(span: PbSpan, resource: Resource, scope: Scope) -> Span:
    parent = span.parent_span_id
    attributes = attributes_from_pb(span.attributes)
    warnings = _warnings_of(span, attributes)
    return Span(
        trace_id=span.trace_id,
        span_id=span.span_id,
        name=span.name,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        parent_span_id=b"" if parent == ZERO_SPAN_ID else parent,
        kind=SpanKind(span.kind) if 0 <= span.kind <= 5 else SpanKind.UNSPECIFIED,
        attributes=attributes,
        events=[
            Event(
                e.time_unix_nano,
                e.name,
                attributes_from_pb(e.attributes),
                e.dropped_attributes_count,
            )
            for e in span.events
        ],
        links=[
            Link(
                lk.trace_id,
                lk.span_id,
                lk.trace_state,
                attributes_from_pb(lk.attributes),
                lk.dropped_attributes_count,
                lk.flags,
            )
            for lk in span.links
        ],
        status=Status(
            StatusCode(span.status.code) if 0 <= span.status.code <= 2 else StatusCode.UNSET,
            span.status.message,
        ),
        trace_state=span.trace_state,
        flags=span.flags,
        resource=resource,
        scope=scope,
        dropped_attributes_count=span.dropped_attributes_count,
        dropped_events_count=span.dropped_events_count,
        dropped_links_count=span.dropped_links_count,
        warnings=warnings,
    )


def span_from_row(raw: bytes, resource: Resource, scope: Scope) -> Span:
    """Decode a stored span (`SpanRow.raw`) with the resource and scope it was stored under."""
    return span_from_pb(PbSpan.FromString(raw), resource, scope)


def spans_from_request(request: ExportTraceServiceRequest) -> list[Span]:
    spans: list[Span] = []
    for rs in request.resource_spans:
        resource = resource_from_pb(rs.resource, rs.schema_url)
        for ss in rs.scope_spans:
            scope = scope_from_pb(ss.scope, ss.schema_url)
            spans.extend(span_from_pb(s, resource, scope) for s in ss.spans)
    return spans


# ---- model -> protobuf -------------------------------------------------------------------------


def value_to_pb(value: AttrValue, out: common_pb2.AnyValue) -> None:
    if isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bool):  # before int: bool is an int in Python
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.SetInParent()
        for item in value:
            value_to_pb(item, out.array_value.values.add())
    elif isinstance(value, dict):
        out.kvlist_value.SetInParent()
        attributes_to_pb(value, out.kvlist_value.values)
    # None: leave the AnyValue empty


def attributes_to_pb(attributes: Attributes, out: object) -> None:
    for key, value in attributes.items():
        kv = out.add()  # type: ignore[attr-defined]
        kv.key = key
        value_to_pb(value, kv.value)


def span_to_pb(span: Span) -> PbSpan:
    pb = PbSpan(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        name=span.name,
        kind=int(span.kind),  # type: ignore[arg-type]
        start_time_unix_nano=span.start_ns,
        end_time_unix_nano=span.end_ns,
        trace_state=span.trace_state,
        flags=span.flags,
        dropped_attributes_count=span.dropped_attributes_count,
        dropped_events_count=span.dropped_events_count,
        dropped_links_count=span.dropped_links_count,
    )
    attributes_to_pb(span.attributes, pb.attributes)
    if span.warnings and WARNINGS_ATTRIBUTE not in span.attributes:
        value_to_pb(list[AttrValue](span.warnings), pb.attributes.add(key=WARNINGS_ATTRIBUTE).value)
    for event in span.events:
        e = pb.events.add(
            time_unix_nano=event.time_ns,
            name=event.name,
            dropped_attributes_count=event.dropped_attributes_count,
        )
        attributes_to_pb(event.attributes, e.attributes)
    for link in span.links:
        lk = pb.links.add(
            trace_id=link.trace_id,
            span_id=link.span_id,
            trace_state=link.trace_state,
            dropped_attributes_count=link.dropped_attributes_count,
            flags=link.flags,
        )
        attributes_to_pb(link.attributes, lk.attributes)
    if span.status.code or span.status.message:
        pb.status.code = int(span.status.code)  # type: ignore[assignment]
        pb.status.message = span.status.message
    return pb


def row_from_span(span: Span) -> SpanRow:
    return SpanRow(
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.name,
        int(span.kind),
        span.start_ns,
        span.end_ns,
        int(span.status.code),
        span_to_pb(span).SerializeToString(),
    )


def batch_from_spans(spans: Sequence[Span]) -> SpanBatch:
    """Group spans by their (identical) resource and scope objects, keeping arrival order."""
    groups: dict[tuple[int, int], ResourceGroup] = {}
    for span in spans:
        key = (id(span.resource), id(span.scope))
        group = groups.get(key)
        if group is None:
            group = groups[key] = ResourceGroup(span.resource, span.scope)
        group.rows.append(row_from_span(span))
    return SpanBatch(list(groups.values()))


def request_from_spans(spans: Sequence[Span]) -> ExportTraceServiceRequest:
    """Spans as an OTLP request, one ResourceSpans per distinct resource object."""
    request = ExportTraceServiceRequest()
    by_resource: dict[int, trace_pb2.ResourceSpans] = {}
    by_scope: dict[tuple[int, int], trace_pb2.ScopeSpans] = {}
    for span in spans:
        rs = by_resource.get(id(span.resource))
        if rs is None:
            rs = by_resource[id(span.resource)] = request.resource_spans.add()
            rs.resource.SetInParent()
            attributes_to_pb(span.resource.attributes, rs.resource.attributes)
            rs.resource.dropped_attributes_count = span.resource.dropped_attributes_count
            rs.schema_url = span.resource.schema_url
        key = (id(span.resource), id(span.scope))
        ss = by_scope.get(key)
        if ss is None:
            ss = by_scope[key] = rs.scope_spans.add()
            ss.scope.SetInParent()
            ss.scope.name = span.scope.name
            ss.scope.version = span.scope.version
            attributes_to_pb(span.scope.attributes, ss.scope.attributes)
            ss.scope.dropped_attributes_count = span.scope.dropped_attributes_count
            ss.schema_url = span.scope.schema_url
        ss.spans.append(span_to_pb(span))
    return request
