"""Zipkin v1 Thrift codec: spans written by jaeger-client's own generated zipkincore classes (a
client/server RPC, a local span, typed binary annotations), the agent's `emitZipkinBatch`
datagram, spans that cannot be stored, and hostile bytes."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jaeger_client.thrift_gen.agent import Agent as TheirAgent
from jaeger_client.thrift_gen.zipkincore import ttypes as z
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.Thrift import TMessageType, TType
from thrift.transport.TTransport import TMemoryBuffer

from tracemesh.codecs import DecodeError
from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.zipkin_thrift import (
    decode_emit_zipkin_batch,
    decode_zipkin_thrift,
    encode_zipkin_thrift,
    spans_from_zipkin_thrift,
)
from tracemesh.model.span import Event, SpanKind, Status, StatusCode

T0 = 1_700_000_000_000_000  # µs
FRONTEND = z.Endpoint(ipv4=0x0A000001, port=8080, service_name="frontend")
BACKEND = z.Endpoint(ipv4=0x0A000002, port=-7536, service_name="backend")  # i16: port 58000


class _Py3Binary(TBinaryProtocol):
    """jaeger-client's Thrift 0.9.3 code writes `binary` fields with writeString; let it."""

    def writeString(self, value: Any) -> None:
        self.writeBinary(value if isinstance(value, bytes) else value.encode())


def their_list(spans: list[Any]) -> bytes:
    """A bare list<Span> in binary protocol, as a Zipkin v1 client POSTs it."""
    trans = TMemoryBuffer()
    prot = _Py3Binary(trans)
    prot.writeListBegin(TType.STRUCT, len(spans))
    for span in spans:
        span.write(prot)
    prot.writeListEnd()
    return bytes(trans.getvalue())


def annotation(value: str, at: int, host: Any = FRONTEND) -> Any:
    return z.Annotation(timestamp=at, value=value, host=host)


def binary(key: str, value: bytes, kind: int, host: Any = None) -> Any:
    return z.BinaryAnnotation(key=key, value=value, annotation_type=kind, host=host)


def test_client_and_server_halves_of_an_rpc() -> None:
    client = z.Span(
        trace_id=-2, trace_id_high=5, name="get /api", id=-3, parent_id=9,
        annotations=[annotation("cs", T0), annotation("retry", T0 + 10),
                     annotation("cr", T0 + 100)],
        binary_annotations=[binary("http.path", b"/api", z.AnnotationType.STRING),
                            binary("sa", b"\x01", z.AnnotationType.BOOL, BACKEND)],
    )  # fmt: skip
    server = z.Span(
        trace_id=-2, trace_id_high=5, name="get /api", id=-3, parent_id=9,
        timestamp=T0 + 20, duration=60,
        annotations=[annotation("sr", T0 + 20, BACKEND), annotation("ss", T0 + 80, BACKEND)],
        binary_annotations=[binary("error", b"timeout", z.AnnotationType.STRING, BACKEND),
                            binary("ca", b"\x01", z.AnnotationType.BOOL, FRONTEND)],
    )  # fmt: skip
    out_client, out_server = spans_from_zipkin_thrift(their_list([client, server]), "binary")

    assert out_client.trace_id == struct.pack(">qq", 5, -2)
    assert out_client.span_id == out_server.span_id == struct.pack(">q", -3)
    assert out_client.parent_span_id == struct.pack(">q", 9)
    assert (out_client.kind, out_server.kind) == (SpanKind.CLIENT, SpanKind.SERVER)
    assert (out_client.start_ns, out_client.end_ns) == (T0 * 1000, (T0 + 100) * 1000)
    assert (out_server.start_ns, out_server.end_ns) == ((T0 + 20) * 1000, (T0 + 80) * 1000)
    assert out_client.events == [Event((T0 + 10) * 1000, "retry")]
    assert out_server.events == []
    assert out_client.attributes == {
        "http.path": "/api", "peer.service": "backend", "peer.ipv4": "10.0.0.2",
        "peer.port": 58000,
    }  # fmt: skip
    assert out_server.attributes == {"peer.service": "frontend", "peer.ipv4": "10.0.0.1",
                                     "peer.port": 8080}  # fmt: skip
    assert out_server.status == Status(StatusCode.ERROR, "timeout")
    assert out_client.resource.attributes == {
        "service.name": "frontend", "ipv4": "10.0.0.1", "port": "8080",
    }  # fmt: skip
    assert out_server.resource.attributes == {
        "service.name": "backend", "ipv4": "10.0.0.2", "port": "58000",
    }  # fmt: skip
    assert out_client.flags == 1


def test_local_span_takes_its_service_from_lc() -> None:
    local = z.Span(trace_id=1, name="compute", id=2, timestamp=T0, duration=5,
                   binary_annotations=[binary("lc", b"worker", z.AnnotationType.STRING,
                                              z.Endpoint(service_name="batch-job"))])  # fmt: skip
    (span,) = spans_from_zipkin_thrift(their_list([local]), "binary")
    assert span.kind is SpanKind.UNSPECIFIED
    assert span.attributes == {"component": "worker"}
    assert span.resource.attributes == {"service.name": "batch-job"}
    lc = binary("lc", b"worker", z.AnnotationType.STRING)
    bare = z.Span(trace_id=1, name="compute", id=3, timestamp=T0, binary_annotations=[lc])
    (span,) = spans_from_zipkin_thrift(their_list([bare]), "binary")
    assert span.resource.attributes == {"service.name": "worker"}
    assert span.end_ns == span.start_ns


