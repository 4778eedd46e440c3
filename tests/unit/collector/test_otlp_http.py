"""OTLP/HTTP receiver over a real uvicorn socket: the OpenTelemetry SDK exporter (plain, gzip,
deflate), OTLP JSON, and hostile requests from httpx and raw sockets, each answered with the
status code and google.rpc.Status body the OTLP spec asks for while the server keeps serving."""

from __future__ import annotations

import asyncio
import gzip
import os
import random
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from google.rpc import status_pb2  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult
from starlette.types import Message

from tests.unit.collector.harness import (
    Collector,
    MiB,
    sdk_spans,
    span_ids_of,
    trace_id_of,
    valid_request,
)
from tracemesh.codecs.otlp_proto import DecodedBatch, decode_request
from tracemesh.codecs.protowire import encode_status
from tracemesh.collector.receivers import otlp_http
from tracemesh.collector.receivers.otlp_http import build_app

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def json_request(
    trace_id: str, span_ids: list[str], start: str = "1000", end: str = "2000"
) -> bytes:
    spans = [
        {"traceId": trace_id, "spanId": sid, "name": f"op-{sid}", "kind": 2,
         "startTimeUnixNano": start, "endTimeUnixNano": end,
         "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}}]}
        for sid in span_ids
    ]  # fmt: skip
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]}
    return orjson.dumps(
        {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
    )


def status_of(response: httpx.Response) -> Any:
    """The error body, decoded from protobuf or JSON after the response's content type."""
    if response.headers["content-type"] == "application/json":
        return orjson.loads(response.content)
    assert response.headers["content-type"] == "application/x-protobuf"
    status = status_pb2.Status.FromString(response.content)
    return {"code": status.code, "message": status.message}


def failed(collector: Collector, fmt: str, reason: str) -> float:
    labels = {"receiver": "otlp_http", "format": fmt, "reason": reason}
    return collector.sample("tracemesh_receiver_requests_failed_total", **labels)


def assert_still_serving(collector: Collector, client: httpx.Client) -> None:
    trace_id = os.urandom(16)
    body = valid_request(2, trace_id).SerializeToString()
    response = client.post(collector.http_url, content=body, headers=PROTOBUF)
    assert response.status_code == 200
    assert len(collector.trace(trace_id)) == 2


# ---- the real OpenTelemetry exporter and OTLP JSON ---------------------------------------------


@pytest.mark.parametrize("compression", list(Compression))
def test_the_otel_sdk_exporter_delivers_every_span(
    collector: Collector, compression: Compression
) -> None:
    exporter = OTLPSpanExporter(endpoint=collector.http_url, compression=compression)
    spans = sdk_spans(200)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]
    stored = collector.trace(trace_id_of(spans))
    assert sorted(s.span_id for s in stored) == span_ids_of(spans)
    assert next(s for s in stored if s.name == "op-2").attributes["attr.0"] == "x" * 10
    labels = {"receiver": "otlp_http", "format": "proto"}
    assert collector.sample("tracemesh_spans_received_total", **labels) == 200


