"""Zipkin receiver over a real uvicorn socket into the real pipeline and memory storage: the
OpenTelemetry Zipkin JSON exporter (v2 and v1), proto3 bodies, Envoy's shared client/server spans
read back through the real query API, and hostile requests answered with the right status while
the server keeps serving."""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import ipaddress
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.exporter.zipkin.encoder import Protocol
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind as SdkKind
from opentelemetry.trace import Status as SdkStatus
from opentelemetry.trace import StatusCode as SdkStatusCode

from tests.support.uv import uv_command
from tests.unit.codecs.test_zipkin_json import ENVOY_SPANS, GATEWAY_SPAN, SHARED, TRACE
from tests.unit.codecs.test_zipkin_proto import to_proto
from tests.unit.collector.harness import Collector, MiB, trace_id_of
from tracemesh.collector.pipeline import PipelineClosedError, QueueFullError
from tracemesh.collector.receivers import zipkin_http
from tracemesh.model.batch import SpanBatch
from tracemesh.model.span import Event, Scope, Span, SpanKind, Status, StatusCode
from tracemesh.query import http_api
from tracemesh.query.service import QueryService
from tracemesh.runtime.http_server import HttpServer
from tracemesh.runtime.metrics import Metrics

JSON = {"content-type": "application/json"}
PROTOBUF = {"content-type": "application/x-protobuf"}
LIMIT = 4 * MiB


class ZipkinCollector(Collector):
    """The harness collector plus the Zipkin receiver and the query API on their own sockets."""

    def __init__(self, **pipeline_options: Any) -> None:
        super().__init__(**pipeline_options)
        app = zipkin_http.build_app(self.pipeline, self.metrics, max_body_bytes=LIMIT)
        self.zipkin = self.call(self._serve("zipkin", app))
        query_app = http_api.build_app(QueryService(self.storage), self.metrics)
        self.query = self.call(self._serve("query", query_app))
        base = f"http://127.0.0.1:{self.zipkin.port}"
        self.v2, self.v1 = base + "/api/v2/spans", base + "/api/v1/spans"
        self.query_url = f"http://127.0.0.1:{self.query.port}"

    async def _serve(self, name: str, app: Any) -> HttpServer:
        server = HttpServer(name, app, "127.0.0.1", 0)
        server.start(self.tasks)
        await server.wait_started()
        return server

    def close(self) -> None:
        self.call(self.zipkin.stop())
        self.call(self.query.stop())
        super().close()


@pytest.fixture
def collector() -> Iterator[ZipkinCollector]:
    c = ZipkinCollector()
    yield c
    c.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c


def received(collector: Collector, fmt: str) -> float:
    labels = {"receiver": "zipkin", "format": fmt}
    return collector.sample("tracemesh_spans_received_total", **labels)


def failed(collector: Collector, fmt: str, reason: str) -> float:
    labels = {"receiver": "zipkin", "format": fmt, "reason": reason}
    return collector.sample("tracemesh_receiver_requests_failed_total", **labels)


def assert_still_serving(collector: ZipkinCollector, client: httpx.Client) -> None:
    doc = {**GATEWAY_SPAN, "traceId": os.urandom(16).hex()}
    response = client.post(collector.v2, content=orjson.dumps([doc]), headers=JSON)
    assert response.status_code == 202
    assert len(collector.trace(bytes.fromhex(doc["traceId"]))) == 1


# ---- the real OpenTelemetry Zipkin exporter -----------------------------------------------------