def test_binary_annotation_types() -> None:
    values = [
        binary("bool", b"\x01", z.AnnotationType.BOOL),
        binary("false", b"\x00", z.AnnotationType.BOOL),
        binary("bytes", b"\x00\xff", z.AnnotationType.BYTES),
        binary("i16", struct.pack(">h", -2), z.AnnotationType.I16),
        binary("i32", struct.pack(">i", 70_000), z.AnnotationType.I32),
        binary("i64", struct.pack(">q", -(2**40)), z.AnnotationType.I64),
        binary("double", struct.pack(">d", 2.5), z.AnnotationType.DOUBLE),
        binary("string", "é".encode(), z.AnnotationType.STRING),
        binary("bad utf-8", b"\xff", z.AnnotationType.STRING),
        binary("short", b"\x01", z.AnnotationType.I64),
        binary("odd", b"x", 9),
        binary("error", b"", z.AnnotationType.STRING),
    ]
    span_in = z.Span(trace_id=1, name="x", id=2, timestamp=T0, binary_annotations=values)
    (span,) = spans_from_zipkin_thrift(their_list([span_in]), "binary")
    assert span.attributes == {
        "bool": True, "false": False, "bytes": b"\x00\xff", "i16": -2, "i32": 70_000,
        "i64": -(2**40), "double": 2.5, "string": "é", "bad utf-8": b"\xff",
        "short": "<not enough bytes for a binary annotation of type 4>",
        "odd": "<unknown zipkin v1 binary annotation type (9)>",
    }  # fmt: skip
    assert span.warnings == ["an attribute value was not valid UTF-8; stored as bytes"]
    assert span.status == Status(StatusCode.ERROR)


def test_spans_of_one_endpoint_share_a_resource() -> None:
    spans = [z.Span(trace_id=1, name="s", id=i, annotations=[annotation("sr", T0),
                                                             annotation("ss", T0 + 1)])
             for i in (1, 2, 3)]  # fmt: skip
    out = spans_from_zipkin_thrift(their_list(spans), "binary")
    assert len({id(s.resource) for s in out}) == 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (z.Span(trace_id=1, name="x", id=2), "no start time (no timestamp and no annotations)"),
        (z.Span(trace_id=0, name="x", id=2, timestamp=T0), "zero trace id"),
        (z.Span(trace_id=1, name="x", id=0, timestamp=T0), "zero span id"),
    ],
)
def test_spans_that_cannot_be_stored(bad: Any, reason: str) -> None:
    good = z.Span(trace_id=1, name="ok", id=7, timestamp=T0)
    data = their_list([good, bad])
    with pytest.raises(DecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        spans_from_zipkin_thrift(data, "binary")
    decoded = decode_zipkin_thrift(data, "binary")
    assert (decoded.rejected, [s.name for s in decoded.spans]) == (1, ["ok"])


def test_agent_datagram_and_our_encoder() -> None:
    span = z.Span(trace_id=1, name="x", id=2, annotations=[annotation("cs", T0),
                                                           annotation("cr", T0 + 5)])  # fmt: skip
    trans = TMemoryBuffer()
    prot = TCompactProtocol(trans)
    prot.writeMessageBegin("emitZipkinBatch", TMessageType.ONEWAY, 3)
    TheirAgent.emitZipkinBatch_args(spans=[span]).write(prot)
    prot.writeMessageEnd()
    (decoded,) = decode_emit_zipkin_batch(bytes(trans.getvalue()), "compact").spans
    assert (decoded.kind, decoded.duration_ns) == (SpanKind.CLIENT, 5000)

    ours = ts.ZipkinSpan(trace_id=1, name="x", id=2, annotations=[
        ts.Annotation(T0, "cs", ts.Endpoint(0x0A000001, 8080, "frontend")),
        ts.Annotation(T0 + 100, "cr", ts.Endpoint(0x0A000001, 8080, "frontend"))])  # fmt: skip
    for protocol in ts.PROTOCOLS:
        (back,) = spans_from_zipkin_thrift(encode_zipkin_thrift([ours], protocol), protocol)
        assert back.resource.attributes["service.name"] == "frontend"
    assert encode_zipkin_thrift([ours]) == their_list([
        z.Span(trace_id=1, name="x", id=2, annotations=[annotation("cs", T0),
                                                         annotation("cr", T0 + 100)])])  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty body"),
        (b"\x0c\x00\x00\x00\x02\x0a", "expected a Thrift list of Zipkin spans"),
        (b"\x0b\x00\x00\x00\x01", "expected a Thrift list"),  # a list of strings
        (b"\x0c\x7f\xff\xff\xff", "expected a Thrift list"),  # 2^31-1 spans claimed
    ],
)
def test_hostile_bodies(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        spans_from_zipkin_thrift(data, "binary")


def test_every_truncation_is_a_decode_error() -> None:
    data = their_list([z.Span(trace_id=1, name="x", id=2, timestamp=T0,
                              annotations=[annotation("cs", T0)])])  # fmt: skip
    assert spans_from_zipkin_thrift(data, "binary")
    for size in range(len(data)):
        with pytest.raises(DecodeError):
            spans_from_zipkin_thrift(data[:size], "binary")


@given(st.binary(max_size=300), st.sampled_from(ts.PROTOCOLS))
@settings(max_examples=400)
def test_arbitrary_bytes_only_raise_decode_error(data: bytes, protocol: str) -> None:
    for decoder in (decode_zipkin_thrift, decode_emit_zipkin_batch):
        with contextlib.suppress(DecodeError):
            decoder(data, protocol)
