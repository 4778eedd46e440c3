"""Model spans -> Jaeger UI JSON, checked against golden dicts written from Jaeger's UI model."""

from __future__ import annotations

import orjson
from hypothesis import given, settings

from tests.unit.codecs.strategies import spans as any_spans
from tracemesh.codecs.jaeger_json import (
    dependencies_json,
    group_by_trace,
    key_value,
    trace_json,
)
from tracemesh.model.dependency import DependencyLink
from tracemesh.model.span import (
    REF_TYPE_KEY,
    Event,
    Link,
    Resource,
    Scope,
    Span,
    SpanKind,
    Status,
    StatusCode,
)

TRACE = bytes(8) + bytes.fromhex("00000000000000a1")
TRACE_128 = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
FRONTEND = Resource({"service.name": "frontend", "host.name": "web-1"})
BACKEND = Resource({"service.name": "backend"})


def _id(n: int) -> bytes:
    return n.to_bytes(8, "big")


def test_golden_trace() -> None:
    scope = Scope("io.opentelemetry.flask", "1.2.0")
    root = Span(
        trace_id=TRACE,
        span_id=_id(0xB2),
        name="GET /x",
        start_ns=1_700_000_000_000_000_999,
        end_ns=1_700_000_000_001_500_998,
        kind=SpanKind.SERVER,
        attributes={
            "http.status_code": 200,
            "big": 2**53 + 1,
            "neg_big": -(2**53) - 1,
            "safe": 2**53 - 1,
            "ratio": 72.5,
            "blob": b"\x00\x0009",
            "ok": True,
            "list": ["a", 1, True],
            "map": {"z": 1, "a": "<b>"},
        },
        events=[
            Event(1_700_000_000_000_500_000, "cache miss", {"key": "k1"}),
            Event(1_700_000_000_000_600_000, "named", {"event": "from-attribute"}),
            Event(1_700_000_000_000_700_000, "", {"x": "y"}),
        ],
        status=Status(StatusCode.ERROR, "boom"),
        trace_state="vendor=1",
        flags=0x101,
        resource=FRONTEND,
        scope=scope,
    )
    child = Span(
        trace_id=TRACE,
        span_id=_id(0xC3),
        parent_span_id=_id(0xB2),
        name="SELECT",
        start_ns=1_700_000_000_000_100_000,
        end_ns=1_700_000_000_000_200_000,
        kind=SpanKind.CLIENT,
        links=[
            Link(TRACE_128, _id(0xD4)),
            Link(TRACE, _id(0xE5), attributes={REF_TYPE_KEY: "child_of"}),
        ],
        status=Status(StatusCode.OK),
        resource=BACKEND,
        warnings=["clock skew adjusted"],
    )
    internal = Span(
        trace_id=TRACE,
        span_id=_id(0xF6),
        parent_span_id=_id(0xB2),
        name="render",
        start_ns=1_700_000_000_000_300_000,
        end_ns=1_700_000_000_000_400_000,
        kind=SpanKind.INTERNAL,
        resource=Resource({"service.name": "frontend", "host.name": "web-1"}),  # equal: shares p1
    )
    assert trace_json([root, child, internal]) == {
        "traceID": "00000000000000a1",
        "spans": [
            {
                "traceID": "00000000000000a1",
                "spanID": "00000000000000b2",
                "flags": 1,
                "operationName": "GET /x",
                "references": [],
                "startTime": 1_700_000_000_000_000,
                "duration": 1499,
                "tags": [
                    {"key": "otel.scope.name", "type": "string", "value": "io.opentelemetry.flask"},
                    {"key": "otel.scope.version", "type": "string", "value": "1.2.0"},
                    {"key": "http.status_code", "type": "int64", "value": 200},
                    {"key": "big", "type": "int64", "value": "9007199254740993"},
                    {"key": "neg_big", "type": "int64", "value": "-9007199254740993"},
                    {"key": "safe", "type": "int64", "value": 9007199254740991},
                    {"key": "ratio", "type": "float64", "value": 72.5},
                    {"key": "blob", "type": "binary", "value": "AAAwOQ=="},
                    {"key": "ok", "type": "bool", "value": True},
                    {"key": "list", "type": "string", "value": '["a",1,true]'},
                    {"key": "map", "type": "string", "value": '{"a":"\\u003cb\\u003e","z":1}'},
                    {"key": "span.kind", "type": "string", "value": "server"},
                    {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                    {"key": "error", "type": "bool", "value": True},
                    {"key": "otel.status_description", "type": "string", "value": "boom"},
                    {"key": "w3c.tracestate", "type": "string", "value": "vendor=1"},
                ],
                "logs": [
                    {
                        "timestamp": 1_700_000_000_000_500,
                        "fields": [
                            {"key": "event", "type": "string", "value": "cache miss"},
                            {"key": "key", "type": "string", "value": "k1"},
                        ],
                    },
                    {
                        "timestamp": 1_700_000_000_000_600,
                        "fields": [{"key": "event", "type": "string", "value": "from-attribute"}],
                    },
                    {
                        "timestamp": 1_700_000_000_000_700,
                        "fields": [{"key": "x", "type": "string", "value": "y"}],
                    },
                ],
                "processID": "p1",
                "warnings": None,
            },
            {
                "traceID": "00000000000000a1",
                "spanID": "00000000000000c3",
                "operationName": "SELECT",
                "references": [
                    {
                        "refType": "CHILD_OF",
                        "traceID": "00000000000000a1",
                        "spanID": "00000000000000b2",
                    },
                    {
                        "refType": "FOLLOWS_FROM",
                        "traceID": "0af7651916cd43dd8448eb211c80319c",
                        "spanID": "00000000000000d4",
                    },
                    {
                        "refType": "CHILD_OF",
                        "traceID": "00000000000000a1",
                        "spanID": "00000000000000e5",
                    },
                ],
                "startTime": 1_700_000_000_000_100,
                "duration": 100,
                "tags": [
                    {"key": "span.kind", "type": "string", "value": "client"},
                    {"key": "otel.status_code", "type": "string", "value": "OK"},
                ],
                "logs": [],
                "processID": "p2",
                "warnings": ["clock skew adjusted"],
            },
            {
                "traceID": "00000000000000a1",
                "spanID": "00000000000000f6",
                "operationName": "render",
                "references": [
                    {
                        "refType": "CHILD_OF",
                        "traceID": "00000000000000a1",
                        "spanID": "00000000000000b2",
                    }
                ],
                "startTime": 1_700_000_000_000_300,
                "duration": 100,
                "tags": [{"key": "span.kind", "type": "string", "value": "internal"}],
                "logs": [],
                "processID": "p1",
                "warnings": None,
            },
        ],
        "processes": {
            "p1": {
                "serviceName": "frontend",
                "tags": [{"key": "host.name", "type": "string", "value": "web-1"}],
            },
            "p2": {"serviceName": "backend", "tags": []},
        },
        "warnings": None,
    }


def test_128_bit_trace_id_and_link_to_parent_overrides_its_type() -> None:
    span = Span(
        trace_id=TRACE_128,
        span_id=_id(2),
        parent_span_id=_id(1),
        name="consume",
        start_ns=10_000,
        end_ns=9_000,  # negative duration is shown as 0, never as a huge unsigned number
        links=[Link(TRACE_128, _id(1))],  # the parent again, as a link without ref type
        resource=Resource(),
    )
    trace = trace_json([span])
    assert trace["traceID"] == "0af7651916cd43dd8448eb211c80319c"
    (out,) = trace["spans"]  # type: ignore[misc]
    assert out["references"] == [
        {
            "refType": "FOLLOWS_FROM",
            "traceID": "0af7651916cd43dd8448eb211c80319c",
            "spanID": "0000000000000001",
        }
    ]
    assert out["duration"] == 0
    assert out["tags"] == []
    assert "flags" not in out
    assert trace["processes"] == {"p1": {"serviceName": "unknown_service", "tags": []}}


def test_tag_value_edge_cases() -> None:
    assert key_value("f", float("nan")) == {"key": "f", "type": "float64", "value": "NaN"}
    assert key_value("f", float("-inf")) == {"key": "f", "type": "float64", "value": "-Inf"}
    assert key_value("n", None) == {"key": "n", "type": "string", "value": ""}
    assert key_value("i", -(2**53 - 1)) == {"key": "i", "type": "int64", "value": -(2**53 - 1)}
    assert key_value("b", b"") == {"key": "b", "type": "binary", "value": ""}
    nested = key_value("a", [b"\x01", [1.5, None], {"k": "\u2028&"}])
    assert nested["value"] == '["AQ==",[1.5,null],{"k":"\\u2028\\u0026"}]'


def test_process_identity_is_order_sensitive_like_jaeger() -> None:
    a = Resource({"service.name": "s", "x": "1", "y": "2"})
    b = Resource({"service.name": "s", "y": "2", "x": "1"})
    spans = [Span(TRACE, _id(i + 1), "op", 1, 2, resource=r) for i, r in enumerate((a, b, a))]
    trace = trace_json(spans)
    assert [s["processID"] for s in trace["spans"]] == ["p1", "p2", "p1"]  # type: ignore[attr-defined]


def test_group_by_trace_keeps_first_appearance_order() -> None:
    one = Span(TRACE, _id(1), "a", 1, 2)
    two = Span(TRACE_128, _id(2), "b", 1, 2)
    three = Span(TRACE, _id(3), "c", 1, 2)
    assert group_by_trace([one, two, three]) == [[one, three], [two]]


def test_dependencies() -> None:
    links = [DependencyLink("a", "b", 3, source="x")]
    assert dependencies_json(links) == [{"parent": "a", "child": "b", "callCount": 3}]


@settings(max_examples=200)
@given(any_spans())
def test_any_span_renders_as_json(span: Span) -> None:
    trace = trace_json([span])
    orjson.dumps(trace)  # serializable: no bytes, no non-finite floats, no stray objects
    (out,) = trace["spans"]  # type: ignore[misc]
    assert len(out["spanID"]) == 16
    assert len(out["traceID"]) in (16, 32)
    assert out["startTime"] == span.start_ns // 1000