def shop_spans() -> list[ReadableSpan]:
    """A nested trace from the real SDK: every attribute type, events, an exception, an error."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=SdkResource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("shop.checkout", "3.2")
    with tracer.start_as_current_span("POST /checkout", kind=SdkKind.SERVER) as root:
        root.set_attributes({
            "http.method": "POST", "http.status_code": 500, "retry": True, "ratio": 0.25,
            "tags": ["a", "b"], "codes": [1, 2], "flags": [True, False], "weights": [0.5, 1.5],
        })  # fmt: skip
        root.add_event("cart loaded", {"items": 3, "vip": False, "total": 99.5, "id": "c-1"})
        with tracer.start_as_current_span("charge card", kind=SdkKind.CLIENT) as charge:
            charge.set_attribute("peer.service", "payments")
            with tracer.start_as_current_span("sign request"):
                pass
            charge.record_exception(ValueError("card declined"))
            charge.set_status(SdkStatus(SdkStatusCode.ERROR, "payment declined"))
        with tracer.start_as_current_span("publish order", kind=SdkKind.PRODUCER):
            pass
        root.set_status(SdkStatus(SdkStatusCode.OK))
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_the_otel_zipkin_json_exporter_delivers_every_span(
    collector: ZipkinCollector,
) -> None:
    spans = shop_spans()
    exporter = ZipkinExporter(endpoint=collector.v2, local_node_ipv4="10.0.0.8")
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
    exporter.shutdown()
    stored = {s.name: s for s in collector.trace(trace_id_of(spans))}
    assert set(stored) == {"POST /checkout", "charge card", "sign request", "publish order"}
    root, charge = stored["POST /checkout"], stored["charge card"]
    sign, publish = stored["sign request"], stored["publish order"]

    ids = {s.name: int(s.context.span_id).to_bytes(8, "big") for s in spans if s.context}
    assert {n: s.span_id for n, s in stored.items()} == ids
    assert root.parent_span_id == b""
    assert charge.parent_span_id == publish.parent_span_id == ids["POST /checkout"]
    assert sign.parent_span_id == ids["charge card"]
    assert (root.kind, charge.kind, publish.kind) == (
        SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER,
    )  # fmt: skip
    assert sign.kind is SpanKind.UNSPECIFIED  # the exporter sends INTERNAL as no kind at all

    assert root.service_name == "shop"
    assert root.resource.attributes["telemetry.sdk.language"] == "python"
    assert root.scope == Scope("shop.checkout", "3.2")
    # Zipkin tags are strings: the exporter renders every attribute type as text.
    assert {k: root.attributes[k] for k in ("http.status_code", "retry", "ratio", "tags")} == {
        "http.status_code": "500", "retry": "true", "ratio": "0.25", "tags": '["a","b"]',
    }  # fmt: skip
    assert root.attributes["codes"] == '["1","2"]'  # the exporter's own rendering
    assert root.attributes["flags"] == '["true","false"]'
    assert root.attributes["net.host.ip"] == "10.0.0.8"
    assert root.status == Status(StatusCode.OK)
    # Event attributes keep their JSON types.
    (loaded,) = root.events
    assert loaded == Event(
        loaded.time_ns, "cart loaded", {"items": 3, "vip": False, "total": 99.5, "id": "c-1"}
    )
    assert charge.status == Status(StatusCode.ERROR, "payment declined")
    assert charge.is_error
    assert charge.attributes["peer.service"] == "payments"
    (exception,) = charge.events
    assert exception.name == "exception"
    assert exception.attributes["exception.type"] == "ValueError"
    assert exception.attributes["exception.message"] == "card declined"
    assert received(collector, "json_v2") == 4


def test_the_otel_exporter_v1_protocol(collector: ZipkinCollector) -> None:
    spans = shop_spans()
    # The v1 encoder fails on the exporter's default max_tag_value_length (None): give one.
    exporter = ZipkinExporter(version=Protocol.V1, endpoint=collector.v1, max_tag_value_length=128)
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
    exporter.shutdown()
    stored = {s.name: s for s in collector.trace(trace_id_of(spans))}
    assert len(stored) == 4
    assert stored["charge card"].service_name == "shop"
    assert stored["charge card"].status.code is StatusCode.ERROR
    assert stored["sign request"].parent_span_id == stored["charge card"].span_id
    assert received(collector, "json_v1") == 4


def test_sdk_exporting_span_by_span(collector: ZipkinCollector) -> None:
    """The SDK's own processor calling the exporter as each span ends, one request per span."""
    provider = TracerProvider(resource=SdkResource.create({"service.name": "live"}))
    provider.add_span_processor(SimpleSpanProcessor(ZipkinExporter(endpoint=collector.v2)))
    tracer = provider.get_tracer("live")
    with tracer.start_as_current_span("outer") as outer, tracer.start_as_current_span("inner"):
        pass
    provider.shutdown()
    trace_id = outer.get_span_context().trace_id.to_bytes(16, "big")
    assert sorted(s.name for s in collector.trace(trace_id)) == ["inner", "outer"]


