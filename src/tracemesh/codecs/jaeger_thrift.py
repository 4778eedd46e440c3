"""Jaeger Thrift (`jaeger.thrift` Batch) <-> tracemesh spans, mapped as OpenTelemetry's Jaeger
translator does (pkg/translator/jaeger in opentelemetry-collector-contrib, which Jaeger v2 uses).

Decoding: ids are signed i64 halves of unsigned big-endian ids; the parent is `parentSpanId`, or
else the first CHILD_OF (then FOLLOWS_FROM) reference within the trace; every other reference is a
link whose `opentracing.ref_type` attribute keeps its type; tags become typed attributes except
`span.kind` (the kind), `error`/`otel.status_code`/`otel.status_description` (the status, with
`http.status_code` as the fallback), `w3c.tracestate` and `otel.scope.name`/`version`; the process
becomes the resource (`service.name` plus tags, `hostname` -> `host.name`, `jaeger.version` ->
`opencensus.exporterversion`); a log's `event` field names its event; microseconds become
nanoseconds; Jaeger's sampled flag is kept in bit 0. Spans no store could index (zero ids, no
start, times past 2^64 ns) are counted as rejected, not stored.

Ingest goes straight from the Thrift structs to `SpanRow`s, writing each span's OTLP bytes by hand
with the encoded form of repeated tags cached: building model spans and then protobuf messages
took two to three times as long (ADR 0001). `spans_from_rows` gives the model view; tests check
the fast path against a plain model-level version of the same mapping. Faster still, when built:
`decode_batch` and `decode_emit_batch` first try the C accelerator (tracemesh/accel/
_jaeger_thrift.c), which goes from the bytes to the same rows, byte for byte, in one pass, and
declines anything unusual; the Python path (`decode_*_python`) is the reference it is tested
against and what runs when it declines.
Encoding (`batch_to_thrift`) is the inverse mapping, in the tag order of `codecs.jaeger_json`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from tracemesh import accel
from tracemesh.codecs import DecodeError
from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.jaeger_json import go_json_text
from tracemesh.codecs.jaeger_status import pop_scope, status_from_attributes
from tracemesh.codecs.otlp_proto import DecodedBatch, span_from_row
from tracemesh.codecs.protowire import encode_varint
from tracemesh.codecs.thrift_repair import repair_batch
from tracemesh.model.attributes import Attributes, AttrValue
from tracemesh.model.batch import ResourceGroup, SpanBatch, SpanRow
from tracemesh.model.ids import span_id_from_int, trace_id_from_ints
from tracemesh.model.span import (
    REF_TYPE_KEY,
    Event,
    RefType,
    Resource,
    Scope,
    Span,
    SpanKind,
    Status,
    StatusCode,
)

SAMPLED_FLAG = 1
MAX_US = (2**64 - 1) // 1000  # OTLP times are fixed64 nanoseconds
_U64 = 2**64 - 1
_I64_MAX = 2**63 - 1
_CHILD_OF = ts.SpanRefType.CHILD_OF
_FOLLOWS_FROM = ts.SpanRefType.FOLLOWS_FROM
_STATUS_NAME = {StatusCode.OK: "OK", StatusCode.ERROR: "ERROR"}
_LONG, _BOOL = ts.TagType.LONG, ts.TagType.BOOL

# Tags the mapping reads. The first four never stay attributes; the next three stay unless the
# mapping consumes them (`error=true`, a status description, a scope version after a name); the
# HTTP ones only inform the status.
_ALWAYS_TAKEN = frozenset(("span.kind", "otel.status_code", "w3c.tracestate", "otel.scope.name"))
_MAYBE_TAKEN = frozenset(("error", "otel.status_description", "otel.scope.version"))
_SPECIAL = _ALWAYS_TAKEN | _MAYBE_TAKEN | {"http.status_code", "http.status_message"}

# The C accelerator (tracemesh/accel/_jaeger_thrift.c): bytes to rows in one pass, several times
# faster; it declines what it does not handle exactly like the Python path below.
_accel = accel.load("_jaeger_thrift")
if _accel is not None:
    _accel.setup(SpanRow, tuple(SpanKind), tuple(StatusCode))
ACCELERATED = _accel is not None
_COMPACT = {"compact": True, "binary": False}


# ---- bytes -> rows -----------------------------------------------------------------------------


def decode_batch(data: bytes, protocol: str = "binary") -> DecodedBatch:
    """A bare Batch struct, as `POST /api/traces` carries it (binary protocol)."""
    fast = decode_accelerated(data, protocol, envelope=False)
    return fast if fast is not None else decode_batch_python(data, protocol)


def decode_emit_batch(data: bytes, protocol: str) -> DecodedBatch:
    """One agent datagram: an `emitBatch` message envelope and its arguments."""
    fast = decode_accelerated(data, protocol, envelope=True)
    return fast if fast is not None else decode_emit_batch_python(data, protocol)


def decode_accelerated(data: bytes, protocol: str, envelope: bool) -> DecodedBatch | None:
    """What the C accelerator makes of a bare Batch or (`envelope`) an `emitBatch` message: the
    same as the Python path, or None when the accelerator is missing or declines the input (it
    declines anything unusual, and the Python path then gives the exact result or error)."""
    compact = _COMPACT.get(protocol)
    if _accel is None or compact is None or type(data) is not bytes:
        return None
    found = _accel.decode(data, compact, envelope)
    if found is None:
        return None
    groups, process_offset = found
    bad_text: list[bool] = []
    try:  # the process is skipped in C: once per batch, through the usual reader
        process = ts.decode_struct(
            data, ts.Process, protocol, process_offset,
            lambda struct_: bad_text.append(ts.repair_strings(struct_)),
        )  # fmt: skip
    except ts.ThriftError:
        return None
    if any(bad_text):  # text that is not UTF-8: the Python path repairs it with warnings
        return None
    resource = resource_from_process(process)
    return DecodedBatch(
        SpanBatch(
            [ResourceGroup(resource, Scope(name, version), rows) for name, version, rows in groups]
        )
    )


def decode_batch_python(data: bytes, protocol: str = "binary") -> DecodedBatch:
    """`decode_batch` without the accelerator: the reference it is checked against."""
    try:
        batch = ts.decode_struct(data, ts.Batch, protocol, repair=repair_batch)
    except ts.ThriftError as exc:
        raise DecodeError(str(exc)) from None
    return batch_from_thrift(batch)


def decode_emit_batch_python(data: bytes, protocol: str) -> DecodedBatch:
    """`decode_emit_batch` without the accelerator: the reference it is checked against."""
    try:
        _, _, args = ts.decode_message(
            data, protocol, {ts.EMIT_BATCH: ts.EmitBatchArgs}, repair_batch
        )
    except ts.ThriftError as exc:
        raise DecodeError(str(exc)) from None
    assert isinstance(args, ts.EmitBatchArgs)
    return batch_from_thrift(args.batch)


def batch_from_thrift(batch: ts.Batch | None) -> DecodedBatch:
    """Rows grouped by instrumentation scope under the batch's one resource."""
    if batch is None:
        raise DecodeError("emitBatch carries no Batch (field 1)")
    if batch.process is None or batch.spans is None:  # required, as Jaeger's reader insists
        missing = "process (field 1)" if batch.process is None else "spans (field 2)"
        raise DecodeError(f"the Batch has no {missing}")
    out = DecodedBatch(SpanBatch(repaired=getattr(batch, "repaired", 0)))
    resource = resource_from_process(batch.process)
    groups: dict[tuple[str, str], ResourceGroup] = {}
    for jspan in batch.spans:
        reason = invalid_reason(
            jspan.traceIdHigh, jspan.traceIdLow, jspan.spanId, jspan.startTime, jspan.duration
        )
        if not reason:
            try:
                scope, row = _row(jspan)
            except _BadSpan as exc:
                reason = str(exc)
        if reason:
            out.rejected += 1
            out.error = out.error or reason
            continue
        group = groups.get(scope)
        if group is None:
            group = groups[scope] = ResourceGroup(resource, Scope(*scope))
        group.rows.append(row)
    out.batch.groups.extend(groups.values())
    return out


