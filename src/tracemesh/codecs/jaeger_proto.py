"""Jaeger api_v2 protobuf (`Batch`, `Span`) <-> model spans, mapped as OpenTelemetry's Jaeger
translator maps them (`jaegerproto_to_traces` one way, `traces_to_jaegerproto` the other).

Into the model: a span's own `process` overrides the batch's; the process becomes the resource
(`service.name` plus typed tags, `hostname` renamed `host.name`, `jaeger.version` turned into
`opencensus.exporterversion: Jaeger-<v>`); the tags `otel.scope.name`/`version` become the scope,
`span.kind` the kind, `w3c.tracestate` the trace state, and `error` (bool true) / `otel.status_code`
/ `otel.status_description` / `http.status_code` the status; the parent is the first CHILD_OF (else
FOLLOWS_FROM) reference in the span's own trace and every other reference a link tagged
`opentracing.ref_type`; a log's `event` field is the event name. Jaeger `flags` are not carried,
as in the translator.

A message that does not parse, an id of the wrong length or an invalid Timestamp/Duration fails the
whole request (`DecodeError`), as Jaeger's own decoder does; a span that parses but cannot be
stored (zero ids, no start time) is left out and counted in `rejected`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError as ProtoDecodeError
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from tracemesh.codecs import DecodeError
from tracemesh.codecs.jaeger_json import go_json_text
from tracemesh.codecs.jaeger_status import status_from_attributes, text
from tracemesh.codecs.proto import jaeger_model_pb2 as pb
from tracemesh.codecs.proto.jaeger_collector_pb2 import PostSpansRequest
from tracemesh.codecs.protowire import length_delimited
from tracemesh.codecs.utf8_repair import Rules, repair
from tracemesh.model.attributes import Attributes, AttrValue
from tracemesh.model.ids import SPAN_ID_SIZE, TRACE_ID_SIZE, ZERO_SPAN_ID, ZERO_TRACE_ID
from tracemesh.model.span import (
    REF_TYPE_KEY,
    Event,
    Link,
    RefType,
    Resource,
    Scope,
    Span,
    SpanKind,
    StatusCode,
)

NO_SERVICE_NAME = "OTLPResourceNoServiceName"  # the translator's process name for an empty resource
_MAX_UNIX_NANOS = 2**64 - 1  # OTLP times are fixed64 nanoseconds
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799  # 0001-01-01 .. 9999-12-31 UTC
_MAX_DURATION_SECONDS = 315_576_000_000  # 10,000 years, the Duration message's own limit
_INT64 = range(-(2**63), 2**63)
_KINDS = {k.jaeger_name: k for k in SpanKind if k is not SpanKind.UNSPECIFIED}
_STATUS_TAG = {StatusCode.OK: "OK", StatusCode.ERROR: "ERROR"}
_V_STR, _V_BOOL, _V_INT, _V_FLOAT, _V_BIN = pb.STRING, pb.BOOL, pb.INT64, pb.FLOAT64, pb.BINARY


class _Invalid(Exception):
    """A span that decodes but cannot be stored; the message says why."""


@dataclass(slots=True)
class DecodedSpans:
    """Spans accepted from a request, and how many were refused (with the first reason)."""

    spans: list[Span] = field(default_factory=list)
    rejected: int = 0
    error: str = ""
    repaired: int = 0  # spans with text that was not UTF-8, kept repaired (see `utf8_repair`)


def _warnings_field(warnings: list[str]) -> bytes:
    return b"".join(length_delimited(12, text.encode()) for text in warnings)  # Span.warnings


RULES = Rules(
    span="jaeger.api_v2.Span",
    warnings=_warnings_field,
    names=frozenset({"jaeger.api_v2.Span.operation_name"}),
    keys=frozenset({"jaeger.api_v2.KeyValue.key"}),
    # v_str -> v_binary, and v_type (field 2) becomes BINARY (4): the last value wins
    values={"jaeger.api_v2.KeyValue.v_str": (7, b"\x10\x04")},
)


def parse_repairing(message: Message, data: bytes, what: str) -> int:
    """Parse `data` into `message`; text that is not UTF-8 is repaired rather than refused.
    Returns how many spans were repaired."""
    try:
        message.ParseFromString(data)
        return 0
    except (ProtoDecodeError, RuntimeError, ValueError) as exc:
        error = DecodeError(f"invalid Jaeger api_v2 {what}: {exc}")
    try:
        fixed = repair(data, message.DESCRIPTOR, RULES)
        message.ParseFromString(fixed.data)
    except (DecodeError, ProtoDecodeError, RuntimeError, ValueError):
        raise error from None
    return fixed.spans


# ---- api_v2 -> model ---------------------------------------------------------------------------


def parse_post_spans(data: bytes) -> PostSpansRequest:
    request = PostSpansRequest()
    parse_repairing(request, data, "protobuf")
    return request


def decode_post_spans(data: bytes) -> DecodedSpans:
    """The spans of a serialized `PostSpansRequest`."""
    request = PostSpansRequest()
    repaired = parse_repairing(request, data, "protobuf")
    out = spans_from_batch(request.batch)
    out.repaired = repaired
    return out


def spans_from_batch(batch: pb.Batch) -> DecodedSpans:
    """Every span of the batch with its resource; spans sharing a process and scope share the
    same `Resource` and `Scope` objects, so `batch_from_spans` groups them as one."""
    out = DecodedSpans()
    batch_process = batch.process if batch.HasField("process") else None
    batch_key = None if batch_process is None else _process_key(batch_process)
    resources: dict[bytes | None, Resource] = {}
    scopes: dict[tuple[int, str, str], Scope] = {}
    for span in batch.spans:
        if not span.span_id and not span.trace_id and span.ByteSize() == 0:
            continue  # a blank span: skipped, as the translator does
        if span.HasField("process"):
            process: pb.Process | None = span.process
            key: bytes | None = _process_key(span.process)
        else:
            process, key = batch_process, batch_key
        resource = resources.get(key)
        if resource is None:
            resource = resources[key] = resource_from_process(process)
        try:
            out.spans.append(_span_from_pb(span, resource, scopes))
        except _Invalid as exc:
            out.rejected += 1
            out.error = out.error or str(exc)
    return out


def _process_key(process: pb.Process) -> bytes:
    """Equal processes, on the batch or on spans, make one resource (as the translator's hash)."""
    return bytes(process.SerializeToString(deterministic=True))


def resource_from_process(process: pb.Process | None) -> Resource:
    if process is None or process.service_name == NO_SERVICE_NAME:
        return Resource()
    if not process.service_name and not process.tags:
        return Resource()
    attributes: Attributes = {}
    if process.service_name:
        attributes["service.name"] = process.service_name
    attributes.update(attributes_from_tags(process.tags))
    if "hostname" in attributes and "host.name" not in attributes:
        attributes["host.name"] = attributes.pop("hostname")
    if "jaeger.version" in attributes and "opencensus.exporterversion" not in attributes:
        version = text(attributes["jaeger.version"])
        attributes["opencensus.exporterversion"] = "Jaeger-" + version
        del attributes["jaeger.version"]
    return Resource(attributes)


def tag_value(tag: pb.KeyValue) -> AttrValue:
    v_type = tag.v_type
    if v_type == _V_STR:
        return tag.v_str
    if v_type == _V_INT:
        return tag.v_int64
    if v_type == _V_BOOL:
        return tag.v_bool
    if v_type == _V_FLOAT:
        return tag.v_float64
    if v_type == _V_BIN:
        return tag.v_binary
    return f'<Unknown Jaeger TagType "{v_type}">'


def attributes_from_tags(tags: Iterable[pb.KeyValue]) -> Attributes:
    """Typed tags to attributes; a repeated key keeps its first position and its last value."""
    return {tag.key: tag_value(tag) for tag in tags}


def _span_attributes(tags: Iterable[pb.KeyValue]) -> tuple[Attributes, str, str]:
    """A span's attributes and scope in one pass: the first `otel.scope.name` tag and, only when
    there is one, the first `otel.scope.version` tag are the scope, not attributes."""
    attributes: Attributes = {}
    name = version = None
    for tag in tags:
        key = tag.key
        if key == "otel.scope.name" and name is None:
            name = tag.v_str
        elif key == "otel.scope.version" and version is None:
            version = tag.v_str
        else:
            attributes[key] = tag_value(tag)
    if name is None:
        if version is not None:  # rare: a version without a name stays an attribute, in place
            return attributes_from_tags(tags), "", ""
        return attributes, "", ""
    return attributes, name, version or ""


def _span_from_pb(
    span: pb.Span, resource: Resource, scopes: dict[tuple[int, str, str], Scope]
) -> Span:
    trace_id = _trace_id(span.trace_id, "span")
    span_id = _span_id(span.span_id, "span")
    start = _timestamp_ns(span.start_time, "span start_time")
    duration = _duration_ns(span.duration)
    parent = _parent_id(span, trace_id)
    links = _links(span.references, trace_id, parent)
    events = [_event(log, span_id) for log in span.logs]
    if trace_id == ZERO_TRACE_ID:
        raise _Invalid("span has an invalid trace id (all zeros)")
    if span_id == ZERO_SPAN_ID:
        raise _Invalid("span has an invalid span id (all zeros)")
    if start <= 0:
        raise _Invalid(f"span {span_id.hex()} has no start time (or one before 1970)")
    if start + duration > _MAX_UNIX_NANOS:
        raise _Invalid(f"span {span_id.hex()} has timestamps past the year 2554")

    attributes, scope_name, scope_version = _span_attributes(span.tags)
    scope_key = (id(resource), scope_name, scope_version)
    scope = scopes.get(scope_key)
    if scope is None:
        scope = scopes[scope_key] = Scope(scope_name, scope_version)
    kind = SpanKind.UNSPECIFIED
    if "span.kind" in attributes:
        kind = _KINDS.get(text(attributes.pop("span.kind")), SpanKind.UNSPECIFIED)
    status = status_from_attributes(attributes, kind)
    trace_state = text(attributes.pop("w3c.tracestate")) if "w3c.tracestate" in attributes else ""
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        name=span.operation_name,
        start_ns=start,
        end_ns=max(start + duration, 0),  # ending before the start: corrected at admission
        parent_span_id=b"" if parent == ZERO_SPAN_ID else parent,
        kind=kind,
        attributes=attributes,
        events=events,
        links=links,
        status=status,
        trace_state=trace_state,
        warnings=list(span.warnings),  # a client's, or ours from `utf8_repair`
        resource=resource,
        scope=scope,
    )


