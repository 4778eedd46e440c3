"""A real collector for receiver tests: memory storage, pipeline and receivers on real loopback
sockets, run on their own event loop in a background thread so that synchronous clients (the
OpenTelemetry SDK exporters, grpc channels, httpx) call it like any remote server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracemesh.collector.pipeline import Pipeline
from tracemesh.collector.receivers import otlp_http
from tracemesh.collector.receivers.otlp_grpc import OtlpGrpcReceiver
from tracemesh.model.span import Span
from tracemesh.runtime.http_server import HttpServer
from tracemesh.runtime.metrics import Metrics
from tracemesh.runtime.tasks import TaskOwner
from tracemesh.storage.memory.config import MemoryConfig
from tracemesh.storage.memory.factory import MemoryStorage

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
MiB = 1 << 20
T = TypeVar("T")


class Collector:
    def __init__(
        self,
        *,
        max_message_bytes: int = 4 * MiB,
        max_body_bytes: int = 32 * MiB,
        **pipeline_options: Any,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="collector", daemon=True)
        self.thread.start()
        self.metrics = Metrics()
        self.storage = MemoryStorage(MemoryConfig(max_traces=0))
        self.pipeline = Pipeline(
            self.storage.writer(), self.metrics, storage_name="memory", **pipeline_options
        )
        self.grpc = OtlpGrpcReceiver(
            self.pipeline, self.metrics, host="127.0.0.1", port=0,
            max_message_bytes=max_message_bytes,
        )  # fmt: skip
        self.app = otlp_http.build_app(self.pipeline, self.metrics, max_body_bytes=max_body_bytes)
        self.tasks = TaskOwner()
        self.http = self.call(self._start())
        self.http_url = f"http://127.0.0.1:{self.http.port}/v1/traces"
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc.port}")
        self.export = self.channel.unary_unary(EXPORT)  # raw bytes in and out, for hostile input

    async def _start(self) -> HttpServer:
        await self.pipeline.start()
        await self.grpc.start()
        http = HttpServer("otlp-http", self.app, "127.0.0.1", 0)
        http.start(self.tasks)
        await http.wait_started()
        return http

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def flush(self) -> None:
        self.call(self.pipeline.flush())

    def trace(self, trace_id: bytes) -> list[Span]:
        """Every stored span of a trace, once everything submitted so far is written."""
        self.flush()
        return self.call(self.storage.reader().get_trace(trace_id))

    def sample(self, name: str, **labels: str) -> float:
        """The sum over every sample of `name` whose labels include `labels`."""
        return sum(
            sample.value
            for family in self.metrics.registry.collect()
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def close(self) -> None:
        self.channel.close()
        self.call(self.grpc.stop(0))
        self.call(self.http.stop())
        self.call(self.pipeline.stop())
        self.call(self.tasks.cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
        assert not self.tasks.failed, self.tasks.failed


def sdk_spans(count: int, service: str = "shop", attr_size: int = 10) -> list[ReadableSpan]:
    """Spans made by the real SDK: a root and `count - 1` children with attributes and an event."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests", "1.0")
    with tracer.start_as_current_span("root"):
        for i in range(count - 1):
            with tracer.start_as_current_span(f"op-{i % 7}") as span:
                span.set_attributes({f"attr.{k}": "x" * attr_size for k in range(10)})
                span.add_event("tick", {"i": i})
    provider.shutdown()
    return list(memory.get_finished_spans())


def trace_id_of(spans: list[ReadableSpan]) -> bytes:
    context = spans[0].context
    assert context is not None
    return int(context.trace_id).to_bytes(16, "big")


def span_ids_of(spans: list[ReadableSpan]) -> list[bytes]:
    return sorted(int(s.context.span_id).to_bytes(8, "big") for s in spans if s.context)


def valid_request(spans: int = 3, trace_id: bytes = b"\x07" * 16) -> ExportTraceServiceRequest:
    """`spans` valid spans of one trace, ids 1..n."""
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    for i in range(spans):
        span = scope_spans.spans.add(name=f"s{i}", start_time_unix_nano=1_000)
        span.end_time_unix_nano = 2_000
        span.trace_id, span.span_id = trace_id, (i + 1).to_bytes(8, "big")
    return request