def spans_from_rows(batch: SpanBatch) -> list[Span]:
    """The model view of decoded rows (for tests and anything that needs whole spans)."""
    return [span_from_row(row.raw, g.resource, g.scope) for g in batch.groups for row in g.rows]


def invalid_reason(
    trace_high: int | None,
    trace_low: int | None,
    span_id: int | None,
    start_us: int | None,
    duration_us: int | None,
) -> str:
    """Why a span cannot be stored; empty when it can. Shared with the Zipkin Thrift codec."""
    duration_us = duration_us or 0
    if (
        (trace_high or trace_low)
        and span_id
        and start_us
        and start_us > 0
        and start_us + duration_us <= MAX_US
    ):
        return ""
    if not trace_high and not trace_low:
        return "span has a zero trace id"
    if not span_id:
        trace = trace_id_from_ints(trace_high or 0, trace_low or 0).hex()
        return f"span in trace {trace} has a zero span id"
    shown = span_id_from_int(span_id).hex()
    if not start_us or start_us < 0:
        return f"span {shown} has no start time"
    return f"span {shown} has a time beyond the year 2554"


class _BadSpan(Exception):
    """A span whose inner values (log timestamps) no store can represent."""


def _row(jspan: ts.Span) -> tuple[tuple[str, str], SpanRow]:
    """(scope name and version, the row) for a span `invalid_reason` accepted.

    The hottest code of Thrift ingest, so written for speed: the common case of a string tag
    seen before costs one dict lookup."""
    attrs: list[bytes] = []
    append = attrs.append
    cached = _ATTRS.get
    special: Attributes | None = None
    positions: dict[str, list[int]] = {}
    for tag in jspan.tags or ():
        key = tag.key
        if key in _SPECIAL:
            if special is None:
                special = {}
            special[key] = tag_value(tag)
            if key in _ALWAYS_TAKEN:
                continue
            if key in _MAYBE_TAKEN:
                positions.setdefault(key, []).append(len(attrs))
        vtype = tag.vType
        if not vtype:
            encoded = cached((key, tag.vStr))
        elif vtype in (_LONG, _BOOL):
            encoded = cached((key, vtype, tag.vLong, tag.vBool))
        else:
            encoded = None
        append(encoded if encoded is not None else _attribute(tag))
    kind = SpanKind.UNSPECIFIED
    status = _NO_STATUS
    scope = _NO_SCOPE
    trace_state = ""
    if special is not None:
        scope = pop_scope(special)
        kind_name = special.pop("span.kind", None)
        if isinstance(kind_name, str):
            kind = SpanKind.from_jaeger_name(kind_name)
        status = status_from_attributes(special, kind)
        state = special.pop("w3c.tracestate", "")
        trace_state = state if isinstance(state, str) else ""
        for key, indexes in positions.items():
            if key not in special:  # consumed by the mapping: drop every occurrence
                for index in indexes:
                    attrs[index] = b""
    trace_high, trace_low = jspan.traceIdHigh or 0, jspan.traceIdLow or 0
    trace_id = (((trace_high & _U64) << 64) | (trace_low & _U64)).to_bytes(16, "big")
    span_id = ((jspan.spanId or 0) & _U64).to_bytes(8, "big")
    parent = jspan.parentSpanId or (
        _parent_id(jspan.references, trace_high, trace_low) if jspan.references else 0
    )
    parent_id = (parent & _U64).to_bytes(8, "big") if parent else b""
    name = jspan.operationName or ""
    start = (jspan.startTime or 0) * 1000
    end = max(start + (jspan.duration or 0) * 1000, 0)  # before the start: see admission
    head = _NAME_FIELDS.get(name)
    if head is None:
        head = _name_field(name)
    if kind:
        head += _KIND_FIELD[kind]
    if parent_id:
        head = b"\x22\x08" + parent_id + head
    if trace_state:
        head = _field(b"\x1a", trace_state.encode()) + head
    parts = [b"\x0a\x10", trace_id, b"\x12\x08", span_id, head, _TIMES(0x39, start, 0x41, end)]
    parts += attrs
    if jspan.logs:
        parts += [_event(log) for log in jspan.logs]
    if jspan.references:
        parts += _links(jspan.references, parent)
    if status is not _NO_STATUS and (status.code or status.message):
        parts.append(_status(status))
    if (jspan.flags or 0) & SAMPLED_FLAG:
        parts.append(_SAMPLED_FLAGS_FIELD)
    row = (trace_id, span_id, parent_id, name, kind, start, end, status.code, b"".join(parts))
    return scope, tuple.__new__(SpanRow, row)


