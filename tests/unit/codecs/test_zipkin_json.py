"""Zipkin JSON codec: v2 fields mapped as the OpenTelemetry Collector maps them, Envoy's own output,
the real OpenTelemetry Python encoders (v1 and v2), v1 client/server halves, bad input refused
with a message, and property tests (any bytes or JSON -> only DecodeError; model -> v2 -> model)."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.zipkin.json.v1 import JsonV1Encoder
from opentelemetry.exporter.zipkin.json.v2 import JsonV2Encoder
from opentelemetry.exporter.zipkin.node_endpoint import NodeEndpoint

from tests.unit.collector.harness import sdk_spans
from tracemesh.codecs import DecodeError
from tracemesh.codecs.zipkin_json import (
    batch_from_json_v2,
    encode_spans,
    spans_from_json_v1,
    spans_from_json_v2,
)
from tracemesh.codecs.zipkin_model import RESOURCE_KEYS
from tracemesh.model.attributes import Attributes
from tracemesh.model.span import Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode

TRACE = "463ac35c9f6413ad48485a3953bb6124"
SHARED = "a2fb4a1d1a96d312"
T0 = 1_700_000_000_000_000  # µs

# Envoy's Zipkin v2 JSON (HTTP_JSON collector endpoint) for one request through Istio, written from
# Envoy's documented span shape: the ingress gateway's CLIENT span, then productpage's inbound
# sidecar SERVER span reusing the gateway's span id (shared_span_context, marked "shared": true),
# then productpage's outbound CLIENT call to reviews, a child of the shared id (the app copied the
# B3 headers its sidecar gave it), failing with 503.
ISTIO_TAGS = {
    "istio.canonical_revision": "latest",
    "istio.mesh_id": "cluster.local",
    "istio.namespace": "default",
}
GATEWAY_SPAN: dict[str, Any] = {
    "traceId": TRACE,
    "id": SHARED,
    "name": "productpage.default.svc.cluster.local:9080/productpage",
    "kind": "CLIENT",
    "timestamp": T0,
    "duration": 12_000,
    "localEndpoint": {"serviceName": "istio-ingressgateway.istio-system", "ipv4": "10.244.0.5"},
    "tags": {
        "component": "proxy",
        "node_id": "router~10.244.0.5~istio-ingressgateway-7d4c.istio-system~istio-system"
        ".svc.cluster.local",
        "zone": "",
        "guid:x-request-id": "3d2e6d1c-9f0b-9c1a-8a7e-2b4c6d8e0f12",
        "http.url": "http://192.168.49.2:31380/productpage",
        "http.method": "GET",
        "http.protocol": "HTTP/1.1",
        "downstream_cluster": "-",
        "user_agent": "curl/8.5.0",
        "request_size": "0",
        "response_size": "5293",
        "upstream_cluster": "outbound|9080||productpage.default.svc.cluster.local",
        "upstream_cluster.name": "outbound|9080||productpage.default.svc.cluster.local",
        "http.status_code": "200",
        "response_flags": "-",
        "peer.address": "10.244.0.1",
        **ISTIO_TAGS,
        "istio.canonical_service": "istio-ingressgateway",
    },
    "annotations": [
        {"timestamp": T0 + 50, "value": "last_downstream_rx_byte_received"},
        {"timestamp": T0 + 90, "value": "first_upstream_tx_byte_sent"},
    ],
}
SERVER_SPAN: dict[str, Any] = {
    "traceId": TRACE,
    "id": SHARED,
    "name": "productpage.default.svc.cluster.local:9080/productpage",
    "kind": "SERVER",
    "timestamp": T0 + 400,
    "duration": 11_000,
    "localEndpoint": {"serviceName": "productpage.default", "ipv4": "10.244.0.7", "port": 9080},
    "shared": True,
    "tags": {
        "component": "proxy",
        "node_id": "sidecar~10.244.0.7~productpage-v1-5f9dbcd669-6xk8s.default"
        "~default.svc.cluster.local",
        "guid:x-request-id": "3d2e6d1c-9f0b-9c1a-8a7e-2b4c6d8e0f12",
        "http.url": "http://productpage:9080/productpage",
        "http.method": "GET",
        "http.protocol": "HTTP/1.1",
        "upstream_cluster": "inbound|9080||",
        "http.status_code": "200",
        "response_flags": "-",
        **ISTIO_TAGS,
        "istio.canonical_service": "productpage",
    },
}
REVIEWS_CALL: dict[str, Any] = {
    "traceId": TRACE,
    "parentId": SHARED,
    "id": "0020000000000002",
    "name": "reviews.default.svc.cluster.local:9080/*",
    "kind": "CLIENT",
    "timestamp": T0 + 2_000,
    "duration": 3_000,
    "localEndpoint": {"serviceName": "productpage.default", "ipv4": "10.244.0.7"},
    "debug": False,
    "tags": {
        "component": "proxy",
        "http.url": "http://reviews:9080/reviews/0",
        "http.method": "GET",
        "http.protocol": "HTTP/1.1",
        "upstream_cluster": "outbound|9080|v2|reviews.default.svc.cluster.local",
        "http.status_code": "503",
        "response_flags": "UF",
        "error": "true",
        "peer.address": "10.244.0.9",
        **ISTIO_TAGS,
        "istio.canonical_service": "productpage",
    },
}
ENVOY_SPANS = [GATEWAY_SPAN, SERVER_SPAN, REVIEWS_CALL]


def decode(docs: list[dict[str, Any]]) -> list[Span]:
    return spans_from_json_v2(orjson.dumps(docs))


def one(doc: dict[str, Any]) -> Span:
    (span,) = decode([doc])
    return span


def minimal(**fields: Any) -> dict[str, Any]:
    return {"traceId": TRACE, "id": "0000000000000001", "name": "op", "timestamp": T0, **fields}


# ---- Envoy ----------------------------------------------------------------------------------


def test_envoy_spans_map_like_the_collector() -> None:
    gateway, server, call = decode(ENVOY_SPANS)
    assert gateway.trace_id == bytes.fromhex(TRACE)
    assert gateway.span_id == server.span_id == bytes.fromhex(SHARED)
    assert gateway.parent_span_id == server.parent_span_id == b""
    assert (gateway.kind, server.kind, call.kind) == (
        SpanKind.CLIENT,
        SpanKind.SERVER,
        SpanKind.CLIENT,
    )
    assert gateway.resource.attributes == {"service.name": "istio-ingressgateway.istio-system"}
    assert server.service_name == call.service_name == "productpage.default"
    assert server.resource is call.resource  # one resource per service in a request
    assert gateway.start_ns == T0 * 1000
    assert gateway.end_ns == (T0 + 12_000) * 1000
    assert gateway.attributes["upstream_cluster"] == (
        "outbound|9080||productpage.default.svc.cluster.local"
    )
    assert gateway.attributes["guid:x-request-id"] == "3d2e6d1c-9f0b-9c1a-8a7e-2b4c6d8e0f12"
    assert gateway.attributes["zone"] == ""
    assert gateway.attributes["net.host.ip"] == "10.244.0.5"
    assert "net.host.port" not in gateway.attributes
    assert server.attributes["net.host.port"] == 9080
    assert [(e.name, e.time_ns) for e in gateway.events] == [
        ("last_downstream_rx_byte_received", (T0 + 50) * 1000),
        ("first_upstream_tx_byte_sent", (T0 + 90) * 1000),
    ]
    assert gateway.status == Status() and server.status == Status()
    assert call.status.code is StatusCode.ERROR
    assert "error" not in call.attributes  # `error=true` becomes the status, as in the Collector
    assert call.attributes["http.status_code"] == "503"
    assert call.parent_span_id == bytes.fromhex(SHARED)
    assert all(isinstance(v, str) for v in call.attributes.values())  # tags stay strings


def test_the_fast_rows_carry_the_index_fields() -> None:
    batch = batch_from_json_v2(orjson.dumps(ENVOY_SPANS))
    assert batch.span_count == 3
    rows = {(row.kind, row.name): row for group in batch.groups for row in group.rows}
    call = rows[(SpanKind.CLIENT, REVIEWS_CALL["name"])]
    assert call.status_code == StatusCode.ERROR
    assert call.parent_span_id == bytes.fromhex(SHARED)
    assert (call.start_ns, call.end_ns) == ((T0 + 2_000) * 1000, (T0 + 5_000) * 1000)
    services = sorted(g.resource.service_name for g in batch.groups)
    assert services == ["istio-ingressgateway.istio-system", "productpage.default"]


# ---- the v2 field mapping --------------------------------------------------------------------


def test_remote_endpoint_becomes_peer_attributes() -> None:
    remote = {"serviceName": "mysql", "ipv6": "2001:DB8::0:1", "port": 3306}
    span = one(minimal(kind="CLIENT", remoteEndpoint=remote))
    assert span.attributes == {
        "peer.service": "mysql",
        "net.peer.ip": "2001:db8::1",
        "net.peer.port": 3306,
    }


@pytest.mark.parametrize(
    ("tags", "code", "message", "left"),
    [
        ({"error": "true"}, StatusCode.ERROR, "", {}),
        ({"error": "boom"}, StatusCode.ERROR, "boom", {"error": "boom"}),
        ({"error": ""}, StatusCode.ERROR, "", {"error": ""}),
        ({"otel.status_code": "Error", "otel.status_description": "x"}, StatusCode.ERROR, "x", {}),
        ({"otel.status_code": "ERROR", "error": "bad"}, StatusCode.ERROR, "bad", {"error": "bad"}),
        ({"otel.status_code": "STATUS_CODE_OK"}, StatusCode.OK, "", {}),
        ({"otel.status_code": "Ok"}, StatusCode.OK, "", {}),
        ({"otel.status_code": "nonsense"}, StatusCode.UNSET, "", {}),
        ({"otel.status_description": "alone"}, StatusCode.UNSET, "", {}),
    ],
)
def test_status(tags: dict[str, str], code: StatusCode, message: str, left: Attributes) -> None:
    span = one(minimal(tags=tags))
    assert span.status == Status(code, message)
    expected = {**left}
    if "otel.status_code" not in tags and "otel.status_description" in tags:
        expected["otel.status_description"] = tags["otel.status_description"]
    assert span.attributes == expected


def test_kinds_scope_trace_state_and_resource_tags() -> None:
    tags = {
        "span.kind": "internal",
        "otel.library.name": "checkout-lib",
        "otel.library.version": "2.1",
        "w3c.tracestate": "rojo=00f067aa0ba902b7",
        "host.name": "node-1",
        "telemetry.sdk.language": "go",
        "http.route": "/pay",
    }
    span = one(minimal(tags=tags, localEndpoint={"serviceName": "pay"}))
    assert span.kind is SpanKind.INTERNAL
    assert span.scope == Scope("checkout-lib", "2.1")
    assert span.trace_state == "rojo=00f067aa0ba902b7"
    assert span.resource.attributes == {
        "service.name": "pay",
        "host.name": "node-1",
        "telemetry.sdk.language": "go",
    }
    assert span.attributes == {"http.route": "/pay"}
    assert one(minimal(kind="producer")).kind is SpanKind.PRODUCER  # case-insensitive
    assert one(minimal(kind="SOMETHING")).kind is SpanKind.UNSPECIFIED
    assert one(minimal(kind="SERVER", tags={"span.kind": "internal"})).attributes == {
        "span.kind": "internal"
    }


def test_links_from_otlp_link_tags() -> None:
    link_trace, link_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    tags = {
        "otlp.link.0": f'{link_trace}|{link_span}|k=v|{{"a":1,"b":"x|y"}}|3',
        "otlp.link.1": "not|a|link",  # malformed: kept as a tag rather than failing the span
    }
    span = one(minimal(tags=tags))
    assert span.links == [
        Link(bytes.fromhex(link_trace), bytes.fromhex(link_span), "k=v", {"a": 1, "b": "x|y"}, 3)
    ]
    assert span.attributes == {"otlp.link.1": "not|a|link"}


@pytest.mark.parametrize(
    ("value", "event"),
    [
        ("cache miss", Event(1000, "cache miss")),
        ('exception|{"exception.type":"ValueError","n":2,"f":1.5}|1',
         Event(1000, "exception", {"exception.type": "ValueError", "n": 2, "f": 1.5}, 1)),
        ('{"retry": {"attempt": 2, "ok": false, "ids": [1, 2]}}',
         Event(1000, "retry", {"attempt": 2, "ok": False, "ids": [1, 2]})),
        ('{"event": "error", "message": "timeout"}', Event(1000, "error", {"message": "timeout"})),
        ("{not json}", Event(1000, "{not json}")),
        ("a|b|c", Event(1000, "a|b|c")),
    ],
)  # fmt: skip
def test_annotation_shapes(value: str, event: Event) -> None:
    assert one(minimal(annotations=[{"timestamp": 1, "value": value}])).events == [event]


def test_ids_times_and_endpoints_edge_cases() -> None:
    span = one(
        {
            "traceId": "48485a3953bb6124",  # 64-bit
            "id": "1",  # short ids are zero-padded, as zipkin-go parses them
            "parentId": "0000000000000001",  # parentId == id: no parent
            "localEndpoint": {"serviceName": "", "ipv4": None, "port": 0},  # empty: no endpoint
            "duration": 5,
        }
    )
    assert span.trace_id == bytes(8) + bytes.fromhex("48485a3953bb6124")
    assert span.span_id == (1).to_bytes(8, "big")
    assert span.parent_span_id == b""
    assert span.resource == Resource()  # no service name: an empty resource, like the Collector
    assert (span.start_ns, span.end_ns) == (0, 5000)  # no timestamp: flagged, not invented
    assert span.attributes == {"otel.zipkin.absentField.startTime": True}
    assert one(minimal(parentId="0000000000000000")).parent_span_id == b""
    assert one(minimal(parentId=None, name=None, tags=None)).name == ""


# ---- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b'{"traceId": "1"}', "expected a JSON list of spans, got an object"),
        (b"[1]", "span 0: a span must be a JSON object, got a number"),
        (orjson.dumps([minimal(), minimal(traceId="xyz")]), "span 1: trace id must be 1 to 32 hex"),
        (orjson.dumps([minimal(traceId="0" * 32)]), "must not be all zeros"),
        (orjson.dumps([minimal(traceId="a" * 33)]), "trace id must be 1 to 32 hex"),
        (orjson.dumps([minimal(id="")]), "id is required"),
        (orjson.dumps([minimal(id=12)]), "id is required: a hex string, got a number"),
        (orjson.dumps([minimal(id="12 4")]), "span id must be 1 to 16 hex"),
        (orjson.dumps([minimal(parentId="zz")]), "span id must be 1 to 16 hex"),
        (orjson.dumps([minimal(timestamp=-1)]), "timestamp must be a non-negative integer"),
        (orjson.dumps([minimal(timestamp=1.5)]), "timestamp must be a non-negative integer"),
        (orjson.dumps([minimal(duration="5")]), "duration must be a non-negative integer"),
        (orjson.dumps([minimal(timestamp=2**63, duration=2**63)]), "out of range"),
        (orjson.dumps([minimal(tags={"a": 1})]), "tag values must be strings, got a number"),
        (orjson.dumps([minimal(tags=["a"])]), "tags must be a JSON object, got a list"),
        (orjson.dumps([minimal(name=["a"])]), "name must be a string, got a list"),
        (orjson.dumps([minimal(kind=1)]), "kind must be a string"),
        (orjson.dumps([minimal(debug="yes")]), "debug must be a boolean"),
        (orjson.dumps([minimal(annotations={})]), "annotations must be a list"),
        (orjson.dumps([minimal(annotations=[{"timestamp": 1}])]), "annotation value must be"),
        (orjson.dumps([minimal(localEndpoint={"ipv4": "300.1.1.1"})]),
         "localEndpoint: invalid ipv4 address '300.1.1.1'"),
        (orjson.dumps([minimal(localEndpoint={"ipv6": "::g"})]), "invalid ipv6 address"),
        (orjson.dumps([minimal(remoteEndpoint={"port": 70000})]), "port 70000 is out of range"),
        (orjson.dumps([minimal(remoteEndpoint={"port": True})]), "port must be an integer"),
        (orjson.dumps([minimal(remoteEndpoint={"serviceName": ["x"]})]), "serviceName must be"),
        (orjson.dumps([minimal(localEndpoint="host")]), "localEndpoint must be a JSON object"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        spans_from_json_v2(body)
    assert message in str(caught.value)


def test_html_in_values_is_kept_as_text() -> None:
    span = one(minimal(name="<script>alert(1)</script>", tags={"x": "<b>&amp;</b>"}))
    assert span.name == "<script>alert(1)</script>"
    assert span.attributes == {"x": "<b>&amp;</b>"}


# ---- the real OpenTelemetry Python encoders --------------------------------------------------


def test_otel_python_v2_encoder_output() -> None:
    spans = sdk_spans(3, service="shop")
    body = JsonV2Encoder().serialize(spans, NodeEndpoint("10.0.0.1", None, 8000))  # type: ignore[arg-type]
    decoded = {s.name: s for s in spans_from_json_v2(body.encode())}
    child = decoded["op-0"]
    assert child.service_name == "shop"
    assert child.scope == Scope("tests", "1.0")
    assert child.resource.attributes["telemetry.sdk.language"] == "python"
    assert child.attributes["attr.0"] == "x" * 10
    assert child.attributes["net.host.ip"] == "10.0.0.1"
    assert child.attributes["net.host.port"] == 8000
    assert child.events == [Event(child.events[0].time_ns, "tick", {"i": 0})]
    assert child.parent_span_id == decoded["root"].span_id


def test_otel_python_v1_encoder_output() -> None:
    spans = sdk_spans(2, service="shop")
    body = JsonV1Encoder().serialize(spans, NodeEndpoint("10.0.0.1"))  # type: ignore[arg-type]
    decoded = {s.name: s for s in spans_from_json_v1(body.encode())}
    child = decoded["op-0"]
    assert child.kind is SpanKind.UNSPECIFIED  # no core annotations: a local span
    assert child.service_name == "shop"
    assert child.attributes["attr.0"] == "x" * 10
    assert child.events[0].name == "tick"
    assert child.parent_span_id == decoded["root"].span_id


# ---- v1 ----------------------------------------------------------------------------------


def v1_rpc() -> dict[str, Any]:
    frontend = {"serviceName": "frontend", "ipv4": "192.168.99.1"}
    backend = {"serviceName": "backend", "ipv4": "192.168.99.2", "port": 9000}
    return {
        "traceId": "5af7183fb1d4cf5f",
        "name": "get /api",
        "id": "352bff9a74ca9ad2",
        "parentId": "6b221d5bc9e6496c",
        "timestamp": 1_000,
        "duration": 400,
        "annotations": [
            {"endpoint": frontend, "timestamp": 1_000, "value": "cs"},
            {"endpoint": backend, "timestamp": 1_100, "value": "sr"},
            {"endpoint": backend, "timestamp": 1_200, "value": "db query"},
            {"endpoint": backend, "timestamp": 1_300, "value": "ss"},
            {"endpoint": frontend, "timestamp": 1_400, "value": "cr"},
        ],
        "binaryAnnotations": [
            {"key": "http.path", "value": "/api", "endpoint": frontend},
            {"key": "sa", "value": True, "endpoint": backend},
            {"key": "ca", "value": True, "endpoint": frontend},
            {"key": "error", "value": "timeout", "endpoint": backend},
            {"key": "retries", "value": 2, "endpoint": backend},
        ],
    }


def test_v1_rpc_span_becomes_client_and_server_halves() -> None:
    client, server = spans_from_json_v1(orjson.dumps([v1_rpc()]))
    assert client.span_id == server.span_id == bytes.fromhex("352bff9a74ca9ad2")
    assert (client.kind, server.kind) == (SpanKind.CLIENT, SpanKind.SERVER)
    assert (client.service_name, server.service_name) == ("frontend", "backend")
    assert (client.start_ns, client.end_ns) == (1_000_000, 1_400_000)  # the span's own times
    assert (server.start_ns, server.end_ns) == (1_100_000, 1_300_000)  # sr..ss
    assert client.attributes == {
        "http.path": "/api",
        "net.host.ip": "192.168.99.1",
        "peer.service": "backend",
        "net.peer.ip": "192.168.99.2",
        "net.peer.port": 9000,
    }
    assert server.attributes["peer.service"] == "frontend"
    assert server.attributes["retries"] == "2"
    assert server.status == Status(StatusCode.ERROR, "timeout")
    assert [e.name for e in server.events] == ["db query"]
    assert client.events == []


def test_v1_local_and_one_sided_spans() -> None:
    local = {
        "traceId": "5af7183fb1d4cf5f",
        "id": "0000000000000003",
        "name": "compute",
        "timestamp": 10,
        "duration": 5,
        "binaryAnnotations": [
            {"key": "lc", "value": "worker", "endpoint": {"serviceName": "batch"}},
        ],
    }
    server_only = copy.deepcopy(v1_rpc())
    server_only["annotations"] = [a for a in server_only["annotations"] if a["value"][0] == "s"]
    del server_only["timestamp"], server_only["duration"]
    spans = spans_from_json_v1(orjson.dumps([local, server_only]))
    assert [(s.kind, s.service_name) for s in spans] == [
        (SpanKind.UNSPECIFIED, "batch"),
        (SpanKind.SERVER, "backend"),
    ]
    assert spans[0].attributes == {"component": "worker"}
    assert (spans[1].start_ns, spans[1].end_ns) == (1_100_000, 1_300_000)
    assert spans[1].attributes["peer.service"] == "frontend"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"binaryAnnotations": [{"key": "k", "value": {"a": 1}}]}, "binary annotation value"),
        ({"binaryAnnotations": "x"}, "binaryAnnotations must be a list"),
        ({"annotations": [{"timestamp": 1, "value": "cs", "endpoint": {"ipv4": "a"}}]},
         "annotation endpoint: invalid ipv4"),
    ],
)  # fmt: skip
def test_v1_bad_input(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        spans_from_json_v1(orjson.dumps([{"traceId": "1", "id": "2", **doc}]))
    assert message in str(caught.value)


# ---- properties ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
V2_KEYS = ["traceId", "id", "parentId", "name", "kind", "timestamp", "duration", "localEndpoint",
           "remoteEndpoint", "annotations", "tags", "debug", "shared"]  # fmt: skip
V1_KEYS = ["traceId", "id", "parentId", "name", "timestamp", "duration", "annotations",
           "binaryAnnotations", "debug"]  # fmt: skip
valid_hex = st.sampled_from(["1", "0", "463ac35c9f6413ad", TRACE, "zz", ""])


def span_docs(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Span objects with Zipkin's field names holding anything, nested objects (endpoints,
    annotations) included."""
    inner_keys = ["serviceName", "ipv4", "ipv6", "port", "timestamp", "value", "key", "endpoint"]
    inner = st.dictionaries(st.sampled_from(inner_keys), json_values | valid_hex, max_size=4)
    value: st.SearchStrategy[Any] = json_values | valid_hex | inner | st.lists(inner, max_size=3)
    return st.dictionaries(st.sampled_from(keys), value, max_size=len(keys))


