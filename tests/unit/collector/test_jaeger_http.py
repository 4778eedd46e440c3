"""Jaeger Thrift over HTTP (`POST /api/traces`, `GET /api/sampling`) on a real uvicorn socket:
Batches written by our encoder and by jaeger-client's generated classes, stored and read back;
content types, gzip, size limits, a full pipeline and hostile bodies, each answered with the
status Jaeger clients expect while the server keeps serving."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from jaeger_client.thrift_gen.jaeger import ttypes as theirs
from thrift.protocol.TBinaryProtocol import TBinaryProtocolFactory
from thrift.protocol.TCompactProtocol import TCompactProtocolFactory
from thrift.TSerialization import serialize

from tests.unit.collector.harness import Collector, MiB
from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.jaeger_thrift import batch_to_thrift
from tracemesh.collector.receivers import jaeger_http
from tracemesh.model.span import (
    REF_TYPE_KEY,
    Event,
    Link,
    Resource,
    Span,
    SpanKind,
    Status,
    StatusCode,
)
from tracemesh.runtime.http_server import HttpServer
from tracemesh.sampling.strategies import StrategyStore

T0 = 1_700_000_000_000_000  # µs
THRIFT = {"content-type": "application/x-thrift"}
FAILED = "tracemesh_receiver_requests_failed_total"


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


@pytest.fixture
def serve(collector: Collector) -> Iterator[Callable[..., str]]:
    servers: list[HttpServer] = []

    def serve(**options: object) -> str:
        options = {"max_body_bytes": MiB, **options}
        app = jaeger_http.build_app(collector.pipeline, collector.metrics, **options)  # type: ignore[arg-type]
        server = HttpServer("jaeger-http", app, "127.0.0.1", 0)

        async def start() -> None:
            server.start(collector.tasks)
            await server.wait_started()

        collector.call(start())
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield serve
    for server in servers:
        collector.call(server.stop())


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


def model_spans(trace_id: bytes, count: int = 3) -> list[Span]:
    resource = Resource({"service.name": "cart", "host.name": "h1", "pod": 7})
    spans = []
    start = T0 * 1000
    for i in range(count):
        span = Span(trace_id, (i + 1).to_bytes(8, "big"), f"op-{i}", start, start + 2_000_000,
                    parent_span_id=i.to_bytes(8, "big") if i else b"", kind=SpanKind.SERVER,
                    attributes={"s": "<b>", "n": -i, "f": 0.5, "ok": True, "raw": b"\x00"},
                    events=[Event(T0 * 1000 + 1000, "tick", {"i": i})], flags=1,
                    status=Status(StatusCode.ERROR, "bad") if i == 2 else Status(),
                    resource=resource)  # fmt: skip
        spans.append(span)
    follows = {REF_TYPE_KEY: "follows_from"}
    spans[-1].links = [Link(b"\x09" * 16, b"\x09" * 8, attributes=follows)]
    return spans


def test_batch_is_stored_and_reads_back_equal(
    collector: Collector, serve: Callable[..., str], client: httpx.Client
) -> None:
    url = serve() + "/api/traces"
    spans = model_spans(b"\x11" * 16)
    response = client.post(url, content=batch_to_thrift(spans), headers=THRIFT)
    assert (response.status_code, response.content) == (202, b"")
    assert sorted(collector.trace(b"\x11" * 16), key=lambda s: s.span_id) == spans
    labels = {"receiver": "jaeger_http", "format": "thrift_binary"}
    assert collector.sample("tracemesh_spans_received_total", **labels) == 3


def test_batch_from_jaeger_clients_generated_classes(
    collector: Collector, serve: Callable[..., str], client: httpx.Client
) -> None:
    """jaeger-client's Thrift classes, as its Java/Go/Node HTTP senders would fill them."""
    batch = theirs.Batch(
        process=theirs.Process("inventory", [theirs.Tag("hostname", theirs.TagType.STRING,
                                                        vStr="node-1")]),
        spans=[theirs.Span(
            traceIdLow=-1, traceIdHigh=0, spanId=10, parentSpanId=0, operationName="reserve",
            flags=1, startTime=T0, duration=250,
            tags=[theirs.Tag("span.kind", theirs.TagType.STRING, vStr="consumer"),
                  theirs.Tag("retries", theirs.TagType.LONG, vLong=2)],
            logs=[theirs.Log(T0 + 10, [theirs.Tag("event", theirs.TagType.STRING, vStr="ack")])],
            references=[theirs.SpanRef(theirs.SpanRefType.FOLLOWS_FROM, -1, 0, 9)],
        )],
    )  # fmt: skip
    data = serialize(batch, TBinaryProtocolFactory())
    headers = {"content-type": "application/vnd.apache.thrift.binary"}
    assert client.post(serve() + "/api/traces", content=data, headers=headers).status_code == 202
    trace_id = bytes(8) + b"\xff" * 8
    (span,) = collector.trace(trace_id)
    assert (span.name, span.kind, span.attributes) == ("reserve", SpanKind.CONSUMER, {"retries": 2})
    assert span.parent_span_id == (9).to_bytes(8, "big")  # a FOLLOWS_FROM is the parent if alone
    assert span.events == [Event((T0 + 10) * 1000, "ack")]
    assert span.resource.attributes == {"service.name": "inventory", "host.name": "node-1"}
    assert span.duration_ns == 250_000


