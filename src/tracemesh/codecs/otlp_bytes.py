"""OTLP `Span` messages written byte by byte, for receivers that assemble spans field by field from
another format: faster than filling a upb message (whose every setter is a Python call), and the
pieces that repeat between spans (string attributes, annotations) can be cached as bytes.

Each function returns one complete field of `opentelemetry.proto.trace.v1.Span` (tag, length,
body); a span is the concatenation of its fields in any order. Values that are not strings go
through the generated classes, which are rarely needed on these paths.
"""

from __future__ import annotations

import struct

from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from tracemesh.codecs.otlp_proto import attributes_to_pb, value_to_pb
from tracemesh.codecs.protowire import encode_varint
from tracemesh.model.attributes import AttrValue
from tracemesh.model.span import Event, Link

_fixed64 = struct.Struct("<Q").pack

# Span field tags (field number << 3 | wire type).
TRACE_STATE, NAME, KIND, START, END = b"\x1a", b"\x2a", b"\x30", b"\x39", b"\x41"
ATTRIBUTE, EVENT, LINK, STATUS = b"\x4a", b"\x5a", b"\x6a", b"\x7a"
# Event fields.
_EVENT_TIME, _EVENT_NAME, _EVENT_ATTRIBUTE, _EVENT_DROPPED = b"\x09", b"\x12", b"\x1a", b"\x20"


def field(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field."""
    size = len(data)
    return tag + (bytes((size,)) if size < 0x80 else encode_varint(size)) + data


def head(
    trace_id: bytes,
    span_id: bytes,
    parent_span_id: bytes,
    trace_state: str,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
) -> bytes:
    """The scalar fields; ids must already be 16 and 8 bytes (parent 8 or empty)."""
    out = b"\x0a\x10" + trace_id + b"\x12\x08" + span_id
    if parent_span_id:
        out += b"\x22\x08" + parent_span_id
    if trace_state:
        out += field(TRACE_STATE, trace_state.encode())
    if name:
        out += field(NAME, name.encode())
    if kind:
        out += KIND + bytes((kind,))
    if start_ns:
        out += START + _fixed64(start_ns)
    if end_ns:
        out += END + _fixed64(end_ns)
    return out


def string_attribute(key: str, value: str, tag: bytes = ATTRIBUTE) -> bytes:
    """A `KeyValue` field with a string value: the common case, one bytes formatting call."""
    key_bytes, value_bytes = key.encode(), value.encode()
    key_size, value_size = len(key_bytes), len(value_bytes)
    if key_size + value_size < 122:  # every length below fits in one varint byte
        return b"%b%c\n%c%b\x12%c\n%c%b" % (
            tag, key_size + value_size + 6, key_size, key_bytes,
            value_size + 2, value_size, value_bytes,
        )  # fmt: skip
    any_value = field(b"\x0a", value_bytes)
    return field(tag, field(b"\x0a", key_bytes) + field(b"\x12", any_value))


def attribute(key: str, value: AttrValue, tag: bytes = ATTRIBUTE) -> bytes:
    """A `KeyValue` field holding any attribute value."""
    kind = type(value)
    if kind is str:
        return string_attribute(key, value, tag)  # type: ignore[arg-type]
    if kind is int or kind is bool:  # AnyValue.int_value = 3 / bool_value = 2, both varints
        number = value & 0xFFFFFFFFFFFFFFFF  # type: ignore[operator]
        any_value = (b"\x18" if kind is int else b"\x10") + encode_varint(number)
        return field(tag, field(b"\x0a", key.encode()) + field(b"\x12", any_value))
    kv = KeyValue(key=key)
    value_to_pb(value, kv.value)
    return field(tag, kv.SerializeToString())


def event_body(event: Event) -> bytes:
    """An `Event` without its time: what two annotations with one value have in common."""
    out = field(_EVENT_NAME, event.name.encode()) if event.name else b""
    for key, value in event.attributes.items():
        out += attribute(key, value, _EVENT_ATTRIBUTE)
    if event.dropped_attributes_count:
        out += _EVENT_DROPPED + encode_varint(event.dropped_attributes_count)
    return out


def event(time_ns: int, body: bytes) -> bytes:
    if time_ns:
        body = _EVENT_TIME + _fixed64(time_ns) + body
    size = len(body)
    return EVENT + (bytes((size,)) if size < 0x80 else encode_varint(size)) + body


def link(item: Link) -> bytes:
    pb = PbSpan.Link(
        trace_id=item.trace_id,
        span_id=item.span_id,
        trace_state=item.trace_state,
        dropped_attributes_count=item.dropped_attributes_count,
        flags=item.flags,
    )
    attributes_to_pb(item.attributes, pb.attributes)
    return field(LINK, pb.SerializeToString())


def status(code: int, message: str) -> bytes:
    """The `Status` field; empty when both parts are unset."""
    body = field(b"\x12", message.encode()) if message else b""
    if code:
        body += b"\x18" + bytes((code,))
    return field(STATUS, body) if body else b""