def _event(log: pb.Log, span_id: bytes) -> Event:
    time_ns = _timestamp_ns(log.timestamp, "log timestamp")
    if not 0 <= time_ns <= _MAX_UNIX_NANOS:
        raise _Invalid(f"span {span_id.hex()} has a log timestamp before 1970 or past 2554")
    attributes = attributes_from_tags(log.fields)
    name = text(attributes.pop("event")) if "event" in attributes else ""
    return Event(time_ns, name, attributes)


def _parent_id(span: pb.Span, trace_id: bytes) -> bytes:
    """Jaeger's ParentSpanID: the first CHILD_OF, else FOLLOWS_FROM, reference in the same trace."""
    follows_from = None
    for ref in span.references:
        if _trace_id(ref.trace_id, "reference") != trace_id:
            continue
        if ref.ref_type == pb.CHILD_OF:
            return _span_id(ref.span_id, "reference")
        if follows_from is None and ref.ref_type == pb.FOLLOWS_FROM:
            follows_from = _span_id(ref.span_id, "reference")
    return follows_from if follows_from is not None else ZERO_SPAN_ID


def _links(refs: Iterable[pb.SpanRef], trace_id: bytes, parent: bytes) -> list[Link]:
    """Every reference but CHILD_OF ones to the parent. (The translator compares span ids only,
    so it also drops a CHILD_OF link to a span of another trace that shares the parent's id; we
    compare the trace id too and keep that link.)"""
    links: list[Link] = []
    for ref in refs:
        ref_trace_id = _trace_id(ref.trace_id, "reference")
        ref_span_id = _span_id(ref.span_id, "reference")
        child_of = ref.ref_type == pb.CHILD_OF
        if child_of and ref_span_id == parent and ref_trace_id == trace_id:
            continue
        ref_type = "child_of" if child_of else "follows_from"
        links.append(Link(ref_trace_id, ref_span_id, "", {REF_TYPE_KEY: ref_type}))
    return links