@pytest.mark.parametrize(
    "ctype",
    ["application/x-thrift", "application/vnd.apache.thrift.binary",
     "Application/X-Thrift; charset=binary"],
)  # fmt: skip
def test_content_types(
    collector: Collector, serve: Callable[..., str], client: httpx.Client, ctype: str
) -> None:
    body = batch_to_thrift(model_spans(b"\x12" * 16, 1))
    response = client.post(serve() + "/api/traces", content=body, headers={"content-type": ctype})
    assert response.status_code == 202
    assert len(collector.trace(b"\x12" * 16)) == 1


def test_gzip(collector: Collector, serve: Callable[..., str], client: httpx.Client) -> None:
    body = gzip.compress(batch_to_thrift(model_spans(b"\x13" * 16)))
    headers = {**THRIFT, "content-encoding": "gzip"}
    assert client.post(serve() + "/api/traces", content=body, headers=headers).status_code == 202
    assert len(collector.trace(b"\x13" * 16)) == 3


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        ({"content-type": "application/json"}, b"{}", 400,
         "unsupported Content-Type 'application/json'; use application/x-thrift"),
        ({}, b"x", 400, "unsupported Content-Type 'none'"),
        (THRIFT, b"\x00junk", 400, "Unable to process request body: the Batch has no process"),
        (THRIFT, b"\x0b\x00\x01\xff\xff\xff\xffjunk", 400,
         "Unable to process request body: bad Thrift binary Batch"),
        (THRIFT, b"", 400, "Unable to process request body"),
        (THRIFT, batch_to_thrift(model_spans(b"\x14" * 16))[:-20], 400, "truncated"),
        (THRIFT, batch_to_thrift(model_spans(b"\x14" * 16), "compact"), 400,
         "Unable to process request body"),
        (THRIFT, b"\x0f\x00\x02\x0c\x7f\xff\xff\xff", 400, "size exceeded"),  # 2^31 spans claimed
        ({**THRIFT, "content-encoding": "br"}, b"x", 400, "unsupported Content-Encoding 'br'"),
        ({**THRIFT, "content-encoding": "gzip"}, b"not gzip", 400, "cannot decompress"),
        (THRIFT, b"\x00" * (MiB + 1), 413, "exceeds the 1048576-byte limit"),
        ({**THRIFT, "content-encoding": "gzip"}, gzip.compress(b"\x00" * (2 * MiB)), 413,
         "decompressed body exceeds"),
    ],
)  # fmt: skip
def test_bad_requests_say_what_is_wrong_and_the_server_keeps_serving(
    collector: Collector,
    serve: Callable[..., str],
    client: httpx.Client,
    headers: dict[str, str],
    body: bytes,
    status: int,
    message: str,
) -> None:
    url = serve() + "/api/traces"
    response = client.post(url, content=body, headers=headers)
    assert response.status_code == status
    assert message in response.text
    assert sum(s.value for s in collector.metrics.requests_failed.collect()[0].samples
               if s.name == FAILED) == 1  # fmt: skip
    good = batch_to_thrift(model_spans(b"\x15" * 16, 1))
    assert client.post(url, content=good, headers=THRIFT).status_code == 202
    assert len(collector.trace(b"\x15" * 16)) == 1