def _parent_id(refs: Sequence[ts.SpanRef], trace_high: int, trace_low: int) -> int:
    """Without `parentSpanId`: the first CHILD_OF, else FOLLOWS_FROM, reference in the trace."""
    follows = 0
    for ref in refs:
        if (ref.traceIdHigh or 0) != trace_high or (ref.traceIdLow or 0) != trace_low:
            continue
        if not ref.refType:  # CHILD_OF, also when absent (Go's zero value)
            return ref.spanId or 0
        if not follows and ref.refType == _FOLLOWS_FROM:
            follows = ref.spanId or 0
    return follows


def _links(refs: Sequence[ts.SpanRef], parent: int) -> list[bytes]:
    links: list[bytes] = []
    for ref in refs:
        child_of = not ref.refType
        if child_of and (ref.spanId or 0) == parent:
            continue  # the parent itself
        trace = (((ref.traceIdHigh or 0) & _U64) << 64 | ((ref.traceIdLow or 0) & _U64)).to_bytes(
            16, "big"
        )
        span = ((ref.spanId or 0) & _U64).to_bytes(8, "big")
        ref_type = _CHILD_OF_ATTR if child_of else _FOLLOWS_FROM_ATTR
        links.append(_field(b"\x6a", b"\x0a\x10" + trace + b"\x12\x08" + span + ref_type))
    return links


