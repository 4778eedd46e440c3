"""Quick OTLP/gRPC ingest benchmark: receiver + pipeline + memory storage in this process, load
from a separate process, no CLI, query API or HTTP servers in the way.

The server is pinned to CPU 0 and the load generator to CPU 1 (when there are two), so the figure
is one core's. Each request carries 1000 spans (100 traces x 10 spans), each span 10 attributes
and 1 event. Reported: spans/s acknowledged (client wall time), spans/s written to storage (until
the pipeline is flushed), and spans per server CPU-second (meaningful even when the load
generator, not the server, is the bottleneck).
Usage: python bench/ingest_grpc_quick.py [--spans 500000] [--in-flight 8] [--no-uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import sys
import time
from multiprocessing.connection import Connection

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from tracemesh.collector.pipeline import Pipeline
from tracemesh.collector.receivers.otlp_grpc import OtlpGrpcReceiver
from tracemesh.runtime.metrics import Metrics
from tracemesh.storage.memory.config import MemoryConfig
from tracemesh.storage.memory.factory import MemoryStorage

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_REQUEST = 1000
DISTINCT_REQUESTS = 50


def pin(cpu: int) -> None:
    count = os.cpu_count() or 1
    if count > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu % count})


def attr(key: str, value: str | int | bool | float) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value
    return kv


def make_request(seed: int) -> bytes:
    rnd = random.Random(seed)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(
        [attr("service.name", f"service-{seed % 10}"), attr("host.name", f"host-{seed % 7}")]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "bench"
    now = time.time_ns()
    for t in range(SPANS_PER_REQUEST // 10):
        trace_id = rnd.randbytes(16)
        root = b""
        for i in range(10):
            span = ss.spans.add(name=f"op-{rnd.randrange(50)}", kind=2 if i == 0 else 3)
            span.trace_id, span.span_id, span.parent_span_id = trace_id, rnd.randbytes(8), root
            root = root or span.span_id
            span.start_time_unix_nano = now + t * 1_000_000 + i * 1000
            span.end_time_unix_nano = span.start_time_unix_nano + rnd.randrange(1000, 5_000_000)
            span.attributes.extend(
                [
                    attr("http.method", "GET"),
                    attr("http.status_code", rnd.choice([200, 200, 404, 500])),
                    attr("http.url", f"http://svc/api/v1/items/{rnd.randrange(10**6)}"),
                    attr("http.route", "/api/v1/items/{id}"),
                    attr("net.peer.name", "10.0.0.12"),
                    attr("net.peer.port", 8080),
                    attr("user.id", f"user-{rnd.randrange(10**4)}"),
                    attr("retry", False),
                    attr("payload.size", rnd.random() * 1e4),
                    attr("component", "http"),
                ]
            )
            event = span.events.add(time_unix_nano=span.start_time_unix_nano + 500, name="lookup")
            event.attributes.append(attr("cache.hit", rnd.random() < 0.8))
    return request.SerializeToString()


def load(port: int, requests: int, in_flight: int, out: Connection) -> None:
    """The load generator process: `requests` Export calls, `in_flight` outstanding at a time."""
    pin(1)
    payloads = [make_request(seed) for seed in range(DISTINCT_REQUESTS)]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary(EXPORT)
    call(payloads[0], timeout=10)  # connect and warm up before the clock starts
    out.send("ready")
    out.recv()
    started = time.perf_counter()
    pending: list[grpc.Future] = []
    for i in range(requests):
        pending.append(call.future(payloads[i % DISTINCT_REQUESTS], timeout=60))
        if len(pending) >= in_flight:
            pending.pop(0).result()
    for future in pending:
        future.result()
    out.send(time.perf_counter() - started)
    channel.close()


async def serve(requests: int, in_flight: int) -> None:
    pin(0)
    metrics = Metrics()
    storage = MemoryStorage(MemoryConfig(max_traces=0))
    pipeline = Pipeline(storage.writer(), metrics, storage_name="memory")
    receiver = OtlpGrpcReceiver(pipeline, metrics, host="127.0.0.1", port=0)
    await pipeline.start()
    await receiver.start()
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    loader = multiprocessing.get_context("spawn").Process(
        target=load, args=(receiver.port, requests, in_flight, theirs)
    )
    loader.start()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, ours.recv)  # "ready"
    await pipeline.flush()
    written_before = storage.stats()[1]
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    ours.send("go")
    send_seconds: float = await loop.run_in_executor(None, ours.recv)
    await pipeline.flush()
    wall, cpu = time.perf_counter() - wall_before, time.process_time() - cpu_before
    spans = storage.stats()[1] - written_before
    loader.join()
    await receiver.stop(1)
    await pipeline.stop()
    assert spans == requests * SPANS_PER_REQUEST, (spans, requests)
    print(
        f"{spans:,} spans in {requests:,} requests of {SPANS_PER_REQUEST}, {in_flight} in flight: "
        f"acknowledged {spans / send_seconds:,.0f} spans/s, written {spans / wall:,.0f} spans/s, "
        f"{spans / cpu:,.0f} spans per server CPU-second (server used {cpu / wall:.0%} of a core)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=500_000)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    args = parser.parse_args()
    if not args.no_uvloop:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, loop: "
          f"{'asyncio' if args.no_uvloop else 'uvloop'}")  # fmt: skip
    asyncio.run(serve(max(1, args.spans // SPANS_PER_REQUEST), args.in_flight))


if __name__ == "__main__":
    main()
