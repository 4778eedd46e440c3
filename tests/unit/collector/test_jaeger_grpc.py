"""Jaeger gRPC receiver (port 14250) over real loopback sockets: `PostSpans` from our generated
stub into memory storage through the real pipeline, `Span.process` overriding the batch's,
`GetSamplingStrategy`, hostile requests and backpressure."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped]

from tests.unit.collector.harness import Collector
from tracemesh.codecs.jaeger_proto import request_from_spans, tag
from tracemesh.codecs.proto import jaeger_model_pb2 as pb
from tracemesh.codecs.proto.jaeger_collector_pb2 import PostSpansRequest
from tracemesh.codecs.proto.jaeger_collector_pb2_grpc import CollectorServiceStub
from tracemesh.codecs.proto.jaeger_sampling_pb2 import (
    PROBABILISTIC,
    RATE_LIMITING,
    SamplingStrategyParameters,
)
from tracemesh.codecs.proto.jaeger_sampling_pb2_grpc import SamplingManagerStub
from tracemesh.collector.receivers.jaeger_grpc import JaegerGrpcReceiver
from tracemesh.model.span import Event, Resource, Scope, Span, SpanKind, Status, StatusCode
from tracemesh.sampling.strategies import StrategyStore

MiB = 1 << 20
POST_SPANS = "/jaeger.api_v2.CollectorService/PostSpans"
LABELS = {"receiver": "jaeger_grpc", "format": "proto"}
START_NS = 1_700_000_000_000_000_000


class JaegerCollector:
    """The shared test collector (memory storage + pipeline) with a Jaeger gRPC receiver."""

    def __init__(self, strategies: Path | None = None, **options: object) -> None:
        max_message = int(options.pop("max_message_bytes", 4 * MiB))  # type: ignore[call-overload]
        self.base = Collector(**options)
        self.store = None
        if strategies is not None:
            self.store = StrategyStore(str(strategies), reload_interval=0)
            self.base.call(self.store.start())
        self.receiver = JaegerGrpcReceiver(
            self.base.pipeline, self.base.metrics, host="127.0.0.1", port=0,
            sampling=self.store, max_message_bytes=max_message,
        )  # fmt: skip
        self.base.call(self.receiver.start())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.receiver.port}")
        self.collector = CollectorServiceStub(self.channel)
        self.sampling = SamplingManagerStub(self.channel)
        self.post_raw = self.channel.unary_unary(POST_SPANS)  # bytes in and out

    def close(self) -> None:
        self.channel.close()
        self.base.call(self.receiver.stop(0))
        if self.store is not None:
            self.base.call(self.store.stop())
        self.base.close()


@pytest.fixture
def strategies(tmp_path: Path) -> Path:
    path = tmp_path / "strategies.json"
    document = {
        "default_strategy": {"type": "probabilistic", "param": 0.5},
        "service_strategies": [
            {
                "service": "shop",
                "type": "ratelimiting",
                "param": 12.9,
                "operation_strategies": [
                    {"operation": "GET /", "type": "probabilistic", "param": 0.1}
                ],
            }
        ],
    }
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def jaeger(strategies: Path) -> Iterator[JaegerCollector]:
    c = JaegerCollector(strategies)
    yield c
    c.close()


def model_spans(trace_id: bytes, count: int, resource: Resource) -> list[Span]:
    scope = Scope("lib", "1.0")
    return [
        Span(
            trace_id=trace_id,
            span_id=(i + 1).to_bytes(8, "big"),
            name=f"op-{i}",
            start_ns=START_NS + i,
            end_ns=START_NS + i + 1_000,
            parent_span_id=b"" if i == 0 else (1).to_bytes(8, "big"),
            kind=SpanKind.SERVER,
            attributes={"http.status_code": 200, "note": "<b>hi</b>"},
            events=[Event(START_NS + i + 5, "cache miss", {"key": "k"})],
            status=Status(StatusCode.OK),
            resource=resource,
            scope=scope,
        )
        for i in range(count)
    ]


def test_post_spans_from_the_generated_stub_are_stored(jaeger: JaegerCollector) -> None:
    trace_id = os.urandom(16)
    spans = model_spans(trace_id, 20, Resource({"service.name": "shop", "host.name": "h1"}))
    response = jaeger.collector.PostSpans(request_from_spans(spans), timeout=10)
    assert response.ByteSize() == 0
    stored = sorted(jaeger.base.trace(trace_id), key=lambda s: s.start_ns)
    assert [s.name for s in stored] == [f"op-{i}" for i in range(20)]
    child = stored[3]
    assert child.parent_span_id == (1).to_bytes(8, "big")
    assert child.kind is SpanKind.SERVER
    assert child.status.code is StatusCode.OK
    assert child.attributes == {"http.status_code": 200, "note": "<b>hi</b>"}
    assert [(e.name, e.attributes) for e in child.events] == [("cache miss", {"key": "k"})]
    assert child.resource.attributes == {"service.name": "shop", "host.name": "h1"}
    assert (child.scope.name, child.scope.version) == ("lib", "1.0")
    assert jaeger.base.sample("tracemesh_spans_received_total", **LABELS) == 20


def test_a_span_process_overrides_the_batch_process(jaeger: JaegerCollector) -> None:
    trace_id = os.urandom(16)
    request = PostSpansRequest()
    request.batch.process.service_name = "shop"
    request.batch.process.tags.append(tag("hostname", "box"))
    for i, own in enumerate([None, "billing", None, "billing"]):
        span = request.batch.spans.add(trace_id=trace_id, span_id=(i + 1).to_bytes(8, "big"))
        span.operation_name = f"s{i}"
        span.start_time.FromNanoseconds(START_NS)
        span.duration.FromNanoseconds(10)
        if own:
            span.process.service_name = own
    jaeger.collector.PostSpans(request, timeout=10)
    stored = {s.name: s for s in jaeger.base.trace(trace_id)}
    assert {n: s.service_name for n, s in stored.items()} == {
        "s0": "shop", "s1": "billing", "s2": "shop", "s3": "billing",
    }  # fmt: skip
    assert stored["s0"].resource.attributes == {"service.name": "shop", "host.name": "box"}
    assert stored["s1"].resource.attributes == {"service.name": "billing"}


def test_get_sampling_strategy(jaeger: JaegerCollector) -> None:
    shop = jaeger.sampling.GetSamplingStrategy(SamplingStrategyParameters(serviceName="shop"))
    assert shop.strategyType == RATE_LIMITING
    assert shop.rateLimitingSampling.maxTracesPerSecond == 12
    # a rate-limited service's operations default to the store's default_probability (1.0 in
    # tracemesh), not to default_strategy's param: Jaeger's rule
    assert shop.operationSampling.defaultSamplingProbability == 1.0
    assert [o.operation for o in shop.operationSampling.perOperationStrategies] == ["GET /"]
    other = jaeger.sampling.GetSamplingStrategy(SamplingStrategyParameters(serviceName="x"))
    assert other.strategyType == PROBABILISTIC
    assert other.probabilisticSampling.samplingRate == 0.5
    assert not other.HasField("operationSampling")
    samples = {"endpoint": "grpc", "status": "OK"}
    assert jaeger.base.sample("tracemesh_sampling_requests_total", **samples) == 2


def test_without_a_strategy_source_sampling_is_unimplemented() -> None:
    jaeger = JaegerCollector()
    try:
        with pytest.raises(grpc.RpcError) as raised:
            jaeger.sampling.GetSamplingStrategy(SamplingStrategyParameters(serviceName="x"))
        assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        jaeger.close()


def test_a_malformed_sampling_request_is_invalid_argument(jaeger: JaegerCollector) -> None:
    raw = jaeger.channel.unary_unary("/jaeger.api_v2.SamplingManager/GetSamplingStrategy")
    with pytest.raises(grpc.RpcError) as raised:
        raw(b"\x0a\xff", timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


# ---- hostile input ------------------------------------------------------------------------------


def good_request(trace_id: bytes, count: int = 2) -> bytes:
    spans = model_spans(trace_id, count, Resource({"service.name": "shop"}))
    return request_from_spans(spans).SerializeToString()


def assert_still_serving(jaeger: JaegerCollector) -> None:
    trace_id = os.urandom(16)
    assert jaeger.post_raw(good_request(trace_id), timeout=10) == b""
    assert len(jaeger.base.trace(trace_id)) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff",
        b"\x0a\x10\x0a\x0e\x0a\x03abc",  # a span whose trace_id is 3 bytes
        good_request(b"\x01" * 16)[:-3],
        PostSpansRequest(
            batch=pb.Batch(spans=[pb.Span(trace_id=b"\x01" * 16, span_id=b"\x01" * 9)])
        ).SerializeToString(),
    ],
)
def test_malformed_requests_are_invalid_argument(jaeger: JaegerCollector, body: bytes) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        jaeger.post_raw(body, timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "Jaeger" in raised.value.details() or "must be" in raised.value.details()
    labels = {**LABELS, "reason": "malformed"}
    assert jaeger.base.sample("tracemesh_receiver_requests_failed_total", **labels) == 1
    assert_still_serving(jaeger)


def test_invalid_spans_are_counted_and_the_rest_stored(jaeger: JaegerCollector) -> None:
    trace_id = os.urandom(16)
    request = PostSpansRequest.FromString(good_request(trace_id, 3))
    request.batch.spans[0].span_id = bytes(8)  # zero span id
    request.batch.spans[1].duration.FromNanoseconds(-5)  # negative duration: kept, corrected
    assert jaeger.post_raw(request.SerializeToString(), timeout=10) == b""
    stored = jaeger.base.trace(trace_id)
    assert sorted(s.name for s in stored) == ["op-1", "op-2"]
    corrected = next(s for s in stored if s.name == "op-1")
    assert corrected.end_ns == corrected.start_ns and "before the start" in corrected.warnings[0]
    assert jaeger.base.sample("tracemesh_spans_rejected_total", **LABELS) == 1
    assert jaeger.base.sample("tracemesh_spans_received_total", **LABELS) == 2


def test_a_message_over_the_limit_is_resource_exhausted() -> None:
    jaeger = JaegerCollector(max_message_bytes=64 * 1024)
    try:
        request = PostSpansRequest.FromString(good_request(os.urandom(16)))
        request.batch.spans[0].tags.append(tag("blob", "x" * 100_000))
        with pytest.raises(grpc.RpcError) as raised:
            jaeger.post_raw(request.SerializeToString(), timeout=10)
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert_still_serving(jaeger)
    finally:
        jaeger.close()


def test_a_large_request_is_decoded_and_stored(jaeger: JaegerCollector) -> None:
    trace_id = os.urandom(16)
    request = PostSpansRequest.FromString(good_request(trace_id, 400))
    for span in request.batch.spans:
        span.tags.append(tag("payload", "y" * 4_000))
    body = request.SerializeToString()
    assert len(body) > 1.5 * MiB  # above the size decoded in a worker thread
    assert jaeger.post_raw(body, timeout=30) == b""
    assert len(jaeger.base.trace(trace_id)) == 400


def test_a_full_queue_is_unavailable_with_retry_info(strategies: Path) -> None:
    jaeger = JaegerCollector(strategies, queue_spans=10, flush_interval=60.0)
    try:
        assert jaeger.post_raw(good_request(os.urandom(16), 6), timeout=10) == b""
        with pytest.raises(grpc.RpcError) as raised:
            jaeger.post_raw(good_request(os.urandom(16), 6), timeout=10)
        error = raised.value
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        trailers = dict(error.trailing_metadata())
        retry = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
        assert retry.retry_delay.seconds == 1
        assert jaeger.base.sample("tracemesh_spans_dropped_total", **LABELS) == 6
        jaeger.base.flush()
        assert jaeger.post_raw(good_request(os.urandom(16), 6), timeout=10) == b""
    finally:
        jaeger.close()


def test_a_stopping_pipeline_answers_unavailable(jaeger: JaegerCollector) -> None:
    jaeger.base.call(jaeger.base.pipeline.stop())
    with pytest.raises(grpc.RpcError) as raised:
        jaeger.post_raw(good_request(os.urandom(16)), timeout=10)
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
