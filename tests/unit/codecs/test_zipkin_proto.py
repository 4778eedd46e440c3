"""Zipkin proto3 codec: `ListOfSpans` built with our generated classes decodes like the same spans
in JSON, packed addresses and byte ids are checked, bad messages are refused with a reason, and
property tests (any bytes -> only DecodeError; model -> proto -> model)."""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.codecs.test_zipkin_json import ENVOY_SPANS, zipkin_spans
from tracemesh.codecs import DecodeError
from tracemesh.codecs.proto.zipkin_pb2 import ListOfSpans
from tracemesh.codecs.proto.zipkin_pb2 import Span as PbSpan
from tracemesh.codecs.zipkin_json import spans_from_json_v2
from tracemesh.codecs.zipkin_proto import batch_from_proto, encode_spans, spans_from_proto
from tracemesh.model.span import Span, SpanKind, StatusCode

KINDS = {"CLIENT": PbSpan.CLIENT, "SERVER": PbSpan.SERVER}


def to_proto(docs: list[dict[str, Any]]) -> bytes:
    """The JSON spans as Envoy's HTTP_PROTO collector would send them."""
    message = ListOfSpans()
    for doc in docs:
        span = message.spans.add(
            trace_id=bytes.fromhex(doc["traceId"]),
            id=bytes.fromhex(doc["id"]),
            name=doc["name"],
            kind=KINDS[doc["kind"]],
            timestamp=doc["timestamp"],
            duration=doc["duration"],
            debug=doc.get("debug", False),
            shared=doc.get("shared", False),
        )
        if "parentId" in doc:
            span.parent_id = bytes.fromhex(doc["parentId"])
        local = doc["localEndpoint"]
        span.local_endpoint.service_name = local["serviceName"]
        span.local_endpoint.ipv4 = ipaddress.IPv4Address(local["ipv4"]).packed
        span.local_endpoint.port = local.get("port", 0)
        span.tags.update(doc["tags"])
        for annotation in doc.get("annotations", ()):
            span.annotations.add(timestamp=annotation["timestamp"], value=annotation["value"])
    return message.SerializeToString()


def test_envoy_spans_decode_as_in_json() -> None:
    from_proto = spans_from_proto(to_proto(ENVOY_SPANS))
    assert from_proto == spans_from_json_v2(orjson.dumps(ENVOY_SPANS))
    gateway, server, call = from_proto
    assert gateway.span_id == server.span_id
    assert (server.kind, server.service_name) == (SpanKind.SERVER, "productpage.default")
    assert server.attributes["net.host.ip"] == "10.244.0.7"
    assert server.attributes["net.host.port"] == 9080
    assert call.status.code is StatusCode.ERROR
    assert batch_from_proto(to_proto(ENVOY_SPANS)).span_count == 3


def test_64_bit_trace_id_ipv6_and_remote_endpoint() -> None:
    message = ListOfSpans()
    span = message.spans.add(
        trace_id=bytes.fromhex("48485a3953bb6124"), id=b"\x00" * 7 + b"\x05", timestamp=10
    )
    span.remote_endpoint.service_name = "redis"
    span.remote_endpoint.ipv6 = ipaddress.IPv6Address("2001:db8::7").packed
    span.remote_endpoint.port = 6379
    span.annotations.add(timestamp=11, value="GET")
    (decoded,) = spans_from_proto(message.SerializeToString())
    assert decoded.trace_id == bytes(8) + bytes.fromhex("48485a3953bb6124")
    assert decoded.kind is SpanKind.UNSPECIFIED
    assert decoded.attributes == {
        "peer.service": "redis",
        "net.peer.ip": "2001:db8::7",
        "net.peer.port": 6379,
    }
    assert [(e.time_ns, e.name) for e in decoded.events] == [(11_000, "GET")]


def good() -> PbSpan:
    return PbSpan(trace_id=b"\x01" * 16, id=b"\x02" * 8, timestamp=1)


def broken(**changes: Any) -> bytes:
    span = good()
    for name, value in changes.items():
        if name in ("ipv4", "ipv6", "port"):
            setattr(span.local_endpoint, name, value)
        else:
            setattr(span, name, value)
    return ListOfSpans(spans=[good(), span]).SerializeToString()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x0a\x05\x0a\x10", "invalid Zipkin protobuf ListOfSpans"),
        (b"\xff\xff\xff", "invalid Zipkin protobuf"),
        (ListOfSpans(spans=[good()]).SerializeToString()[:-3], "invalid Zipkin protobuf"),
        (broken(trace_id=b"\x01" * 12), "span 1: trace id must be 8 or 16 bytes, got 12"),
        (broken(trace_id=b"\x00" * 16), "span 1: trace id must not be all zeros"),
        (broken(trace_id=b""), "trace id must be 8 or 16 bytes, got 0"),
        (broken(id=b"\x01" * 4), "span id must be 8 bytes"),
        (broken(id=b"\x00" * 8), "span id must be 8 bytes, not all zero"),
        (broken(parent_id=b"\x01" * 9), "parent id must be 8 bytes, got 9"),
        (broken(ipv4=b"\x01" * 5), "ipv4 must be 4 bytes, got 5"),
        (broken(ipv6=b"\x01" * 4), "ipv6 must be 16 bytes, got 4"),
        (broken(port=-1), "port -1 is out of range"),
        (broken(port=70000), "port 70000 is out of range"),
        (broken(timestamp=2**64 - 1, duration=1), "out of range"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        spans_from_proto(body)
    assert message in str(caught.value)


def test_unknown_kinds_and_fields_are_tolerated() -> None:
    span = good()
    span.kind = 9  # type: ignore[assignment]  # an enum value from a future Zipkin
    body = ListOfSpans(spans=[span]).SerializeToString() + b"\x10\x01"  # unknown field 2
    (decoded,) = spans_from_proto(body)
    assert decoded.kind is SpanKind.UNSPECIFIED


@given(st.binary(max_size=300))
def test_any_bytes_give_spans_or_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        spans_from_proto(data)


@given(st.lists(zipkin_spans(), min_size=1, max_size=4))
def test_model_to_proto_and_back_keeps_what_zipkin_carries(spans: list[Span]) -> None:
    assert spans_from_proto(encode_spans(spans)) == spans