def test_protobuf_success_is_an_empty_export_response(
    collector: Collector, client: httpx.Client
) -> None:
    body = valid_request(3, b"\x03" * 16).SerializeToString()
    response = client.post(
        collector.http_url, content=body,
        headers={"content-type": "application/x-protobuf; charset=binary"},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    assert len(collector.trace(b"\x03" * 16)) == 3


def test_json_is_accepted_and_answered_in_json(collector: Collector, client: httpx.Client) -> None:
    trace_id = "5b8efff798038103d269b633813fc60c"
    body = json_request(trace_id.upper(), ["eee19b7ec3c1b174", "eee19b7ec3c1b175"])
    response = client.post(collector.http_url, content=body, headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert orjson.loads(response.content) == {}
    stored = collector.trace(bytes.fromhex(trace_id))
    assert sorted(s.name for s in stored) == ["op-eee19b7ec3c1b174", "op-eee19b7ec3c1b175"]
    assert stored[0].resource.service_name == "json-svc"
    assert stored[0].attributes == {"http.method": "GET"}


def test_gzipped_json_is_accepted(collector: Collector, client: httpx.Client) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    body = gzip.compress(json_request(trace_id, ["b7ad6b7169203331"]))
    headers = {**JSON, "content-encoding": "gzip"}
    assert client.post(collector.http_url, content=body, headers=headers).status_code == 200
    assert len(collector.trace(bytes.fromhex(trace_id))) == 1


def test_concatenated_gzip_members_are_one_body(collector: Collector, client: httpx.Client) -> None:
    wire = valid_request(4, b"\x04" * 16).SerializeToString()
    body = gzip.compress(wire[:10]) + gzip.compress(wire[10:])
    headers = {**PROTOBUF, "content-encoding": "gzip"}
    assert client.post(collector.http_url, content=body, headers=headers).status_code == 200
    assert len(collector.trace(b"\x04" * 16)) == 4


def test_a_one_megabyte_attribute_value_is_accepted(
    collector: Collector, client: httpx.Client
) -> None:
    request = valid_request(1, trace_id=b"\x09" * 16)
    attr = request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="blob")
    attr.value.string_value = "z" * MiB
    response = client.post(
        collector.http_url, content=request.SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    (span,) = collector.trace(b"\x09" * 16)
    assert span.attributes["blob"] == "z" * MiB


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_large_bodies_are_decoded_off_the_event_loop(
    collector: Collector, client: httpx.Client, monkeypatch: pytest.MonkeyPatch, compress: bool
) -> None:
    threads: list[str] = []

    def spy(data: bytes) -> DecodedBatch:
        threads.append(threading.current_thread().name)
        return decode_request(data)

    monkeypatch.setattr(otlp_http, "decode_request", spy)
    big = valid_request(1, b"\x0b" * 16)
    big.resource_spans[0].scope_spans[0].spans[0].name = os.urandom(MiB).hex()
    for body in (valid_request(1).SerializeToString(), big.SerializeToString()):
        headers = PROTOBUF
        if compress:
            body, headers = gzip.compress(body), {**PROTOBUF, "content-encoding": "gzip"}
        assert client.post(collector.http_url, content=body, headers=headers).status_code == 200
    assert threads[0] == "collector"  # the loop's thread
    assert threads[1] != "collector"
    assert len(collector.trace(b"\x0b" * 16)) == 1


# ---- partial success ----------------------------------------------------------------------------


def test_invalid_spans_get_a_protobuf_partial_success(
    collector: Collector, client: httpx.Client
) -> None:
    request = valid_request(2, trace_id=b"\x05" * 16)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans.add(trace_id=bytes(16), span_id=b"\x01" * 8, start_time_unix_nano=1, end_time_unix_nano=2)
    spans.add(trace_id=b"\x05" * 16, span_id=bytes(8), start_time_unix_nano=1, end_time_unix_nano=2)
    spans.add(  # negative duration and no name: kept, both corrected
        trace_id=b"\x05" * 16, span_id=b"\x09" * 8, start_time_unix_nano=5, end_time_unix_nano=4
    )
    response = client.post(
        collector.http_url, content=request.SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "invalid trace id" in partial.error_message
    stored = collector.trace(b"\x05" * 16)
    assert [s.name for s in stored] == ["s0", "s1", "empty-span-name"]
    assert stored[2].end_ns == 5 and len(stored[2].warnings) == 2
    labels = {"receiver": "otlp_http", "format": "proto"}
    assert collector.sample("tracemesh_spans_rejected_total", **labels) == 2


def test_invalid_spans_get_a_json_partial_success(
    collector: Collector, client: httpx.Client
) -> None:
    trace_id = "6b8efff798038103d269b633813fc60c"
    body = orjson.loads(json_request(trace_id, ["00000000000000aa"]))
    spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append({**spans[0], "traceId": "0" * 32})  # all-zero trace id
    spans.append({**spans[0], "spanId": "0000000000000000"})  # all-zero span id
    spans.append({**spans[0], "spanId": "abcd"})  # too short
    negative = {**spans[0], "spanId": "00000000000000bb"}
    spans.append({**negative, "startTimeUnixNano": "2000", "endTimeUnixNano": "1000"})  # kept
    response = client.post(collector.http_url, content=orjson.dumps(body), headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    partial = orjson.loads(response.content)["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 3
    assert partial["errorMessage"]
    stored = collector.trace(bytes.fromhex(trace_id))
    assert sorted(s.end_ns - s.start_ns for s in stored)[0] == 0 and len(stored) == 2


# ---- hostile input: each gets its status and the server keeps serving --------------------------


@pytest.mark.parametrize(
    "body",
    [
        valid_request(50).SerializeToString()[:-7],  # truncated
        random.Random(7).randbytes(4096),
        b"\x0a\xff\xff\xff\xff\x0f",
    ],
    ids=["truncated", "random", "bad-length"],
)
def test_malformed_protobuf_is_400_with_a_protobuf_status(
    collector: Collector, client: httpx.Client, body: bytes
) -> None:
    response = client.post(collector.http_url, content=body, headers=PROTOBUF)
    assert response.status_code == 400
    status = status_of(response)
    assert "invalid OTLP protobuf" in status["message"]
    assert status["code"] == 3  # INVALID_ARGUMENT
    assert failed(collector, "proto", "malformed") == 1
    assert_still_serving(collector, client)


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b"\xff\xfe",
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
    ],
    ids=["unterminated", "array", "not-utf8", "non-hex-id"],
)
def test_invalid_json_is_400_with_a_json_status(
    collector: Collector, client: httpx.Client, body: bytes
) -> None:
    response = client.post(collector.http_url, content=body, headers=JSON)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert status_of(response)["message"]
    assert failed(collector, "json", "malformed") == 1
    assert_still_serving(collector, client)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/grpc", "application/protobuf", ""]
)
def test_a_wrong_content_type_is_415(
    collector: Collector, client: httpx.Client, content_type: str
) -> None:
    body = valid_request(1).SerializeToString()
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(collector.http_url, content=body, headers=headers)
    assert response.status_code == 415
    assert "Content-Type" in status_of(response)["message"]
    assert failed(collector, "unknown", "unsupported_media_type") == 1
    assert_still_serving(collector, client)


def test_an_unknown_content_encoding_is_415(collector: Collector, client: httpx.Client) -> None:
    body = valid_request(1).SerializeToString()
    response = client.post(
        collector.http_url, content=body, headers={**PROTOBUF, "content-encoding": "br"}
    )
    assert response.status_code == 415
    assert "Content-Encoding" in status_of(response)["message"]
    assert failed(collector, "proto", "unsupported_encoding") == 1


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b"definitely not gzip"),
        ("gzip", gzip.compress(valid_request(20).SerializeToString())[:-12]),  # truncated
        ("deflate", b"\x78\x9c garbage"),
    ],
    ids=["not-gzip", "truncated-gzip", "bad-deflate"],
)
def test_a_corrupt_compressed_body_is_400(
    collector: Collector, client: httpx.Client, encoding: str, body: bytes
) -> None:
    headers = {**PROTOBUF, "content-encoding": encoding}
    response = client.post(collector.http_url, content=body, headers=headers)
    assert response.status_code == 400
    assert failed(collector, "proto", "malformed") == 1
    assert_still_serving(collector, client)