def test_unstorable_spans_are_counted_and_the_rest_stored(
    collector: Collector, serve: Callable[..., str], client: httpx.Client
) -> None:
    batch = ts.Batch(ts.Process("svc"), [
        ts.Span(traceIdLow=5, spanId=1, operationName="ok", startTime=T0, duration=1),
        ts.Span(traceIdLow=5, spanId=2, operationName="no start", startTime=0, duration=1),
    ])  # fmt: skip
    body = ts.encode_struct(batch, "binary")
    assert client.post(serve() + "/api/traces", content=body, headers=THRIFT).status_code == 202
    assert [s.name for s in collector.trace((5).to_bytes(16, "big"))] == ["ok"]
    labels = {"receiver": "jaeger_http", "format": "thrift_binary"}
    assert collector.sample("tracemesh_spans_rejected_total", **labels) == 1


def test_full_or_stopped_pipeline_answers_503(client: httpx.Client) -> None:
    collector = Collector(queue_spans=2, flush_interval=30)  # the first batch lingers
    try:
        app = jaeger_http.build_app(collector.pipeline, collector.metrics, max_body_bytes=MiB)
        server = HttpServer("jaeger-http", app, "127.0.0.1", 0)

        async def start() -> None:
            server.start(collector.tasks)
            await server.wait_started()

        collector.call(start())
        url = f"http://127.0.0.1:{server.port}/api/traces"
        body = batch_to_thrift(model_spans(b"\x16" * 16, 2))
        assert client.post(url, content=body, headers=THRIFT).status_code == 202
        full = client.post(url, content=body, headers=THRIFT)
        assert (full.status_code, full.headers["retry-after"]) == (503, "1")
        assert "queue full" in full.text
        collector.call(collector.pipeline.stop())
        closed = client.post(url, content=body, headers=THRIFT)
        assert closed.status_code == 503 and "not running" in closed.text
        collector.call(server.stop())
    finally:
        collector.close()


def test_other_methods_and_paths(serve: Callable[..., str], client: httpx.Client) -> None:
    base = serve()
    assert client.get(base + "/api/traces").status_code == 405
    assert client.post(base + "/api/spans", content=b"", headers=THRIFT).status_code == 404


def test_sampling_hook(
    collector: Collector, serve: Callable[..., str], client: httpx.Client, tmp_path: Path
) -> None:
    assert client.get(serve() + "/api/sampling?service=a").status_code == 404  # no source given
    strategies = tmp_path / "strategies.json"
    strategies.write_text(json.dumps({
        "default_strategy": {"type": "probabilistic", "param": 0.25},
        "service_strategies": [{"service": "cart", "type": "ratelimiting", "param": 7}],
    }))  # fmt: skip
    store = StrategyStore(str(strategies), reload_interval=0)
    collector.call(store.start())
    try:
        base = serve(sampling=store)
        answer = client.get(base + "/api/sampling", params={"service": "cart"})
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == store.strategy_json("cart")
        assert answer.json()["strategyType"] == "RATE_LIMITING"
        other = client.get(base + "/api/sampling?service=other").json()
        assert other["probabilisticSampling"] == {"samplingRate": 0.25}
        for query in ("", "?service=a&service=b"):
            refused = client.get(base + "/api/sampling" + query)
            assert (refused.status_code, refused.text) == (400, jaeger_http.SERVICE_ONCE)
    finally:
        collector.call(store.stop())


def test_compact_protocol_is_not_what_this_port_takes(
    serve: Callable[..., str], client: httpx.Client
) -> None:
    batch = theirs.Batch(process=theirs.Process("s", []), spans=[])
    data = serialize(batch, TCompactProtocolFactory())
    response = client.post(serve() + "/api/traces", content=data, headers=THRIFT)
    assert response.status_code == 400
