"""The span reporter against real collectors on loopback: an OTLP/HTTP and Zipkin endpoint (a
uvicorn app that answers as told) and an OTLP/gRPC server, up, refusing, flaky and absent."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.integration.mesh.harness import run, wait_for
from tests.integration.mesh.upstreams import uvicorn_upstream
from tracemesh.mesh.reporter import Reporter
from tracemesh.mesh.tracing import SCOPE
from tracemesh.model.span import Resource, Span, SpanKind

RESOURCE = Resource({"service.name": "hello.default"})  # one object, as a proxy's spans share


def span(n: int) -> Span:
    return Span(
        trace_id=bytes(15) + bytes([1]), span_id=bytes(7) + bytes([n + 1]), name=f"op-{n}",
        start_ns=1_700_000_000_000_000_000, end_ns=1_700_000_000_001_000_000,
        kind=SpanKind.CLIENT, attributes={"component": "proxy"}, resource=RESOURCE, scope=SCOPE,
    )  # fmt: skip


@dataclass
class Collector:
    """Answers each POST with the next of `statuses` (then 200), keeping what it was sent."""

    statuses: list[int] = field(default_factory=list)
    bodies: list[tuple[str, str, bytes]] = field(default_factory=list)

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        kind = dict(scope["headers"]).get(b"content-type", b"").decode()
        self.bodies.append((scope["path"], kind, body))
        status = self.statuses.pop(0) if self.statuses else 200
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", b"0")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})


@asynccontextmanager
async def grpc_collector(requests: list[bytes], rejected: int = 0) -> AsyncIterator[int]:
    async def export(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        requests.append(request)
        response = ExportTraceServiceResponse()
        response.partial_success.rejected_spans = rejected
        return bytes(response.SerializeToString())

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(export)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler})]
    )  # fmt: skip
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_otlp_http_batches_and_protobuf() -> None:
    collector = Collector()

    async def main() -> Reporter:
        async with uvicorn_upstream(collector) as port:
            reporter = Reporter(f"127.0.0.1:{port}", "http", batch_spans=4, flush_interval=0.05)
            await reporter.start()
            for n in range(10):
                reporter.report(span(n))
            assert await reporter.flush(5.0)
            await reporter.stop()
            return reporter

    reporter = run(main())
    assert reporter.sent == 10 and reporter.dropped == {"buffer_full": 0, "rejected": 0,
                                                        "shutdown": 0}  # fmt: skip
    names = []
    for path, kind, body in collector.bodies:
        assert (path, kind) == ("/v1/traces", "application/x-protobuf")
        request = ExportTraceServiceRequest.FromString(body)
        (rs,) = request.resource_spans
        assert rs.resource.attributes[0].value.string_value == "hello.default"
        names += [s.name for s in rs.scope_spans[0].spans]
    assert names == [f"op-{n}" for n in range(10)]
    assert max(len(ExportTraceServiceRequest.FromString(b).resource_spans[0].scope_spans[0].spans)
               for _, _, b in collector.bodies) == 4  # fmt: skip


def test_zipkin_json() -> None:
    collector = Collector(statuses=[202])

    async def main() -> None:
        async with uvicorn_upstream(collector) as port:
            reporter = Reporter(f"http://127.0.0.1:{port}/api/v2/spans", "zipkin",
                                flush_interval=0.05)  # fmt: skip
            await reporter.start()
            reporter.report(span(0))
            assert await reporter.flush(5.0)
            await reporter.stop()

    run(main())
    ((path, kind, body),) = collector.bodies
    assert (path, kind) == ("/api/v2/spans", "application/json")
    (doc,) = json.loads(body)
    assert (doc["name"], doc["kind"], doc["localEndpoint"]["serviceName"]) == (
        "op-0", "CLIENT", "hello.default",
    )  # fmt: skip


def test_a_refused_batch_is_dropped_and_a_failed_one_retried() -> None:
    collector = Collector(statuses=[400, 503, 503])

    async def main() -> Reporter:
        async with uvicorn_upstream(collector) as port:
            reporter = Reporter(f"127.0.0.1:{port}", "http", batch_spans=2, flush_interval=0.02,
                                backoff=0.01)  # fmt: skip
            await reporter.start()
            reporter.report(span(0))
            reporter.report(span(1))
            await wait_for(lambda: len(collector.bodies) == 1)
            reporter.report(span(2))
            assert await reporter.flush(5.0)
            await reporter.stop()
            return reporter

    reporter = run(main())
    assert reporter.dropped["rejected"] == 2  # the 400
    assert reporter.sent == 1 and reporter.failures == 2  # two 503s, then sent
    assert len(collector.bodies) == 4


def test_otlp_grpc_and_partial_success() -> None:
    requests: list[bytes] = []

    async def main() -> Reporter:
        async with grpc_collector(requests, rejected=1) as port:
            reporter = Reporter(f"127.0.0.1:{port}", flush_interval=0.02)
            await reporter.start()
            for n in range(3):
                reporter.report(span(n))
            assert await reporter.flush(5.0)
            await reporter.stop()
            return reporter

    reporter = run(main())
    assert (reporter.sent, reporter.dropped["rejected"]) == (2, 1)
    spans = ExportTraceServiceRequest.FromString(requests[0]).resource_spans[0].scope_spans[0]
    assert [s.name for s in spans.spans] == ["op-0", "op-1", "op-2"]


def test_collector_away_the_buffer_is_bounded_and_report_never_waits() -> None:
    async def main() -> Reporter:
        reporter = Reporter(f"127.0.0.1:{closed_port()}", queue_spans=3, flush_interval=0.01,
                            backoff=0.01, timeout=0.5)  # fmt: skip
        await reporter.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n in range(10):
            reporter.report(span(n))
        assert loop.time() - started < 0.05
        await wait_for(lambda: reporter.failures >= 2)
        assert not reporter.reachable and reporter.held == 3
        await reporter.stop(timeout=0.1)
        return reporter

    reporter = run(main())
    assert reporter.dropped == {"buffer_full": 7, "rejected": 0, "shutdown": 3}
    assert reporter.sent == 0


def test_collector_coming_back_gets_the_held_spans() -> None:
    requests: list[bytes] = []

    async def main() -> Reporter:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        reporter = Reporter(f"127.0.0.1:{port}", flush_interval=0.01, backoff=0.05,
                            backoff_max=0.1, timeout=0.5)  # fmt: skip
        await reporter.start()
        reporter.report(span(0))
        await wait_for(lambda: reporter.failures >= 1)
        server = grpc.aio.server()

        async def export(request: bytes, context: Any) -> bytes:
            requests.append(request)
            return b""

        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(
                "opentelemetry.proto.collector.trace.v1.TraceService",
                {"Export": grpc.unary_unary_rpc_method_handler(export)})]
        )  # fmt: skip
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        try:
            assert await reporter.flush(10.0)
        finally:
            await reporter.stop()
            await server.stop(None)
        return reporter

    reporter = run(main())
    assert reporter.sent == 1 and reporter.reachable and len(requests) == 1
