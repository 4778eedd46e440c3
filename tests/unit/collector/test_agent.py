"""The agent's forwarder against a real tracemesh collector (OTLP/gRPC receiver, pipeline, memory
storage) on loopback: delivery, a collector outage and restart on the same port with nothing lost,
the buffer bound, and collectors that refuse spans for good."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.unit.collector.harness import Collector
from tracemesh.codecs.otlp_proto import batch_from_spans, span_to_pb, spans_from_request
from tracemesh.collector.agent import Forwarder, encode_request
from tracemesh.collector.pipeline import PipelineClosedError, QueueFullError
from tracemesh.collector.receivers.jaeger_grpc import JaegerGrpcReceiver
from tracemesh.collector.receivers.otlp_grpc import OtlpGrpcReceiver
from tracemesh.model.batch import ResourceGroup, SpanBatch, SpanRow
from tracemesh.model.span import Resource, Scope, Span, SpanKind
from tracemesh.runtime.metrics import Metrics

T = TypeVar("T")
START_NS = 1_700_000_000_000_000_000


class Agent:
    """A forwarder on its own event loop in a background thread, as the agent role runs it."""

    def __init__(self, endpoint: str, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.metrics = Metrics()
        options = {"backoff": 0.05, "backoff_max": 0.3, "flush_interval": 0.01, **options}
        self.forwarder = Forwarder(self.metrics, collector=endpoint, **options)
        self.call(self.forwarder.start())

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, batch: SpanBatch) -> None:
        async def submit() -> None:
            self.forwarder.submit(batch, "jaeger_udp", "thrift_compact")

        self.call(submit())

    def flush(self, timeout: float = 30) -> None:
        self.call(self.forwarder.flush(), timeout)

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def close(self, flush_timeout: float = 5.0) -> None:
        self.call(self.forwarder.stop(flush_timeout))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def make_spans(trace_id: bytes, count: int, services: int = 3) -> list[Span]:
    resources = [Resource({"service.name": f"svc-{i}", "pod": f"p{i}"}) for i in range(services)]
    scopes = [Scope("lib", "1.0", {"s": 1}, 2, "https://schema/1"), Scope("other")]
    return [
        Span(
            trace_id=trace_id,
            span_id=os.urandom(7) + bytes([1]),
            name=f"op-{i}",
            start_ns=START_NS + i,
            end_ns=START_NS + i + 500,
            kind=SpanKind.CLIENT,
            attributes={"i": i, "pad": "x" * 50},
            resource=resources[i % services],
            scope=scopes[i % 2],
        )
        for i in range(count)
    ]


def batches(spans: list[Span], per_batch: int) -> list[SpanBatch]:
    return [batch_from_spans(spans[i : i + per_batch]) for i in range(0, len(spans), per_batch)]


def restart_receiver(collector: Collector, port: int) -> None:
    """Bring the collector's OTLP/gRPC receiver back on the same port."""
    receiver = OtlpGrpcReceiver(collector.pipeline, collector.metrics, host="127.0.0.1", port=port)
    collector.call(receiver.start())
    collector.grpc = receiver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_span_arrives_with_its_resource_and_scope(collector: Collector) -> None:
    agent = Agent(f"127.0.0.1:{collector.grpc.port}", batch_spans=300)
    try:
        trace_id = os.urandom(16)
        spans = make_spans(trace_id, 3_000)
        for batch in batches(spans, 70):
            agent.submit(batch)
        agent.flush()
        stored = {s.span_id: s for s in collector.trace(trace_id)}
        assert len(stored) == 3_000
        for span in spans[:50]:
            got = stored[span.span_id]
            assert (got.name, got.attributes, got.kind) == (span.name, span.attributes, span.kind)
            assert got.resource.attributes == span.resource.attributes
            assert (got.scope.name, got.scope.attributes) == (
                span.scope.name,
                span.scope.attributes,
            )
            assert got.scope.schema_url == span.scope.schema_url
        assert agent.sample("tracemesh_forwarder_spans_sent_total") == 3_000
        labels = {"receiver": "jaeger_udp", "format": "thrift_compact"}
        assert agent.sample("tracemesh_spans_received_total", **labels) == 3_000
        requests = collector.sample(
            "tracemesh_spans_received_total", receiver="otlp_grpc", format="proto"
        )
        assert requests == 3_000
    finally:
        agent.close()


def test_a_collector_outage_loses_nothing(collector: Collector) -> None:
    port = collector.grpc.port
    agent = Agent(f"127.0.0.1:{port}", batch_spans=200)
    try:
        trace_id = os.urandom(16)
        before = make_spans(trace_id, 100)
        agent.submit(batch_from_spans(before))
        agent.flush()

        collector.call(collector.grpc.stop(0))
        during = make_spans(trace_id, 1_000)
        for batch in batches(during, 100):
            agent.submit(batch)
        time.sleep(0.5)  # retries run against the closed port
        assert agent.forwarder.held_spans == 1_000
        assert not agent.forwarder.healthy
        assert agent.sample("tracemesh_forwarder_send_failures_total", code="UNAVAILABLE") >= 1

        restart_receiver(collector, port)
        agent.flush()
        stored = {s.span_id for s in collector.trace(trace_id)}
        assert stored == {s.span_id for s in before + during}
        assert agent.forwarder.spans_lost == 0
        assert agent.forwarder.healthy
        assert agent.sample("tracemesh_spans_lost_total", storage="collector") == 0
    finally:
        agent.close()