def _trace_id(raw: bytes, what: str) -> bytes:
    if len(raw) == TRACE_ID_SIZE:
        return raw
    if len(raw) == SPAN_ID_SIZE:
        return ZERO_SPAN_ID + raw
    if not raw:
        return ZERO_TRACE_ID
    raise DecodeError(f"{what} trace_id must be 8 or 16 bytes, got {len(raw)}")


def _span_id(raw: bytes, what: str) -> bytes:
    if len(raw) == SPAN_ID_SIZE:
        return raw
    if not raw:
        return ZERO_SPAN_ID
    raise DecodeError(f"{what} span_id must be 8 bytes, got {len(raw)}")


def _timestamp_ns(ts: Timestamp, what: str) -> int:
    seconds, nanos = ts.seconds, ts.nanos
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS or not 0 <= nanos < 1_000_000_000:
        raise DecodeError(f"{what} is not a valid Timestamp ({seconds}s {nanos}ns)")
    return int(seconds) * 1_000_000_000 + int(nanos)


def _duration_ns(duration: Duration) -> int:
    seconds, nanos = duration.seconds, duration.nanos
    if (
        abs(seconds) > _MAX_DURATION_SECONDS
        or abs(nanos) >= 1_000_000_000
        or (seconds > 0 and nanos < 0)
        or (seconds < 0 and nanos > 0)
    ):
        raise DecodeError(f"span duration is not a valid Duration ({seconds}s {nanos}ns)")
    total = int(seconds) * 1_000_000_000 + int(nanos)
    if total not in _INT64:
        raise DecodeError(f"span duration {seconds}s is out of range")
    return total