def _event(log: ts.Log) -> bytes:
    timestamp = log.timestamp or 0
    if not 0 <= timestamp <= MAX_US:
        raise _BadSpan(f"log timestamp {timestamp} is out of range")
    parts = [_EVENT_TIME(0x09, timestamp * 1000), b""]
    for tag in log.fields or ():
        key = tag.key or ""
        if key == "event":  # the last one names the event; none stays an attribute
            value = tag_value(tag)
            parts[1] = _field(b"\x12", value.encode()) if isinstance(value, str) else b""
            continue
        parts.append(b"\x1a" + _attribute(tag)[1:])  # Event.attributes is field 3, not 9
    return _field(b"\x5a", b"".join(parts))


def _status(status: Status) -> bytes:
    body = b""
    if status.message:
        body = _field(b"\x12", status.message.encode())
    if status.code:
        body += b"\x18" + bytes((int(status.code),))
    return _field(b"\x7a", body)


# ---- tags --------------------------------------------------------------------------------------


def tag_value(tag: ts.Tag) -> AttrValue:
    """A tag's typed value; an unset value is its type's zero, as in Go."""
    vtype = tag.vType
    if not vtype:  # STRING, also when the type is absent
        return tag.vStr or ""
    if vtype == ts.TagType.LONG:
        return tag.vLong or 0
    if vtype == ts.TagType.DOUBLE:
        return tag.vDouble or 0.0
    if vtype == ts.TagType.BOOL:
        return bool(tag.vBool)
    if vtype == ts.TagType.BINARY:
        return tag.vBinary or b""
    return f"<Unknown Jaeger TagType {vtype}>"


def attributes_from_tags(tags: Iterable[ts.Tag] | None) -> Attributes:
    return {tag.key or "": tag_value(tag) for tag in tags or ()}


def resource_from_process(process: ts.Process) -> Resource:
    """`service.name` first, then the process tags (a `service.name` tag wins, as upstream)."""
    attributes: Attributes = {}
    if process.serviceName:
        attributes["service.name"] = process.serviceName
    attributes.update(attributes_from_tags(process.tags))
    if "hostname" in attributes and "host.name" not in attributes:
        attributes["host.name"] = attributes.pop("hostname")
    if "jaeger.version" in attributes and "opencensus.exporterversion" not in attributes:
        version = attributes.pop("jaeger.version")
        attributes["opencensus.exporterversion"] = "Jaeger-" + (
            version if isinstance(version, str) else ""
        )
    return Resource(attributes)


# ---- OTLP protobuf by hand ---------------------------------------------------------------------