# ---- other bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_proto3_bodies(collector: ZipkinCollector, client: httpx.Client, compressed: bool) -> None:
    body, headers = to_proto(ENVOY_SPANS), dict(PROTOBUF)
    if compressed:
        body, headers = gzip.compress(body), {**PROTOBUF, "content-encoding": "gzip"}
    response = client.post(collector.v2, content=body, headers=headers)
    assert response.status_code == 202
    assert response.content == b""
    assert len(collector.trace(bytes.fromhex(TRACE))) == 3
    assert received(collector, "proto_v2") == 3


def test_gzipped_json_and_missing_content_type(
    collector: ZipkinCollector, client: httpx.Client
) -> None:
    body = gzip.compress(orjson.dumps(ENVOY_SPANS))
    response = client.post(collector.v2, content=body, headers={"content-encoding": "gzip"})
    assert response.status_code == 202  # no Content-Type: JSON, as Zipkin reads it
    response = client.post(
        collector.v2, content=b"[]", headers={"content-type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 202
    assert len(collector.trace(bytes.fromhex(TRACE))) == 3


def test_zipkin_thrift_v1(collector: ZipkinCollector, client: httpx.Client) -> None:
    if importlib.util.find_spec("tracemesh.codecs.zipkin_thrift") is None:
        pytest.skip("tracemesh.codecs.zipkin_thrift is not written yet")
    from tracemesh.codecs import thrift_spec as ts
    from tracemesh.codecs.zipkin_thrift import encode_zipkin_thrift

    host = ts.Endpoint(ipv4=0x0A000001, port=80, service_name="legacy")
    span = ts.ZipkinSpan(
        trace_id=0x5AF7183FB1D4CF5F, name="get", id=7, timestamp=1_000, duration=5,
        annotations=[ts.Annotation(1_000, "sr", host), ts.Annotation(1_005, "ss", host)],
    )  # fmt: skip
    headers = {"content-type": "application/x-thrift"}
    response = client.post(collector.v1, content=encode_zipkin_thrift([span]), headers=headers)
    assert response.status_code == 202, response.text
    (stored,) = collector.trace(bytes(8) + (0x5AF7183FB1D4CF5F).to_bytes(8, "big"))
    assert (stored.name, stored.service_name) == ("get", "legacy")
    assert received(collector, "thrift_v1") == 1
    response = client.post(collector.v1, content=b"\x0c\x00", headers=headers)
    assert response.status_code == 400
    assert response.text.startswith("invalid Zipkin thrift_v1 body")


def test_thrift_without_its_codec_is_unsupported(
    collector: ZipkinCollector, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tracemesh.codecs.zipkin_thrift", None)  # import fails
    headers = {"content-type": "application/x-thrift"}
    response = client.post(collector.v1, content=b"\x0c\x00", headers=headers)
    assert response.status_code == 415
    assert "Zipkin Thrift is not available" in response.text


# ---- shared span ids, end to end ----------------------------------------------------------------


def test_envoy_shared_spans_are_split_by_the_query_api(
    collector: ZipkinCollector, client: httpx.Client
) -> None:
    """The gateway's and the sidecar's reports arrive separately, sharing one span id; the trace
    read back has distinct ids, the server half under the client half, the app's call under the
    server half. Stored spans stay as sent (raw=true)."""
    for doc in ENVOY_SPANS:  # each proxy reports on its own
        response = client.post(collector.v2, content=orjson.dumps([doc]), headers=JSON)
        assert response.status_code == 202
    collector.flush()
    data = client.get(f"{collector.query_url}/api/traces/{TRACE}").json()["data"]
    (trace_doc,) = data
    spans = {(s["operationName"], tag_value(s, "span.kind")): s for s in trace_doc["spans"]}
    gateway = spans[(GATEWAY_SPAN["name"], "client")]
    server = spans[(GATEWAY_SPAN["name"], "server")]
    call = spans[("reviews.default.svc.cluster.local:9080/*", "client")]
    assert len({s["spanID"] for s in trace_doc["spans"]}) == 3
    assert gateway["spanID"] == SHARED
    assert server["spanID"] != SHARED
    assert server["references"] == [{"refType": "CHILD_OF", "traceID": TRACE, "spanID": SHARED}]
    assert call["references"] == [
        {"refType": "CHILD_OF", "traceID": TRACE, "spanID": server["spanID"]}
    ]
    processes = trace_doc["processes"]
    assert processes[server["processID"]]["serviceName"] == "productpage.default"
    assert tag_value(call, "error") is True

    raw = client.get(f"{collector.query_url}/api/traces/{TRACE}?raw=true").json()["data"][0]
    assert sorted(s["spanID"] for s in raw["spans"]) == sorted([SHARED, SHARED, "0020000000000002"])


def tag_value(span: dict[str, Any], key: str) -> Any:
    return next((t["value"] for t in span["tags"] if t["key"] == key), None)


# ---- hostile requests ---------------------------------------------------------------------------


def bomb(size: int) -> bytes:
    return gzip.compress(b"[" + b" " * size + b"]", compresslevel=9)


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "message", "fmt", "reason"),
    [
        ("v2", JSON, b"{not json", 400, "invalid JSON", "json_v2", "malformed"),
        ("v2", JSON, b"", 400, "invalid JSON", "json_v2", "malformed"),
        ("v2", JSON, b'{"traceId": "1"}', 400, "expected a JSON list", "json_v2", "malformed"),
        ("v2", JSON, orjson.dumps([{**GATEWAY_SPAN, "timestamp": "soon"}]), 400,
         "span 0: timestamp must be a non-negative integer", "json_v2", "malformed"),
        ("v2", JSON, orjson.dumps([{**GATEWAY_SPAN, "id": "not-hex"}]), 400,
         "span 0: span id must be 1 to 16 hex digits", "json_v2", "malformed"),
        ("v2", JSON, orjson.dumps([{**GATEWAY_SPAN, "traceId": "0" * 32}]), 400,
         "trace id must not be all zeros", "json_v2", "malformed"),
        ("v2", PROTOBUF, b"\x0a\xff\xff", 400, "invalid Zipkin protobuf", "proto_v2", "malformed"),
        ("v1", JSON, b"[{}]", 400, "span 0: traceId is required", "json_v1", "malformed"),
        ("v2", {"content-type": "text/plain"}, b"[]", 415,
         "unsupported Content-Type 'text/plain'; use application/json or application/x-protobuf",
         "unknown", "unsupported_media_type"),
        ("v1", PROTOBUF, b"[]", 415, "use application/json or application/x-thrift",
         "unknown", "unsupported_media_type"),
        ("v2", {**JSON, "content-encoding": "br"}, b"[]", 415,
         "unsupported Content-Encoding 'br'", "json_v2", "unsupported_encoding"),
        ("v2", {**JSON, "content-encoding": "gzip"}, gzip.compress(b"[]")[:-6], 400,
         "compressed body is truncated", "json_v2", "malformed"),
        ("v2", {**JSON, "content-encoding": "gzip"}, b"not gzip", 400,
         "cannot decompress body", "json_v2", "malformed"),
        ("v2", {**JSON, "content-encoding": "gzip"}, bomb(64 * MiB), 413,
         f"decompressed body exceeds the {LIMIT}-byte limit", "json_v2", "too_large"),
    ],
)  # fmt: skip
def test_bad_requests_get_the_right_status(
    collector: ZipkinCollector,
    client: httpx.Client,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    message: str,
    fmt: str,
    reason: str,
) -> None:
    url = collector.v2 if path == "v2" else collector.v1
    response = client.post(url, content=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert message in response.text
    assert failed(collector, fmt, reason) == 1
    assert_still_serving(collector, client)


def test_a_50_megabyte_body_is_refused_and_the_server_keeps_serving(
    collector: ZipkinCollector, client: httpx.Client
) -> None:
    # Announced by Content-Length: answered before the body is read (a raw socket, because an
    # HTTP client still writing 50 MB may see the early answer as a reset connection).
    with socket.create_connection(("127.0.0.1", collector.zipkin.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 52428800\r\n\r\n[" + b" " * 65536
        )
        head = b""
        while chunk := sock.recv(65536):  # the server closes after answering
            head += chunk
    assert head.startswith(b"HTTP/1.1 413 ")
    assert f"exceeds the {LIMIT}-byte limit".encode() in head

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it streams in
        for _ in range(50):
            yield b" " * MiB

    response = client.post(collector.v2, content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert failed(collector, "json_v2", "too_large") == 2
    assert_still_serving(collector, client)


def test_a_client_that_hangs_up_mid_body_does_not_hurt(
    collector: ZipkinCollector, client: httpx.Client
) -> None:
    with socket.create_connection(("127.0.0.1", collector.zipkin.port)) as sock:
        sock.sendall(
            b"POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n[{"
        )
    deadline = time.monotonic() + 10
    while failed(collector, "json_v2", "disconnected") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert failed(collector, "json_v2", "disconnected") == 1
    assert_still_serving(collector, client)


def test_wrong_method_and_path(collector: ZipkinCollector, client: httpx.Client) -> None:
    assert client.get(collector.v2).status_code == 405
    base = collector.v2.removesuffix("/api/v2/spans")
    assert client.post(base + "/api/v3/spans", content=b"[]").status_code == 404
    assert_still_serving(collector, client)


class Refusing:
    """A sink in the state a real pipeline is in when full, or when stopping."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def submit(self, batch: SpanBatch, receiver: str, fmt: str) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (QueueFullError("queue full"), "queue_full"),
        (PipelineClosedError("stopping"), "shutting_down"),
    ],
)
def test_a_refusing_pipeline_gives_503_with_retry_after(error: Exception, reason: str) -> None:
    metrics = Metrics()
    app = zipkin_http.build_app(Refusing(error), metrics, max_body_bytes=LIMIT)

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://zipkin") as http:
            return await http.post("/api/v2/spans", content=orjson.dumps(ENVOY_SPANS))

    response = asyncio.run(post())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    labels = {"receiver": "zipkin", "format": "json_v2", "reason": reason}
    assert metrics.registry.get_sample_value("tracemesh_receiver_requests_failed_total", labels)


def test_a_real_stopped_pipeline_gives_503(
    collector: ZipkinCollector, client: httpx.Client
) -> None:
    collector.call(collector.pipeline.stop())
    response = client.post(collector.v2, content=orjson.dumps(ENVOY_SPANS), headers=JSON)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


def test_large_bodies_are_decoded_off_the_event_loop(
    collector: ZipkinCollector, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    decode = zipkin_http.decode

    def spy(fmt: str, body: bytes) -> SpanBatch:
        threads.append(threading.current_thread().name)
        return decode(fmt, body)

    monkeypatch.setattr(zipkin_http, "decode", spy)
    big = {**GATEWAY_SPAN, "traceId": "1" * 32, "name": "n" * (2 * MiB)}
    for docs in ([GATEWAY_SPAN], [big]):
        response = client.post(collector.v2, content=orjson.dumps(docs), headers=JSON)
        assert response.status_code == 202
    assert threads[0] == "collector"
    assert threads[1] != "collector"
    assert len(collector.trace(bytes.fromhex("1" * 32))) == 1


def test_every_attribute_is_kept_through_storage(
    collector: ZipkinCollector, client: httpx.Client
) -> None:
    """What storage returns is exactly what the codec decodes: the rows' bytes are the span."""
    from tracemesh.codecs.zipkin_json import spans_from_json_v2

    docs = [{**d, "remoteEndpoint": {"serviceName": "r", "ipv6": "::1", "port": 1}}
            for d in ENVOY_SPANS]  # fmt: skip
    assert client.post(collector.v2, content=orjson.dumps(docs), headers=JSON).status_code == 202
    stored = sorted(collector.trace(bytes.fromhex(TRACE)), key=span_key)
    assert stored == sorted(spans_from_json_v2(orjson.dumps(docs)), key=span_key)
    assert str(ipaddress.ip_address(stored[0].attributes["net.peer.ip"])) == "::1"  # type: ignore[arg-type]


def span_key(span: Span) -> tuple[int, int]:
    return span.start_ns, int(span.kind)


# ---- the real OpenTelemetry Zipkin *proto* exporter, in a venv of its own ----------------------

PROTO_EXPORTER_SCRIPT = """
import sys
from opentelemetry.exporter.zipkin.proto.http import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

memory = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "proto-shop"}))
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("proto.lib", "0.9")
with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER) as root:
    root.set_attributes({"http.status_code": 200, "cached": True, "tags": ["a", "b"]})
    root.add_event("cart read", {"items": 2})
    with tracer.start_as_current_span("redis GET", kind=SpanKind.CLIENT) as call:
        call.set_status(Status(StatusCode.ERROR, "timeout"))
provider.shutdown()
spans = memory.get_finished_spans()
result = ZipkinExporter(endpoint=sys.argv[1], local_node_ipv4="10.1.1.1").export(spans)
assert result is SpanExportResult.SUCCESS, result
print(format(root.get_span_context().trace_id, "032x"))
"""


@pytest.mark.slow
def test_the_real_otel_zipkin_proto_exporter(collector: ZipkinCollector, tmp_path: Any) -> None:
    """opentelemetry-exporter-zipkin-proto-http pins protobuf<4, which cannot sit beside the
    protobuf this project uses, so it gets a venv of its own and runs as a separate process."""
    uv = uv_command()
    if uv is None:
        pytest.skip("SKIPPED LOUDLY: `uv` is not installed, so the proto exporter cannot be set up")
    venv = tmp_path / "venv"
    python = str(venv / "bin" / "python")
    steps = [
        [*uv, "venv", "-q", "--python", sys.executable, str(venv)],
        [*uv, "pip", "install", "-q", "--python", python,
         "opentelemetry-exporter-zipkin-proto-http", "opentelemetry-sdk"],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode:
            pytest.skip(
                f"SKIPPED LOUDLY: cannot install the Zipkin proto exporter ({' '.join(step[:3])}"
                f" exited {done.returncode}): {done.stderr.strip()[-500:]}"
            )
    run = subprocess.run(
        [python, "-c", PROTO_EXPORTER_SCRIPT, collector.v2],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    stored = {s.name: s for s in collector.trace(bytes.fromhex(run.stdout.strip()))}
    root, call = stored["GET /cart"], stored["redis GET"]
    assert (root.kind, call.kind) == (SpanKind.SERVER, SpanKind.CLIENT)
    assert call.parent_span_id == root.span_id
    assert root.service_name == "proto-shop"
    assert root.scope == Scope("proto.lib", "0.9")
    assert root.attributes["http.status_code"] == "200"
    assert root.attributes["net.host.ip"] == "10.1.1.1"
    assert root.events[0].name == "cart read"
    assert root.events[0].attributes == {"items": 2}
    assert call.status == Status(StatusCode.ERROR, "timeout")
    assert received(collector, "proto_v2") == 2