# ---- model -> api_v2 ---------------------------------------------------------------------------


def tag(key: str, value: AttrValue) -> pb.KeyValue:
    if isinstance(value, str):
        return pb.KeyValue(key=key, v_type=pb.STRING, v_str=value)
    if isinstance(value, bool):  # before int: bool is an int in Python
        return pb.KeyValue(key=key, v_type=pb.BOOL, v_bool=value)
    if isinstance(value, int):
        if value in _INT64:
            return pb.KeyValue(key=key, v_type=pb.INT64, v_int64=value)
        return pb.KeyValue(key=key, v_type=pb.STRING, v_str=str(value))
    if isinstance(value, float):
        return pb.KeyValue(key=key, v_type=pb.FLOAT64, v_float64=value)
    if isinstance(value, bytes):
        return pb.KeyValue(key=key, v_type=pb.BINARY, v_binary=value)
    if value is None:
        return pb.KeyValue(key=key, v_type=pb.STRING)
    return pb.KeyValue(key=key, v_type=pb.STRING, v_str=go_json_text(value))


def process_to_pb(resource: Resource) -> pb.Process:
    attributes = resource.attributes
    if not attributes:
        return pb.Process(service_name=NO_SERVICE_NAME)
    process = pb.Process(service_name=text(attributes.get("service.name")))
    process.tags.extend(tag(k, v) for k, v in attributes.items() if k != "service.name")
    return process