_LENGTHS = [bytes((n,)) for n in range(128)]
_TIMES = struct.Struct("<BQBQ").pack  # Span.start_time_unix_nano, end_time_unix_nano (fixed64)
_EVENT_TIME = struct.Struct("<BQ").pack  # Event.time_unix_nano
_DOUBLE = struct.Struct("<d").pack
_KIND_FIELD = {kind: b"\x30" + bytes((kind,)) for kind in SpanKind}
_SAMPLED_FLAGS_FIELD = b"\x85\x01" + SAMPLED_FLAG.to_bytes(4, "little")  # Span.flags (fixed32)
# Encoded `Span.attributes` fields by (key, value) for string tags and (key, type, long, bool)
# for integer and boolean ones: most tags repeat (component, http.method, status codes...), so
# most cost one dict lookup. Cleared when full.
_ATTRS: dict[tuple[object, ...], bytes] = {}
_ATTRS_MAX = 50_000
# `Span.name` fields by operation name, which repeat even more. Cleared when full.
_NAME_FIELDS: dict[str, bytes] = {}
_NAME_FIELDS_MAX = 10_000
_NO_STATUS = Status()
_NO_SCOPE = ("", "")


def _name_field(name: str) -> bytes:
    if len(_NAME_FIELDS) >= _NAME_FIELDS_MAX:
        _NAME_FIELDS.clear()
    encoded = _NAME_FIELDS[name] = _field(b"\x2a", name.encode()) if name else b""
    return encoded