@given(st.binary(max_size=300))
def test_any_bytes_give_spans_or_decode_error(data: bytes) -> None:
    for decoder in (spans_from_json_v2, spans_from_json_v1):
        with contextlib.suppress(DecodeError):
            decoder(data)


@given(st.lists(span_docs(V2_KEYS), max_size=3), st.lists(span_docs(V1_KEYS), max_size=3))
def test_any_json_gives_spans_or_decode_error(v2: list[Any], v1: list[Any]) -> None:
    for decoder, docs in ((spans_from_json_v2, v2), (spans_from_json_v1, v1)):
        with contextlib.suppress(DecodeError):
            decoder(orjson.dumps(docs))


# Spans holding only what Zipkin carries: string attributes (ports as ints), events and links whose
# attributes are JSON scalars, µs times, and no key the mapping treats specially.
_RESERVED = RESOURCE_KEYS | {"error", "span.kind", "w3c.tracestate", "otel.status_code",
                             "otel.status_description", "otel.library.name",
                             "otel.library.version", "otel.scope.name", "otel.scope.version",
                             "otlp.service.name.source", "net.host.ip", "net.host.port",
                             "peer.service", "net.peer.ip", "net.peer.port",
                             "otel.zipkin.absentField.startTime"}  # fmt: skip
