"""tracemesh writes Jaeger's span documents and reads documents Jaeger wrote.

The expected documents are written out by hand from Jaeger's `dbmodel.Span`, its v2 writer
(`ToDBModel` + `splitElevatedTags`) and its `jaeger-span-8.json` / `-7.json` templates."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.elastic import config_for_tests, prefix_for
from tests.support.search_node import SearchNode
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.model.query import Operation, TraceQuery
from tracemesh.model.span import Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode
from tracemesh.storage.elasticsearch.client import ElasticClient
from tracemesh.storage.elasticsearch.documents import TagFields
from tracemesh.storage.elasticsearch.factory import ElasticStorage
from tracemesh.storage.elasticsearch.indices import day
from tracemesh.storage.elasticsearch.queries import QueryBuilder
from tracemesh.storage.elasticsearch.writer import fnv64a, service_doc_id

START_NS = 1_763_000_000_123_456_789  # 2025-11-13
RECENT_US = (time.time_ns() // 1_000_000_000 - 3600) * 1_000_000  # service lists look back 72 h
TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def _span() -> Span:
    resource = Resource({"service.name": "frontend", "host.name": "web-1", "pid": 42})
    return Span(
        trace_id=TRACE,
        span_id=bytes.fromhex("b7ad6b7169203331"),
        parent_span_id=bytes.fromhex("00f067aa0ba902b7"),
        name="HTTP GET /dispatch",
        start_ns=START_NS,
        end_ns=START_NS + 2_500_000,
        kind=SpanKind.SERVER,
        attributes={"http.method": "GET", "http.status_code": 500, "ratio": 0.25, "raw": b"\x01"},
        events=[Event(START_NS + 1_000_000, "retry", {"attempt": 2})],
        links=[Link(bytes(15) + b"\x07", bytes(7) + b"\x08", "", {"reason": "batch"})],
        status=Status(StatusCode.ERROR, "boom"),
        flags=1,
        resource=resource,
        scope=Scope("io.example", "1.2"),
    )


def _kv(key: str, kind: str, value: object) -> dict[str, object]:
    return {"key": key, "type": kind, "value": value}


EXPECTED_SPAN_DOCUMENT: dict[str, object] = {
    "traceID": "0af7651916cd43dd8448eb211c80319c",
    "spanID": "b7ad6b7169203331",
    "parentSpanID": "00f067aa0ba902b7",
    "flags": 1,
    "operationName": "HTTP GET /dispatch",
    "references": [
        {
            "refType": "CHILD_OF",
            "traceID": "0af7651916cd43dd8448eb211c80319c",
            "spanID": "00f067aa0ba902b7",
        },
        {
            "refType": "FOLLOWS_FROM",
            "traceID": "00000000000000000000000000000007",
            "spanID": "0000000000000008",
            "tags": [_kv("reason", "string", "batch")],  # Jaeger's template maps them
        },
    ],
    "startTime": START_NS // 1000,
    "startTimeMillis": START_NS // 1_000_000,
    "duration": 2500,
    "tags": [
        _kv("otel.scope.name", "string", "io.example"),
        _kv("otel.scope.version", "string", "1.2"),
        _kv("http.status_code", "int64", 500),
        _kv("ratio", "float64", 0.25),
        _kv("raw", "binary", "01"),
        _kv("span.kind", "string", "server"),
        _kv("error", "bool", True),
        _kv("otel.status_description", "string", "boom"),
    ],
    "tag": {"http@method": "GET"},  # --es.tags-as-fields.include=http.method, `.` -> `@`
    "logs": [
        {
            "timestamp": (START_NS + 1_000_000) // 1000,
            "fields": [_kv("event", "string", "retry"), _kv("attempt", "int64", 2)],
        },
    ],
    "process": {
        "serviceName": "frontend",
        "tags": [_kv("host.name", "string", "web-1"), _kv("pid", "int64", 42)],
    },
}

# The fields of Jaeger's span template and their types (jaeger-span-7.json / -8.json).
JAEGER_SPAN_FIELDS = {
    "traceID": "keyword",
    "spanID": "keyword",
    "parentSpanID": "keyword",
    "operationName": "keyword",
    "startTime": "long",
    "startTimeMillis": "date",
    "duration": "long",
    "flags": "integer",
    "logs": "nested",
    "references": "nested",
    "tags": "nested",
    "tag": "object",
    "scopeTag": "object",
    "scopeTags": "nested",
}


def _run(loop: asyncio.AbstractEventLoop, coroutine: Any) -> Any:
    return loop.run_until_complete(coroutine)


def test_a_written_span_is_jaegers_document(
    node: SearchNode, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    prefix = prefix_for(tmp_path)
    config = config_for_tests(node.url, prefix, tags_as_fields_include=("http.method",))
    storage = ElasticStorage(config)
    _run(loop, storage.start())
    span = _span()
    _run(loop, storage.writer().write(batch_from_spans([span])))
    client = storage.client
    index = f"{prefix}-jaeger-span-{day(START_NS)}"
    hits = _run(loop, client.request("POST", f"/{index}/_search", {}))["hits"]["hits"]
    document = hits[0]["_source"]
    otlp = document.pop("otlp")
    mapping = _run(loop, client.request("GET", f"/{index}/_mapping"))[index]["mappings"]
    services = _run(loop, client.request("POST", f"/{prefix}-jaeger-service-*/_search", {}))
    assert _run(loop, storage.reader().get_trace(TRACE)) == [span]
    _run(loop, storage.close())

    assert document == EXPECTED_SPAN_DOCUMENT
    assert base64.b64decode(otlp)  # the exact OTLP span, for tracemesh's own reads
    properties = mapping["properties"]
    for name, kind in JAEGER_SPAN_FIELDS.items():
        assert properties[name].get("type", "object") == kind, name
    assert properties["startTimeMillis"]["format"] == "epoch_millis"
    assert properties["traceID"]["ignore_above"] == 256
    assert properties["process"]["properties"]["tags"]["type"] == "nested"
    assert properties["tag"]["properties"]["http@method"]["type"] == "keyword"  # dynamic template
    assert properties["otlp"]["type"] == "binary"  # stored, not indexed
    references = properties["references"]["properties"]
    assert references["tags"]["type"] == "nested" and references["flags"]["type"] == "integer"
    assert references["traceState"]["type"] == "keyword"
    service_hit = services["hits"]["hits"][0]
    assert service_hit["_source"] == {
        "serviceName": "frontend",
        "operationName": "HTTP GET /dispatch",
        "spanKind": "server",
    }
    assert service_hit["_id"] == service_doc_id("frontend", "HTTP GET /dispatch", "server")


def test_fnv64a_is_jaegers_service_document_id() -> None:
    assert fnv64a(b"") == 0xCBF29CE484222325  # FNV-1a test vectors
    assert fnv64a(b"a") == 0xAF63DC4C8601EC8C
    assert fnv64a(b"foobar") == 0x85944171F73967E8
    assert service_doc_id("svc", "op", "") == format(fnv64a(b"svcop"), "x")


# A span as Jaeger v1 stored it: 16-digit trace id of a 64-bit trace, values as strings, one tag
# elevated to the `tag` object, no `otlp`; and its service document, which has no kind.
JAEGER_V1_DOCUMENT: dict[str, object] = {
    "traceID": "00000000000004d2",
    "spanID": "0000000000000002",
    "flags": 1,
    "operationName": "GET /customer",
    "references": [
        {"refType": "CHILD_OF", "traceID": "00000000000004d2", "spanID": "0000000000000001"},
        {"refType": "FOLLOWS_FROM", "traceID": "0000000000000063", "spanID": "0000000000000009"},
    ],
    "startTime": RECENT_US,
    "startTimeMillis": RECENT_US // 1000,
    "duration": 1500,
    "tags": [
        _kv("otel.scope.name", "string", "legacy-lib"),
        _kv("http.status_code", "int64", "503"),
        _kv("span.kind", "string", "client"),
        _kv("error", "bool", "true"),
        _kv("payload", "binary", "cafe"),
    ],
    "tag": {"peer@service": "redis"},
    "logs": [
        {
            "timestamp": START_NS // 1000 + 100,
            "fields": [_kv("event", "string", "cache miss"), _kv("key", "string", "c-1")],
        },
    ],
    "process": {
        "serviceName": "customer",
        "tags": [_kv("hostname", "string", "host-7"), _kv("ip", "string", "10.0.0.7")],
    },
}


def test_a_document_jaeger_wrote_is_read(
    node: SearchNode, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    prefix = prefix_for(tmp_path)
    storage = ElasticStorage(config_for_tests(node.url, prefix))
    _run(loop, storage.start())
    client: ElasticClient = storage.client
    date = day(RECENT_US * 1000)
    _run(loop, client.request(
        "POST", f"/{prefix}-jaeger-span-{date}/_doc", JAEGER_V1_DOCUMENT, params={"refresh": "true"}
    ))  # fmt: skip
    service = {"serviceName": "customer", "operationName": "GET /customer"}
    doc_id = service_doc_id("customer", "GET /customer", "")
    path = f"/{prefix}-jaeger-service-{date}/_doc/{doc_id}"
    _run(loop, client.request("PUT", path, service, params={"refresh": "true"}))
    reader = storage.reader()
    trace_id = (1234).to_bytes(16, "big")
    spans = _run(loop, reader.get_trace(trace_id))
    by_elevated_tag = _run(loop, reader.find_traces(TraceQuery(
        service="customer", tags={"peer.service": "redis"}, limit=10,
    )))  # fmt: skip
    by_regex = _run(loop, reader.find_traces(TraceQuery(tags={"key": "c-.*"}, limit=10)))
    by_number = _run(loop, reader.find_traces(TraceQuery(
        service="customer", tags={"http.status_code": "503", "error": "true"}, limit=10
    )))  # fmt: skip
    services = _run(loop, reader.get_services())
    operations = _run(loop, reader.get_operations("customer"))
    server_operations = _run(loop, reader.get_operations("customer", SpanKind.SERVER))
    _run(loop, storage.close())

    assert len(spans) == 1
    span = spans[0]
    assert span.trace_id == trace_id
    assert span.span_id == (2).to_bytes(8, "big")
    assert span.parent_span_id == (1).to_bytes(8, "big")
    assert span.name == "GET /customer"
    assert (span.start_ns, span.end_ns) == (
        RECENT_US * 1000,
        RECENT_US * 1000 + 1_500_000,
    )
    assert span.kind is SpanKind.CLIENT
    assert span.status.code is StatusCode.ERROR
    assert span.flags == 1
    assert span.scope.name == "legacy-lib"
    assert span.attributes == {"http.status_code": 503, "payload": b"\xca\xfe",
                               "peer.service": "redis"}  # fmt: skip
    # Jaeger's reader copies process tags as they are (no `hostname` -> `host.name`)
    assert span.resource.attributes == {"service.name": "customer", "hostname": "host-7",
                                        "ip": "10.0.0.7"}  # fmt: skip
    assert [(e.name, e.attributes) for e in span.events] == [("cache miss", {"key": "c-1"})]
    assert [(lk.trace_id, lk.span_id, lk.attributes) for lk in span.links] == [
        ((99).to_bytes(16, "big"), (9).to_bytes(8, "big"), {"opentracing.ref_type": "follows_from"})
    ]
    assert [t[0].trace_id for t in by_elevated_tag] == [trace_id]
    assert [t[0].trace_id for t in by_regex] == [trace_id]
    assert [t[0].trace_id for t in by_number] == [trace_id]
    assert services == ["customer"]
    assert operations == [Operation("GET /customer", SpanKind.UNSPECIFIED)]
    # Jaeger's service documents have no kind, and Jaeger lists them whatever kind is asked
    assert server_operations == operations


def test_http_status_code_alone_is_no_error_as_in_jaeger(
    node: SearchNode, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    prefix = prefix_for(tmp_path)
    storage = ElasticStorage(config_for_tests(node.url, prefix))
    _run(loop, storage.start())
    client: ElasticClient = storage.client
    document = {**JAEGER_V1_DOCUMENT, "tags": [_kv("http.status_code", "int64", 500)]}
    index = f"{prefix}-jaeger-span-{day(RECENT_US * 1000)}"
    _run(loop, client.request("POST", f"/{index}/_doc", document, params={"refresh": "true"}))
    reader = storage.reader()
    spans = _run(loop, reader.get_trace((1234).to_bytes(16, "big")))
    errors = _run(loop, reader.find_traces(TraceQuery(tags={"error": "true"}, limit=10)))
    by_code = _run(loop, reader.find_traces(TraceQuery(tags={"http.status_code": "500"}, limit=9)))
    _run(loop, storage.close())
    assert [s.status.code for s in spans] == [StatusCode.UNSET]
    assert spans[0].attributes["http.status_code"] == 500
    assert errors == []
    assert len(by_code) == 1


@pytest.mark.parametrize("value", ["c-1", "c-[0-9]", "c.1", "(c|d)-1"])
def test_tag_values_are_regular_expressions_as_in_jaeger(value: str) -> None:
    clause, negated = QueryBuilder(TagFields()).tag("key", value)
    text = orjson.dumps(clause).decode()
    quoted = orjson.dumps(value).decode()
    assert not negated
    assert '{"regexp":{"tags.value":{"value":' + quoted + "}}}" in text
    assert '{"term":{"tags.value":' + quoted + "}}" in text  # and literally