def _field(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field: its one-byte tag, the length, the bytes."""
    size = len(data)
    return tag + (_LENGTHS[size] if size < 128 else encode_varint(size)) + data


def _attribute(tag: ts.Tag) -> bytes:
    """`Span.attributes` (field 9) holding one KeyValue; string, integer and boolean tags are
    cached under the same keys `_row` looks them up by."""
    vtype = tag.vType
    key = tag.key or ""
    if not vtype:
        cache_key: tuple[object, ...] = (tag.key, tag.vStr)
        any_value = _field(b"\x0a", (tag.vStr or "").encode())
    elif vtype == ts.TagType.LONG or vtype == ts.TagType.BOOL:
        cache_key = (tag.key, vtype, tag.vLong, tag.vBool)
        if vtype == ts.TagType.LONG:
            any_value = b"\x18" + encode_varint((tag.vLong or 0) & _U64)
        else:
            any_value = b"\x10\x01" if tag.vBool else b"\x10\x00"
    elif vtype == ts.TagType.DOUBLE:  # rarely repeated, and -0.0 == 0.0 would mix them up
        return _key_value(key, b"\x21" + _DOUBLE(tag.vDouble or 0.0))
    elif vtype == ts.TagType.BINARY:
        return _key_value(key, _field(b"\x3a", tag.vBinary or b""))
    else:
        return _key_value(key, _field(b"\x0a", f"<Unknown Jaeger TagType {vtype}>".encode()))
    if len(_ATTRS) >= _ATTRS_MAX:
        _ATTRS.clear()
    encoded = _ATTRS[cache_key] = _key_value(key, any_value)
    return encoded


def _key_value(key: str, any_value: bytes) -> bytes:
    encoded_key = key.encode()
    size_key, size_value = len(encoded_key), len(any_value)
    size = size_key + size_value + 4
    if size < 128:  # every length fits one byte: the common case, in one formatting call
        return b"J%c\n%c%b\x12%c%b" % (size, size_key, encoded_key, size_value, any_value)
    return _field(b"\x4a", _field(b"\x0a", encoded_key) + _field(b"\x12", any_value))


# Link.attributes (field 4) holding `opentracing.ref_type`.
_CHILD_OF_ATTR = b"\x22" + _key_value(REF_TYPE_KEY, _field(b"\x0a", b"child_of"))[1:]
_FOLLOWS_FROM_ATTR = b"\x22" + _key_value(REF_TYPE_KEY, _field(b"\x0a", b"follows_from"))[1:]


# ---- model -> Thrift ---------------------------------------------------------------------------


def batch_to_thrift(spans: Sequence[Span], protocol: str = "binary") -> bytes:
    """Spans of one resource as a bare Batch (the body of `POST /api/traces`)."""
    return ts.encode_struct(thrift_batch(spans), protocol)


def emit_batch_message(spans: Sequence[Span], protocol: str = "compact", seqid: int = 0) -> bytes:
    """Spans of one resource as an agent datagram: a ONEWAY `emitBatch` message."""
    return ts.encode_message(ts.EMIT_BATCH, seqid, ts.EmitBatchArgs(thrift_batch(spans)), protocol)


def thrift_batch(spans: Sequence[Span]) -> ts.Batch:
    """A Batch holds one process: every span must carry an equal resource."""
    resource = spans[0].resource if spans else Resource()
    for span in spans:
        if span.resource is not resource and span.resource != resource:
            raise ValueError("a Jaeger Batch has one process: group spans by resource first")
    return ts.Batch(process=thrift_process(resource), spans=[thrift_span(s) for s in spans])


def thrift_process(resource: Resource) -> ts.Process:
    tags = [_tag(k, v) for k, v in resource.attributes.items() if k != "service.name"]
    return ts.Process(serviceName=resource.service_name, tags=tags)


def thrift_span(span: Span) -> ts.Span:
    trace_high, trace_low = _id_halves(span.trace_id)
    parent = _signed(span.parent_span_id) if span.parent_span_id else 0
    refs: list[ts.SpanRef] = []
    if parent:
        refs.append(ts.SpanRef(_CHILD_OF, trace_low, trace_high, parent))
    for link in span.links:
        high, low = _id_halves(link.trace_id)
        ref_type = _CHILD_OF if link.ref_type is RefType.CHILD_OF else _FOLLOWS_FROM
        refs.append(ts.SpanRef(ref_type, low, high, _signed(link.span_id)))
    start_us = span.start_ns // 1000
    return ts.Span(
        traceIdLow=trace_low,
        traceIdHigh=trace_high,
        spanId=_signed(span.span_id),
        parentSpanId=parent,
        operationName=span.name,
        references=refs or None,
        flags=SAMPLED_FLAG if span.flags & SAMPLED_FLAG else 0,
        startTime=start_us,
        duration=max(span.end_ns // 1000 - start_us, 0),
        tags=_span_tags(span),
        logs=[_log(event) for event in span.events] or None,
    )


def _span_tags(span: Span) -> list[ts.Tag]:
    tags: list[ts.Tag] = []
    if span.scope.name:
        tags.append(_tag("otel.scope.name", span.scope.name))
    if span.scope.version:
        tags.append(_tag("otel.scope.version", span.scope.version))
    tags.extend(_tag(k, v) for k, v in span.attributes.items())
    if span.kind is not SpanKind.UNSPECIFIED:
        tags.append(_tag("span.kind", span.kind.jaeger_name))
    status = _STATUS_NAME.get(span.status.code)
    if status:
        tags.append(_tag("otel.status_code", status))
    if span.status.code is StatusCode.ERROR:
        tags.append(_tag("error", True))
    if span.status.message:
        tags.append(_tag("otel.status_description", span.status.message))
    if span.trace_state:
        tags.append(_tag("w3c.tracestate", span.trace_state))
    return tags


def _log(event: Event) -> ts.Log:
    fields: list[ts.Tag] = []
    if event.name and "event" not in event.attributes:
        fields.append(_tag("event", event.name))
    fields.extend(_tag(k, v) for k, v in event.attributes.items())
    return ts.Log(timestamp=event.time_ns // 1000, fields=fields)


def _tag(key: str, value: AttrValue) -> ts.Tag:
    if isinstance(value, str):
        return ts.Tag(key, ts.TagType.STRING, vStr=value)
    if isinstance(value, bool):  # before int: bool is an int in Python
        return ts.Tag(key, ts.TagType.BOOL, vBool=value)
    if isinstance(value, int):
        if -_I64_MAX - 1 <= value <= _I64_MAX:
            return ts.Tag(key, ts.TagType.LONG, vLong=value)
        return ts.Tag(key, ts.TagType.STRING, vStr=str(value))
    if isinstance(value, float):
        return ts.Tag(key, ts.TagType.DOUBLE, vDouble=value)
    if isinstance(value, bytes):
        return ts.Tag(key, ts.TagType.BINARY, vBinary=value)
    if value is None:
        return ts.Tag(key, ts.TagType.STRING, vStr="")
    return ts.Tag(key, ts.TagType.STRING, vStr=go_json_text(value))


def _signed(id_bytes: bytes) -> int:
    value = int.from_bytes(id_bytes[-8:], "big")
    return value - (1 << 64) if value > _I64_MAX else value


def _id_halves(trace_id: bytes) -> tuple[int, int]:
    """(high, low) as signed i64s; a short id is zero-extended on the left."""
    padded = trace_id[-16:].rjust(16, b"\0")
    return _signed(padded[:8]), _signed(padded[8:])
