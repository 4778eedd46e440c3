"""Benchmark: ingest 1M spans (100k traces x 10) into memory storage, then time the reads.

Run: `.venv/bin/python bench/search_memory.py [--traces 100000]`. Spans carry 10 attributes and
~380 bytes of OTLP each, 20 services, 50 operations, ~2.5% errors, spread over one hour, like the
data set of perf-anchors B5. Prints ingest cost, memory per span and the median of each read, all
in CPU time of this process (`time.process_time`), so that other work on a shared machine does
not inflate them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
from collections.abc import Awaitable, Callable

import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from tracemesh.codecs.otlp_proto import batch_from_request, parse_request
from tracemesh.model.query import TraceQuery
from tracemesh.storage.memory.config import MemoryConfig
from tracemesh.storage.memory.factory import MemoryStorage

SERVICES = [f"service-{i:02d}" for i in range(20)]
OPERATIONS = [f"GET /api/v1/resource-{i:02d}" for i in range(50)]
HOUR_NS = 3_600_000_000_000
SPANS_PER_TRACE = 10
TRACES_PER_REQUEST = 50
RESOURCE = (("host.name", "node-7"), ("process.runtime.name", "cpython"))
SERVER, CLIENT = trace_pb2.Span.SPAN_KIND_SERVER, trace_pb2.Span.SPAN_KIND_CLIENT


def _request(rng: random.Random, first_trace: int, now_ns: int, traces: int) -> bytes:
    """One OTLP request holding TRACES_PER_REQUEST whole traces, one ResourceSpans per service."""
    request = ExportTraceServiceRequest()
    by_service: dict[str, trace_pb2.ScopeSpans] = {}
    for t in range(first_trace, first_trace + TRACES_PER_REQUEST):
        trace_id = rng.randbytes(8) + t.to_bytes(8, "big")
        start = now_ns - HOUR_NS + t * HOUR_NS // traces  # arrival order = start order
        services = rng.sample(SERVICES, 4)
        parent = b""
        for s in range(SPANS_PER_TRACE):
            service = services[min(s // 3, 3)]
            scope_spans = by_service.get(service)
            if scope_spans is None:
                rs = request.resource_spans.add()
                for key, value in (("service.name", service), *RESOURCE):
                    rs.resource.attributes.add(key=key).value.string_value = value
                scope_spans = by_service[service] = rs.scope_spans.add()
                scope_spans.scope.name = "opentelemetry.instrumentation.flask"
            span = scope_spans.spans.add(
                trace_id=trace_id,
                span_id=rng.randbytes(8),
                parent_span_id=parent,
                name=rng.choice(OPERATIONS),
                kind=SERVER if s % 3 == 0 else CLIENT,
                start_time_unix_nano=start + s * 1_000_000,
                end_time_unix_nano=start + s * 1_000_000 + rng.randrange(100_000, 50_000_000),
            )
            parent = span.span_id
            error = rng.random() < 0.025
            _attributes(span, rng, service, error)
            if error:
                span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    return request.SerializeToString()


def _attributes(span: trace_pb2.Span, rng: random.Random, service: str, error: bool) -> None:
    attributes: list[tuple[str, str | int | float | bool]] = [
        ("http.method", "GET"),
        ("http.url", f"http://{service}:8080/api/v1/items/{rng.randrange(10**6)}?page=2"),
        ("http.status_code", 500 if error else 200),
        ("http.user_agent", "python-requests/2.31.0"),
        ("net.peer.ip", f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"),
        ("net.peer.port", rng.randrange(1024, 65536)),
        ("component", "flask"),
        ("user.id", f"user-{rng.randrange(10**5)}"),
        ("request.size", rng.random() * 10_000),
        ("sampled", True),
    ]
    for key, value in attributes:
        any_value = span.attributes.add(key=key).value
        if isinstance(value, bool):
            any_value.bool_value = value
        elif isinstance(value, int):
            any_value.int_value = value
        elif isinstance(value, float):
            any_value.double_value = value
        else:
            any_value.string_value = value


async def _median_ms(
    run: Callable[[], Awaitable[object]], repeats: int = 5
) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        begin = time.process_time()
        result = await run()
        times.append((time.process_time() - begin) * 1000)
    return statistics.median(times), result


def _queries(now_ns: int) -> dict[str, TraceQuery]:
    svc = "service-03"
    return {
        "service, limit 20": TraceQuery(service=svc, limit=20),
        "service + error=true, last 15 min, limit 20": TraceQuery(
            service=svc, tags={"error": "true"}, start_min_ns=now_ns - HOUR_NS // 4, limit=20
        ),
        "service + op + duration 1-2 ms, limit 20": TraceQuery(
            service=svc,
            operation=OPERATIONS[5],
            duration_min_ns=1_000_000,
            duration_max_ns=2_000_000,
            limit=20,
        ),
        "service + http.status_code=999 (no match)": TraceQuery(
            service=svc, tags={"http.status_code": "999"}
        ),
        "service + user.id=nobody (no match)": TraceQuery(service=svc, tags={"user.id": "nobody"}),
        "service + absent key (no match)": TraceQuery(service=svc, tags={"no.such.key": "x"}),
        "service + host.name=other (resource; no match)": TraceQuery(
            service=svc, tags={"host.name": "other"}
        ),
        "no service, http.status_code=500, limit 100": TraceQuery(
            tags={"http.status_code": "500"}, limit=100
        ),
        "no service, user.id=nobody (no match)": TraceQuery(tags={"user.id": "nobody"}),
    }


async def _main(traces: int) -> None:
    rng = random.Random(7)
    now_ns = time.time_ns()
    print(f"building {traces * SPANS_PER_TRACE:,} spans as OTLP requests ...")
    bodies = [_request(rng, t, now_ns, traces) for t in range(0, traces, TRACES_PER_REQUEST)]

    storage = MemoryStorage(MemoryConfig(max_traces=traces))
    writer = storage.writer()
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    decode_s = write_s = 0.0
    raw_bytes = 0
    for body in bodies:
        begin = time.process_time()
        batch = batch_from_request(parse_request(body)).batch
        decoded = time.process_time()
        await writer.write(batch)
        write_s += time.process_time() - decoded
        decode_s += decoded - begin
        raw_bytes += sum(len(row.raw) for group in batch.groups for row in group.rows)
    held_traces, spans = storage.stats()
    del bodies, batch
    gc.collect()
    rss = psutil.Process().memory_info().rss - rss_before
    print(
        f"stored {held_traces:,} traces / {spans:,} spans, raw span {raw_bytes / spans:.0f} B avg"
    )
    decode_us, write_us = decode_s / spans * 1e6, write_s / spans * 1e6
    print(f"OTLP decode {decode_us:.2f} µs/span, write {write_us:.2f} µs/span")
    print(f"  -> {spans / (decode_s + write_s):,.0f} spans/s decode + write on one core")
    print(f"RSS growth {rss / spans:.0f} B/span")
    begin = time.process_time()
    gc.collect()
    print(f"full gc.collect() {1000 * (time.process_time() - begin):.0f} ms")

    reader = storage.reader()
    for caption, query in _queries(now_ns).items():
        ms, result = await _median_ms(lambda q=query: reader.find_traces(q))  # type: ignore[misc]
        assert isinstance(result, list)
        print(f"find_traces  {caption:<48} {ms:8.1f} ms  ({len(result)} traces)")
    some_id = (await reader.find_traces(TraceQuery(limit=1)))[0][0].trace_id
    ms, _ = await _median_ms(lambda: reader.get_trace(some_id), repeats=50)
    print(f"get_trace    {'10 spans':<48} {ms:8.2f} ms")
    dependencies = storage.dependency_reader()
    ms, links = await _median_ms(lambda: dependencies.get_dependencies(now_ns, 2 * HOUR_NS), 3)
    assert isinstance(links, list)
    print(f"get_dependencies {'over every span':<44} {ms:8.1f} ms  ({len(links)} links)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=100_000)
    asyncio.run(_main(parser.parse_args().traces))


if __name__ == "__main__":
    main()