def test_wrong_methods_are_405_and_unknown_paths_404(
    collector: Collector, client: httpx.Client
) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(method, collector.http_url)
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
    response = client.post(
        collector.http_url.replace("/v1/traces", "/v1/metrics"), headers=PROTOBUF
    )
    assert response.status_code == 404
    assert failed(collector, "unknown", "method_not_allowed") == 3
    assert_still_serving(collector, client)


# ---- size limits --------------------------------------------------------------------------------


def test_a_50_mb_body_is_413_before_it_is_even_sent(collector: Collector) -> None:
    """Headers announcing 50 MB are answered at once: the server never waits for the body."""
    with socket.create_connection(("127.0.0.1", collector.http.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 52428800\r\n\r\n" + b"\0" * 65536
        )
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
    assert failed(collector, "proto", "too_large") == 1


def test_a_50_mb_streamed_body_is_413_without_being_buffered(
    collector: Collector, client: httpx.Client
) -> None:
    """No Content-Length (chunked): the limit is enforced while reading, and memory stays flat."""
    chunk = b"\0" * 65536

    def body() -> Iterator[bytes]:
        for _ in range(50 * MiB // len(chunk)):
            yield chunk

    tracemalloc.start()
    try:
        response = client.post(collector.http_url, content=body(), headers=PROTOBUF)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert "limit" in status_of(response)["message"]
    assert peak < 48 * MiB  # the server held at most its 32 MiB limit, never the 50 MB
    assert_still_serving(collector, client)


def test_the_limit_is_enforced_on_a_small_server_too(client: httpx.Client) -> None:
    collector = Collector(max_body_bytes=64 * 1024)
    try:
        body = b"\0" * (64 * 1024 + 1)
        assert client.post(collector.http_url, content=body, headers=PROTOBUF).status_code == 413
        streamed = client.post(collector.http_url, content=iter([body[:40000], body[40000:]]),
                               headers=PROTOBUF)  # fmt: skip
        assert streamed.status_code == 413
        assert_still_serving(collector, client)
    finally:
        collector.close()


def test_a_gzip_bomb_is_413_on_its_decompressed_size(
    collector: Collector, client: httpx.Client
) -> None:
    bomb = gzip.compress(b"\0" * (200 * MiB), compresslevel=9)  # ~200 KB on the wire
    assert len(bomb) < MiB
    tracemalloc.start()
    try:
        response = client.post(
            collector.http_url, content=bomb, headers={**PROTOBUF, "content-encoding": "gzip"}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert "decompressed" in status_of(response)["message"]
    assert peak < 48 * MiB  # inflated no further than the 32 MiB limit
    assert_still_serving(collector, client)


def test_a_deflate_bomb_is_413_too(client: httpx.Client) -> None:
    collector = Collector(max_body_bytes=MiB)
    try:
        bomb = zlib.compress(b"\0" * (8 * MiB))
        headers = {**JSON, "content-encoding": "deflate"}
        response = client.post(collector.http_url, content=bomb, headers=headers)
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/json"
    finally:
        collector.close()


def test_a_client_that_disconnects_mid_body_is_counted_and_harmless(
    collector: Collector, client: httpx.Client
) -> None:
    with socket.create_connection(("127.0.0.1", collector.http.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 1000\r\n\r\nabc"
        )
    deadline = time.monotonic() + 5
    while not failed(collector, "unknown", "disconnected") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert failed(collector, "unknown", "disconnected") == 1
    assert_still_serving(collector, client)


# ---- backpressure -------------------------------------------------------------------------------


def full_collector() -> Collector:
    """A collector whose 10-span queue holds spans for a minute unless flushed."""
    return Collector(queue_spans=10, flush_interval=60.0)


@pytest.mark.parametrize("headers", [PROTOBUF, JSON], ids=["protobuf", "json"])
def test_a_full_queue_is_503_with_retry_after(
    client: httpx.Client, headers: dict[str, str]
) -> None:
    collector = full_collector()
    try:
        body = valid_request(6).SerializeToString()
        assert client.post(collector.http_url, content=body, headers=PROTOBUF).status_code == 200
        if headers is JSON:
            body = json_request("7" * 32, [f"{i:016x}" for i in range(1, 7)])
        response = client.post(collector.http_url, content=body, headers=headers)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == headers["content-type"]
        assert "queue full" in status_of(response)["message"]
        fmt = "json" if headers is JSON else "proto"
        assert failed(collector, fmt, "queue_full") == 1
        labels = {"receiver": "otlp_http", "format": fmt}
        assert collector.sample("tracemesh_spans_dropped_total", **labels) == 6
        collector.flush()
        assert client.post(collector.http_url, content=body, headers=headers).status_code == 200
    finally:
        collector.close()


def test_the_otel_sdk_honours_retry_after_and_delivers_once_there_is_room() -> None:
    collector = full_collector()
    try:
        httpx.post(
            collector.http_url, content=valid_request(6).SerializeToString(), headers=PROTOBUF
        )
        exporter = OTLPSpanExporter(endpoint=collector.http_url, timeout=10)
        spans = sdk_spans(5)
        threading.Timer(0.3, collector.flush).start()  # room appears while the SDK waits
        started = time.monotonic()
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert time.monotonic() - started >= 0.7  # it waited ~Retry-After's 1 s
        exporter.shutdown()  # type: ignore[no-untyped-call]
        assert len(collector.trace(trace_id_of(spans))) == 5
    finally:
        collector.close()


def test_a_stopping_pipeline_is_503(collector: Collector, client: httpx.Client) -> None:
    collector.call(collector.pipeline.stop())
    body = valid_request(1).SerializeToString()
    response = client.post(collector.http_url, content=body, headers=PROTOBUF)
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert failed(collector, "proto", "shutting_down") == 1


# ---- the app without a server -------------------------------------------------------------------


def test_the_app_answers_the_asgi_lifespan_protocol(collector: Collector) -> None:
    app = build_app(collector.pipeline, collector.metrics)
    inbox: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_encode_status_matches_the_googleapis_message() -> None:
    wire = encode_status(14, "try again — later", [("type.googleapis.com/x.Y", b"\x08\x01")])
    status = status_pb2.Status.FromString(wire)
    assert (status.code, status.message) == (14, "try again — later")
    assert (status.details[0].type_url, status.details[0].value) == (
        "type.googleapis.com/x.Y",
        b"\x08\x01",
    )
    assert encode_status(0, "") == b""
    assert status_pb2.Status.FromString(encode_status(300, "x" * 200)).code == 300