def test_the_buffer_bound_is_enforced_while_the_collector_is_down() -> None:
    port = free_port()
    agent = Agent(f"127.0.0.1:{port}", queue_spans=100)
    late: Collector | None = None
    try:
        trace_id = os.urandom(16)
        spans = make_spans(trace_id, 101)
        agent.submit(batch_from_spans(spans[:60]))
        agent.submit(batch_from_spans(spans[60:100]))
        with pytest.raises(QueueFullError, match="agent buffer full"):
            agent.submit(batch_from_spans(spans[100:]))
        labels = {"receiver": "jaeger_udp", "format": "thrift_compact"}
        assert agent.sample("tracemesh_spans_dropped_total", **labels) == 1
        assert agent.sample("tracemesh_forwarder_buffer_length") == 100
        assert agent.sample("tracemesh_forwarder_buffer_capacity") == 100

        late = Collector()  # the collector comes up, late, on the port the agent was told
        restart_receiver(late, port)
        agent.flush()
        assert len(late.trace(trace_id)) == 100
        agent.submit(batch_from_spans(spans[100:]))  # room again
        agent.flush()
        assert len(late.trace(trace_id)) == 101
    finally:
        agent.close()
        if late is not None:
            late.close()


def test_a_batch_larger_than_the_buffer_is_taken_into_an_empty_one(collector: Collector) -> None:
    agent = Agent(f"127.0.0.1:{collector.grpc.port}", queue_spans=10, batch_spans=4)
    try:
        trace_id = os.urandom(16)
        agent.submit(batch_from_spans(make_spans(trace_id, 25)))
        agent.flush()
        assert len(collector.trace(trace_id)) == 25
    finally:
        agent.close()


def test_stop_counts_what_it_could_not_deliver_and_refuses_more() -> None:
    agent = Agent(f"127.0.0.1:{free_port()}")
    agent.submit(batch_from_spans(make_spans(os.urandom(16), 30)))
    agent.call(agent.forwarder.stop(0.3))
    assert agent.forwarder.spans_lost == 30
    assert agent.sample("tracemesh_spans_lost_total", storage="collector") == 30
    with pytest.raises(PipelineClosedError):
        agent.submit(batch_from_spans(make_spans(os.urandom(16), 1)))
    agent.close()


def test_spans_the_collector_rejects_are_counted_as_lost(collector: Collector) -> None:
    agent = Agent(f"127.0.0.1:{collector.grpc.port}")
    try:
        trace_id = os.urandom(16)
        good = make_spans(trace_id, 3)
        bad = span_to_pb(good[0])
        bad.trace_id = bytes(16)  # the collector refuses it in a partial success
        rows = [*batch_from_spans(good).groups[0].rows]
        rows.append(rows[0]._replace(raw=bad.SerializeToString()))
        agent.submit(SpanBatch([ResourceGroup(Resource({"service.name": "x"}), Scope(), rows)]))
        agent.flush()
        assert agent.forwarder.spans_lost == 1
        assert agent.sample("tracemesh_forwarder_spans_sent_total") == 1
    finally:
        agent.close()


def test_a_collector_without_otlp_refuses_for_good_and_the_agent_moves_on(
    collector: Collector,
) -> None:
    """An endpoint that answers UNIMPLEMENTED (a Jaeger gRPC port) must not stall the buffer."""
    jaeger = JaegerGrpcReceiver(collector.pipeline, collector.metrics, host="127.0.0.1", port=0)
    collector.call(jaeger.start())
    agent = Agent(f"127.0.0.1:{jaeger.port}")
    try:
        agent.submit(batch_from_spans(make_spans(os.urandom(16), 5)))
        agent.flush(timeout=10)
        assert agent.forwarder.spans_lost == 5
        assert agent.sample("tracemesh_forwarder_send_failures_total", code="UNIMPLEMENTED") == 1
    finally:
        agent.close()
        collector.call(jaeger.stop(0))


# ---- request encoding ---------------------------------------------------------------------------


def test_encoded_requests_are_the_otlp_request_of_the_same_spans() -> None:
    spans = make_spans(os.urandom(16), 12)
    spans[0].resource.schema_url = "https://schema/r"
    groups = batch_from_spans(spans).groups
    request = ExportTraceServiceRequest.FromString(encode_request(groups))
    decoded = spans_from_request(request)
    assert sorted(s.span_id for s in decoded) == sorted(s.span_id for s in spans)
    by_id = {s.span_id: s for s in decoded}
    for span in spans:
        got = by_id[span.span_id]
        assert got.resource == span.resource
        assert got.scope == span.scope
        assert got.attributes == span.attributes
    raw = [s.SerializeToString() for rs in request.resource_spans for ss in rs.scope_spans
           for s in ss.spans]  # fmt: skip
    assert raw == [row.raw for g in groups for row in g.rows]


def test_requests_are_cut_by_span_count_and_bytes() -> None:
    metrics = Metrics()

    async def scenario() -> list[list[SpanRow]]:
        forwarder = Forwarder(
            metrics, collector="127.0.0.1:1", batch_spans=7, max_request_bytes=2_000
        )
        forwarder._sender = asyncio.get_running_loop().create_future()  # type: ignore[assignment]
        forwarder.submit(batch_from_spans(make_spans(os.urandom(16), 30)), "r", "f")
        taken = []
        while forwarder._queued:
            taken.append([row for g in forwarder._take() for row in g.rows])
        return taken

    taken = asyncio.run(scenario())
    assert sum(len(t) for t in taken) == 30
    assert all(len(t) <= 7 for t in taken)
    assert all(sum(len(r.raw) for r in t) <= 2_000 for t in taken)
