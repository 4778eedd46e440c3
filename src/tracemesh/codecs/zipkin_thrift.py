"""Zipkin v1 Thrift (`zipkincore.thrift` spans) -> model spans, after OpenTelemetry's zipkinv1
translator: the first of cs/cr/ms/mr/sr/ss decides the kind and, with its endpoint, the service;
other annotations become events; binary annotations become typed attributes (`lc` is renamed
`component`); `span.timestamp`/`duration` give the timing, else the earliest and latest annotation.

Where that translator is lossy this codec follows Jaeger's own Zipkin converter instead: the address
annotations `ca`/`sa`/`ma` describe the remote peer (`peer.service`, `peer.ipv4`, `peer.ipv6`,
`peer.port`) rather than becoming boolean attributes, an `error` binary annotation becomes an ERROR
status whose message is its text, and a span with no time at all is rejected rather than stamped
with the time of arrival.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tracemesh.codecs import DecodeError
from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.jaeger_thrift import SAMPLED_FLAG, invalid_reason
from tracemesh.codecs.thrift_repair import repair_zipkin
from tracemesh.model.attributes import Attributes, AttrValue
from tracemesh.model.ids import span_id_from_int, trace_id_from_ints
from tracemesh.model.span import Event, Resource, Scope, Span, SpanKind, Status, StatusCode

_KIND_OF = {
    "cs": SpanKind.CLIENT, "cr": SpanKind.CLIENT, "sr": SpanKind.SERVER, "ss": SpanKind.SERVER,
    "ms": SpanKind.PRODUCER, "mr": SpanKind.CONSUMER,
}  # fmt: skip
_ADDRESS_KEYS = frozenset(("ca", "sa", "ma"))
_NUMBER_FORMATS = {
    ts.AnnotationType.I16: ">h", ts.AnnotationType.I32: ">i", ts.AnnotationType.I64: ">q",
    ts.AnnotationType.DOUBLE: ">d",
}  # fmt: skip


@dataclass(slots=True)
class DecodedSpans:
    """Spans decoded from one message, and how many were refused (with the first reason)."""

    spans: list[Span] = field(default_factory=list)
    rejected: int = 0
    error: str = ""


# A bare list<Span> becomes field 1 of EmitZipkinBatchArgs with this header and a stop byte.
_LIST_FIELD_HEADER = {"binary": b"\x0f\x00\x01", "compact": b"\x19"}


def spans_from_zipkin_thrift(data: bytes, protocol: str) -> list[Span]:
    """A bare `list<Span>` (the body of `POST /api/v1/spans` with `application/x-thrift`, binary
    protocol). Strict: one span no store could index fails the whole list with its reason."""
    decoded = decode_zipkin_thrift(data, protocol)
    if decoded.rejected:
        raise DecodeError(f"{decoded.rejected} invalid span(s); first: {decoded.error}")
    return decoded.spans


def decode_zipkin_thrift(data: bytes, protocol: str) -> DecodedSpans:
    """Like `spans_from_zipkin_thrift`, but invalid spans are counted in `rejected` instead."""
    header = _LIST_FIELD_HEADER.get(protocol)
    if header is None:
        raise ValueError(f"unknown Thrift protocol {protocol!r}; use one of {ts.PROTOCOLS}")
    if not data:
        raise DecodeError("empty body: expected a Thrift list of Zipkin spans")
    try:
        args = ts.decode_struct(
            header + data + b"\0", ts.EmitZipkinBatchArgs, protocol, repair=repair_zipkin
        )
    except ts.ThriftError as exc:
        raise DecodeError(f"{exc} (expected a Thrift list of Zipkin spans)") from None
    return spans_from_zipkin(args.spans or ())


def decode_emit_zipkin_batch(data: bytes, protocol: str) -> DecodedSpans:
    """One agent datagram: an `emitZipkinBatch` message (UDP port 5775 sends it compact)."""
    try:
        _, _, args = ts.decode_message(
            data, protocol, {ts.EMIT_ZIPKIN_BATCH: ts.EmitZipkinBatchArgs}, repair_zipkin
        )
    except ts.ThriftError as exc:
        raise DecodeError(str(exc)) from None
    assert isinstance(args, ts.EmitZipkinBatchArgs)
    return spans_from_zipkin(args.spans or ())


def encode_zipkin_thrift(spans: Sequence[ts.ZipkinSpan], protocol: str = "binary") -> bytes:
    """Zipkin Thrift spans as a bare `list<Span>`, what a v1 Zipkin client POSTs."""
    wrapped = ts.encode_struct(ts.EmitZipkinBatchArgs(list(spans)), protocol)
    return wrapped[len(_LIST_FIELD_HEADER[protocol]) : -1]


def spans_from_zipkin(zspans: Iterable[ts.ZipkinSpan]) -> DecodedSpans:
    out = DecodedSpans()
    resources: dict[tuple[str, str, str, int], Resource] = {}
    scope = Scope()
    for zspan in zspans:
        try:
            span = _span(zspan, resources, scope)
        except _Rejected as exc:
            out.rejected += 1
            out.error = out.error or str(exc)
        else:
            out.spans.append(span)
    return out


class _Rejected(Exception):
    pass


def _span(
    zspan: ts.ZipkinSpan, resources: dict[tuple[str, str, str, int], Resource], scope: Scope
) -> Span:
    kind = SpanKind.UNSPECIFIED
    endpoint: ts.Endpoint | None = None
    events: list[Event] = []
    first = last = None
    for annotation in zspan.annotations or ():
        value = annotation.value
        if not value:
            continue
        stamp = annotation.timestamp or 0
        first = stamp if first is None else min(first, stamp)
        last = stamp if last is None else max(last, stamp)
        core = _KIND_OF.get(value)
        if core is None:
            if not 0 <= stamp * 1000 < 2**64:
                raise _Rejected(f"annotation {value[:50]!r} has an out-of-range timestamp")
            events.append(Event(stamp * 1000, value))
            continue
        if kind is SpanKind.UNSPECIFIED:
            kind = core
        if endpoint is None and annotation.host is not None and annotation.host.service_name:
            endpoint = annotation.host
    attributes, status, local = _binary_annotations(zspan.binary_annotations or ())
    if endpoint is None:
        endpoint = local
    if zspan.timestamp:
        start, duration = zspan.timestamp, zspan.duration or 0
    elif first is not None and last is not None:
        start, duration = first, last - first
    else:
        start = duration = 0
    trace_high, trace_low = zspan.trace_id_high or 0, zspan.trace_id or 0
    reason = invalid_reason(trace_high, trace_low, zspan.id, start, duration)
    if reason:
        raise _Rejected(reason if start else f"{reason} (no timestamp and no annotations)")
    return Span(
        trace_id=trace_id_from_ints(trace_high, trace_low),
        span_id=span_id_from_int(zspan.id or 0),
        name=zspan.name or "",
        start_ns=start * 1000,
        end_ns=max(start + duration, 0) * 1000,
        parent_span_id=span_id_from_int(zspan.parent_id) if zspan.parent_id else b"",
        kind=kind,
        attributes=attributes,
        events=events,
        status=status,
        flags=SAMPLED_FLAG,
        resource=_resource(endpoint, resources),
        scope=scope,
        warnings=list(getattr(zspan, "warnings", ())),  # from `thrift_repair.repair_zipkin`
    )


def _binary_annotations(
    annotations: Iterable[ts.BinaryAnnotation],
) -> tuple[Attributes, Status, ts.Endpoint | None]:
    """Attributes, the status, and the local endpoint they name (an `lc` host, else any host)."""
    attributes: Attributes = {}
    status = Status()
    local: ts.Endpoint | None = None
    component = ""
    for annotation in annotations:
        key = annotation.key or ""
        host = annotation.host
        if key in _ADDRESS_KEYS:
            if host is not None:
                attributes.update(_peer(host))
            continue
        value = _value(annotation)
        if key == "lc":
            key, component = "component", _text(value)
            if host is not None and host.service_name:
                local = host
        elif host is not None and host.service_name and local is None:
            local = host
        if key == "error":
            text = _text(value)
            message = "" if text in ("", "true") else text
            status = Status(StatusCode.ERROR, message)
            continue
        attributes[key] = value
    if local is None and component:
        local = ts.Endpoint(service_name=component)
    return attributes, status, local


def _value(annotation: ts.BinaryAnnotation) -> AttrValue:
    raw = annotation.value or b""
    kind = annotation.annotation_type
    if kind == ts.AnnotationType.STRING or kind is None:
        return raw.decode("utf-8", "replace")
    if kind == ts.AnnotationType.BOOL:
        return raw == b"\x01"
    if kind == ts.AnnotationType.BYTES:
        return raw
    layout = _NUMBER_FORMATS.get(kind)
    if layout is None:
        return f"<unknown zipkin v1 binary annotation type ({kind})>"
    size = struct.calcsize(layout)
    if len(raw) < size:
        return f"<not enough bytes for a binary annotation of type {kind}>"
    number: int | float = struct.unpack(layout, raw[:size])[0]
    return number


def _text(value: AttrValue) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _peer(host: ts.Endpoint) -> Attributes:
    peer: Attributes = {}
    if host.service_name:
        peer["peer.service"] = host.service_name
    ipv4, ipv6 = _ip_texts(host)
    if ipv4:
        peer["peer.ipv4"] = ipv4
    if ipv6:
        peer["peer.ipv6"] = ipv6
    if host.port:
        peer["peer.port"] = host.port & 0xFFFF
    return peer


def _resource(
    endpoint: ts.Endpoint | None, resources: dict[tuple[str, str, str, int], Resource]
) -> Resource:
    """One Resource object per distinct endpoint, so spans of one service group together."""
    if endpoint is None:
        key: tuple[str, str, str, int] = ("", "", "", 0)
    else:
        ipv4, ipv6 = _ip_texts(endpoint)
        key = (endpoint.service_name or "", ipv4, ipv6, (endpoint.port or 0) & 0xFFFF)
    resource = resources.get(key)
    if resource is None:
        service, ipv4, ipv6, port = key
        attributes: Attributes = {"service.name": service} if service else {}
        if ipv4:
            attributes["ipv4"] = ipv4
        if ipv6:
            attributes["ipv6"] = ipv6
        if port:
            attributes["port"] = str(port)
        resource = resources[key] = Resource(attributes)
    return resource


def _ip_texts(endpoint: ts.Endpoint) -> tuple[str, str]:
    ipv4 = str(ipaddress.IPv4Address(endpoint.ipv4 & 0xFFFFFFFF)) if endpoint.ipv4 else ""
    ipv6 = ""
    if endpoint.ipv6 and len(endpoint.ipv6) == 16:
        ipv6 = str(ipaddress.IPv6Address(endpoint.ipv6))
    return ipv4, ipv6