keys = st.text(max_size=10).filter(lambda k: k not in _RESERVED and not k.startswith("otlp.link."))
scalars = (
    st.text(max_size=8)
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
)
plain_names = st.text(max_size=12).filter(lambda n: "|" not in n and not n.startswith("{"))
ids8 = st.binary(min_size=8, max_size=8).filter(any)
micros = st.integers(1, 2**52)
ips = st.ip_addresses().map(str)


@st.composite
def zipkin_spans(draw: st.DrawFn) -> Span:
    start = draw(micros) * 1000
    span_id = draw(ids8)
    attributes: Attributes = draw(st.dictionaries(keys, st.text(max_size=10), max_size=4))
    for key, strategy in (
        ("net.host.ip", ips),
        ("net.host.port", st.integers(1, 65535)),
        ("peer.service", st.text(min_size=1, max_size=8)),
        ("net.peer.ip", ips),
        ("net.peer.port", st.integers(1, 65535)),
    ):
        if draw(st.booleans()):
            attributes[key] = draw(strategy)  # fmt: skip
    code = draw(st.sampled_from(StatusCode))
    events = draw(st.lists(st.builds(
        Event, micros.map(lambda us: us * 1000), plain_names,
        st.dictionaries(keys, scalars, max_size=3), st.integers(0, 2**32 - 1),
    ), max_size=3))  # fmt: skip
    links = draw(st.lists(st.builds(
        Link, st.binary(min_size=16, max_size=16).filter(any), ids8,
        st.text(max_size=6).filter(lambda s: "|" not in s),
        st.dictionaries(keys, scalars, max_size=2), st.integers(0, 2**32 - 1),
    ), max_size=2))  # fmt: skip
    resource: Attributes = {"service.name": draw(st.text(min_size=1, max_size=8))}
    resource.update(draw(st.dictionaries(st.sampled_from(sorted(RESOURCE_KEYS - {"service.name"})),
                                         st.text(max_size=6), max_size=2)))  # fmt: skip
    return Span(
        trace_id=draw(st.binary(min_size=16, max_size=16).filter(any)),
        span_id=span_id,
        name=draw(st.text(max_size=12)),
        start_ns=start,
        end_ns=start + draw(st.integers(0, 2**40)) * 1000,
        parent_span_id=draw(st.just(b"") | ids8.filter(lambda p: p != span_id)),
        kind=draw(st.sampled_from(SpanKind)),
        attributes=attributes,
        events=events,
        links=links,
        status=Status(code, draw(st.text(max_size=8)) if code is not StatusCode.UNSET else ""),
        trace_state=draw(st.text(max_size=8)),
        resource=Resource(resource),
        scope=Scope(draw(st.text(max_size=6)), draw(st.text(max_size=6))),
    )


@given(st.lists(zipkin_spans(), min_size=1, max_size=4))
def test_model_to_v2_json_and_back_keeps_what_zipkin_carries(spans: list[Span]) -> None:
    assert spans_from_json_v2(encode_spans(spans)) == spans