def span_to_pb(span: Span, *, with_process: bool = False) -> pb.Span:
    """One api_v2 span; `with_process` embeds its process (Kafka's one-span-per-message form)."""
    out = pb.Span(
        trace_id=_sized(span.trace_id, TRACE_ID_SIZE),
        span_id=_sized(span.span_id, SPAN_ID_SIZE),
        operation_name=span.name,
    )
    out.references.extend(_references(span))
    out.start_time.FromNanoseconds(span.start_ns)
    out.duration.FromNanoseconds(span.end_ns - span.start_ns)
    out.tags.extend(_span_tags(span))
    for event in span.events:
        log = out.logs.add()
        log.timestamp.FromNanoseconds(event.time_ns)
        if event.name and "event" not in event.attributes:
            log.fields.append(tag("event", event.name))
        log.fields.extend(tag(k, v) for k, v in event.attributes.items())
    if with_process:
        out.process.CopyFrom(process_to_pb(span.resource))
    return out


def _span_tags(span: Span) -> list[pb.KeyValue]:
    tags: list[pb.KeyValue] = []
    if span.scope.name:
        tags.append(tag("otel.scope.name", span.scope.name))
    if span.scope.version:
        tags.append(tag("otel.scope.version", span.scope.version))
    tags.extend(tag(k, v) for k, v in span.attributes.items())
    if span.kind is not SpanKind.UNSPECIFIED:
        tags.append(tag("span.kind", span.kind.jaeger_name))
    if span.status.code in _STATUS_TAG:
        tags.append(tag("otel.status_code", _STATUS_TAG[span.status.code]))
    if span.status.code is StatusCode.ERROR:
        tags.append(tag("error", True))
    if span.status.message:
        tags.append(tag("otel.status_description", span.status.message))
    if span.trace_state:
        tags.append(tag("w3c.tracestate", span.trace_state))
    return tags


def _references(span: Span) -> list[pb.SpanRef]:
    """The parent first as CHILD_OF; a link to that same parent only changes its type."""
    trace_id = _sized(span.trace_id, TRACE_ID_SIZE)
    parent = _sized(span.parent_span_id, SPAN_ID_SIZE) if span.parent_span_id else b""
    refs: list[pb.SpanRef] = []
    if parent:
        refs.append(pb.SpanRef(trace_id=trace_id, span_id=parent, ref_type=pb.CHILD_OF))
    for link in span.links:
        link_trace, link_span = (
            _sized(link.trace_id, TRACE_ID_SIZE),
            _sized(link.span_id, SPAN_ID_SIZE),
        )
        ref_type = pb.CHILD_OF if link.ref_type is RefType.CHILD_OF else pb.FOLLOWS_FROM
        if parent and (link_trace, link_span) == (trace_id, parent):
            refs[0].ref_type = ref_type
            continue
        refs.append(pb.SpanRef(trace_id=link_trace, span_id=link_span, ref_type=ref_type))
    return refs


def _sized(raw: bytes, size: int) -> bytes:
    """An id at its wire size: malformed link ids are cut or zero-padded on the left."""
    return raw if len(raw) == size else raw[-size:].rjust(size, b"\0")


def batches_from_spans(spans: Sequence[Span]) -> list[pb.Batch]:
    """One batch per distinct resource object, with the process set on the batch (as the
    translator's `ProtoFromTraces` does)."""
    batches: dict[int, pb.Batch] = {}
    for span in spans:
        batch = batches.get(id(span.resource))
        if batch is None:
            batch = batches[id(span.resource)] = pb.Batch(process=process_to_pb(span.resource))
        batch.spans.append(span_to_pb(span))
    return list(batches.values())


def request_from_spans(spans: Sequence[Span]) -> PostSpansRequest:
    """All spans in one `PostSpansRequest`: the first span's process is the batch's, and every
    span from another resource carries its own `process` (which overrides the batch's)."""
    request = PostSpansRequest()
    if not spans:
        return request
    first = spans[0].resource
    request.batch.process.CopyFrom(process_to_pb(first))
    for span in spans:
        request.batch.spans.append(span_to_pb(span, with_process=span.resource is not first))
    return request
