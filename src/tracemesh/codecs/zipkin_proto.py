"""Zipkin v2 proto3 (`ListOfSpans`, `application/x-protobuf`) <-> canonical spans.

Ids are raw big-endian bytes (a trace id of 8 or 16, span ids of 8), times fixed64/uint64 µs,
addresses packed (4 bytes IPv4, 16 bytes IPv6). A span with a malformed id, address or port
fails the whole request, as with JSON; the fields then map as in `zipkin_model`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import DecodeError as ProtoDecodeError

from tracemesh.codecs import DecodeError
from tracemesh.codecs.proto.zipkin_pb2 import Endpoint as PbEndpoint
from tracemesh.codecs.proto.zipkin_pb2 import ListOfSpans
from tracemesh.codecs.proto.zipkin_pb2 import Span as PbSpan
from tracemesh.codecs.protowire import length_delimited
from tracemesh.codecs.utf8_repair import Rules, repair
from tracemesh.codecs.zipkin_json import span_to_zipkin
from tracemesh.codecs.zipkin_model import Endpoint, RowBuilder, checked_port
from tracemesh.model.batch import SpanBatch
from tracemesh.model.ids import SPAN_ID_SIZE, ZERO_SPAN_ID, InvalidIDError, normalize_trace_id
from tracemesh.model.span import Span, SpanKind
from tracemesh.model.span_warnings import WARNINGS_ATTRIBUTE

_KINDS = {
    PbSpan.CLIENT: SpanKind.CLIENT,
    PbSpan.SERVER: SpanKind.SERVER,
    PbSpan.PRODUCER: SpanKind.PRODUCER,
    PbSpan.CONSUMER: SpanKind.CONSUMER,
}
_PB_KINDS = {kind: pb for pb, kind in _KINDS.items()}


def _warnings_field(warnings: list[str]) -> bytes:
    """One tag (a map entry: key 1, value 2), a line per warning: Zipkin tags are strings."""
    entry = length_delimited(1, WARNINGS_ATTRIBUTE.encode())
    return length_delimited(11, entry + length_delimited(2, "\n".join(warnings).encode()))


RULES = Rules(
    span="zipkin.proto3.Span",
    warnings=_warnings_field,
    names=frozenset({"zipkin.proto3.Span.name"}),
    keys=frozenset({"zipkin.proto3.Span.TagsEntry.key"}),
)


def parse_list(data: bytes) -> ListOfSpans:
    return _parse(data)[0]


def _parse(data: bytes) -> tuple[ListOfSpans, int]:
    """The list, and how many spans had text that was not UTF-8 (repaired: `utf8_repair`)."""
    message = ListOfSpans()
    try:
        message.ParseFromString(data)
        return message, 0
    except (ProtoDecodeError, RuntimeError, ValueError) as exc:
        error = DecodeError(f"invalid Zipkin protobuf ListOfSpans: {exc}")
    try:
        fixed = repair(data, ListOfSpans.DESCRIPTOR, RULES)
        message.ParseFromString(fixed.data)
    except (DecodeError, ProtoDecodeError, RuntimeError, ValueError):
        raise error from None
    return message, fixed.spans


def batch_from_proto(data: bytes) -> SpanBatch:
    """Decode a serialized `zipkin.proto3.ListOfSpans` into storage rows; DecodeError names a
    bad span."""
    return _decode(data).batch()


def spans_from_proto(data: bytes) -> list[Span]:
    return _decode(data).spans()


def _decode(data: bytes) -> RowBuilder:
    builder = RowBuilder()
    endpoints: dict[tuple[object, ...], Endpoint] = {}
    spans, builder.repaired = _parse(data)
    for i, span in enumerate(spans.spans):
        try:
            _add(span, builder, endpoints)
        except DecodeError as exc:
            raise DecodeError(f"span {i}: {exc}") from None
    return builder


def _add(pb: PbSpan, builder: RowBuilder, endpoints: dict[tuple[object, ...], Endpoint]) -> None:
    try:
        trace_id = normalize_trace_id(pb.trace_id)
    except InvalidIDError as exc:
        raise DecodeError(str(exc)) from None
    span_id, parent_id = pb.id, pb.parent_id
    if len(span_id) != SPAN_ID_SIZE or span_id == ZERO_SPAN_ID:
        raise DecodeError(f"span id must be 8 bytes, not all zero; got {span_id.hex() or 'none'}")
    if parent_id == ZERO_SPAN_ID:
        parent_id = b""
    elif parent_id and len(parent_id) != SPAN_ID_SIZE:
        raise DecodeError(f"parent id must be 8 bytes, got {len(parent_id)}")
    local = _endpoint(pb.local_endpoint, endpoints) if pb.HasField("local_endpoint") else None
    remote = _endpoint(pb.remote_endpoint, endpoints) if pb.HasField("remote_endpoint") else None
    tags: dict[str, Any] = dict(pb.tags)
    builder.add(
        trace_id,
        span_id,
        parent_id,
        pb.name,
        _KINDS.get(pb.kind, SpanKind.UNSPECIFIED),
        pb.timestamp,
        pb.duration,
        local,
        remote,
        [(a.timestamp, a.value) for a in pb.annotations],
        tags,
    )


def _endpoint(pb: PbEndpoint, cache: dict[tuple[object, ...], Endpoint]) -> Endpoint | None:
    key = (pb.service_name, pb.ipv4, pb.ipv6, pb.port)
    endpoint = cache.get(key)
    if endpoint is None:
        service, ipv4, ipv6, port = key
        if len(ipv4) not in (0, 4):
            raise DecodeError(f"endpoint ipv4 must be 4 bytes, got {len(ipv4)}")
        if len(ipv6) not in (0, 16):
            raise DecodeError(f"endpoint ipv6 must be 16 bytes, got {len(ipv6)}")
        endpoint = cache[key] = Endpoint(
            service,
            str(ipaddress.IPv4Address(ipv4)) if ipv4 else "",
            str(ipaddress.IPv6Address(ipv6)) if ipv6 else "",
            checked_port(port),
        )
    return None if endpoint == Endpoint() else endpoint


# ---- model -> proto ------------------------------------------------------------------------------


def encode_spans(spans: Sequence[Span]) -> bytes:
    """Spans as a serialized `ListOfSpans`, field for field what `zipkin_json` would write."""
    message = ListOfSpans()
    for span in spans:
        _fill(message.spans.add(), span_to_zipkin(span))
    return message.SerializeToString()


def _fill(pb: PbSpan, doc: dict[str, Any]) -> None:
    pb.trace_id = bytes.fromhex(doc["traceId"].rjust(32, "0"))
    pb.id = bytes.fromhex(doc["id"])
    if "parentId" in doc:
        pb.parent_id = bytes.fromhex(doc["parentId"])
    pb.name = doc["name"]
    kind = doc.get("kind")
    if kind is not None:
        pb.kind = _PB_KINDS[SpanKind[kind]]
    pb.timestamp = doc.get("timestamp", 0)
    pb.duration = doc.get("duration", 0)
    for key, target in (
        ("localEndpoint", pb.local_endpoint),
        ("remoteEndpoint", pb.remote_endpoint),
    ):
        endpoint = doc.get(key)
        if endpoint is not None:
            target.service_name = endpoint.get("serviceName", "")
            if "ipv4" in endpoint:
                target.ipv4 = ipaddress.IPv4Address(endpoint["ipv4"]).packed
            if "ipv6" in endpoint:
                target.ipv6 = ipaddress.IPv6Address(endpoint["ipv6"]).packed
            target.port = endpoint.get("port", 0)
            target.SetInParent()
    for annotation in doc.get("annotations", ()):
        pb.annotations.add(timestamp=annotation["timestamp"], value=annotation["value"])
    pb.tags.update(doc.get("tags", {}))
