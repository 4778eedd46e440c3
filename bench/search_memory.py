"""Benchmark: ingest 1M spans (100k traces x 10) into memory storage, then time the searches.

Run: `.venv/bin/python bench/search_memory.py [--traces 100000]`. Spans carry 10 attributes and
~400-450 bytes of OTLP each, 20 services, 50 operations, ~2.5% errors, spread over one hour — the
data set of perf-anchors B5. Prints ingest rate, memory per span and the median of each query.
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


def _request(rng: random.Random, first_trace: int, now_ns: int) -> bytes:
    """One OTLP request holding TRACES_PER_REQUEST whole traces, one ResourceSpans per service."""
    request = ExportTraceServiceRequest()
    by_service: dict[str, trace_pb2.ScopeSpans] = {}
    for t in range(first_trace, first_trace + TRACES_PER_REQUEST):
        trace_id = rng.randbytes(8) + t.to_bytes(8, "big")
        start = now_ns - HOUR_NS + t * (HOUR_NS // 100_000) % HOUR_NS
        services = rng.sample(SERVICES, 4)
        parent = b""
        for s in range(SPANS_PER_TRACE):
            service = services[min(s // 3, 3)]
            scope_spans = by_service.get(service)
            if scope_spans is None:
                rs = request.resource_spans.add()
                for key, value in (("service.name", service), ("host.name", "node-7"), ("process.runtime", "cpython")):
                    kv = rs.resource.attributes.add(key=key)
                    kv.value.string_value = value
                scope_spans = by_service[service] = rs.scope_spans.add()
                scope_spans.scope.name = "opentelemetry.instrumentation.flask"
            span = scope_spans.spans.add(
                trace_id=trace_id,
                span_id=rng.randbytes(8),
                parent_span_id=parent,
                name=rng.choice(OPERATIONS),
                kind=2 if s % 3 == 0 else 3,
                start_time_unix_nano=start + s * 1_000_000,
                end_time_unix_nano=start + s * 1_000_000 + rng.randrange(100_000, 50_000_000),
            )
            parent = span.span_id
            error = rng.random() < 0.025
            attrs: list[tuple[str, object]] = [
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
            for key, value in attrs:
                kv = span.attributes.add(key=key)
                if isinstance(value, bool):
                    kv.value.bool_value = value
                elif isinstance(value, int):
                    kv.value.int_value = value
                elif isinstance(value, float):
                    kv.value.double_value = value
                else:
                    kv.value.string_value = str(value)
            if error:
                span.status.code = 2
    return request.SerializeToString()


async def _median_ms(
    run: Callable[[], Awaitable[object]], repeats: int = 5
) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        begin = time.perf_counter()
        result = await run()
        times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times), result


def main() -> None:
    asyncio.run(_main())


async def _main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(7)
    now_ns = time.time_ns()
    print(f"building {args.traces * SPANS_PER_TRACE:,} spans as OTLP requests ...")
    requests = [_request(rng, t, now_ns) for t in range(0, args.traces, TRACES_PER_REQUEST)]

    storage = MemoryStorage(MemoryConfig(max_traces=args.traces))
    writer = storage.writer()
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    decode_s = write_s = 0.0
    raw_bytes = 0
    for body in requests:
        begin = time.perf_counter()
        batch = batch_from_request(parse_request(body)).batch
        mid = time.perf_counter()
        await writer.write(batch)
        write_s += time.perf_counter() - mid
        decode_s += mid - begin
        raw_bytes += sum(len(row.raw) for g in batch.groups for row in g.rows)
    traces, spans = storage.stats()
    del requests, batch
    gc.collect()
    rss_after = psutil.Process().memory_info().rss
    print(f"stored {traces:,} traces / {spans:,} spans, raw span {raw_bytes / spans:.0f} B avg")
    print(f"ingest: OTLP decode {decode_s / spans * 1e6:.2f} µs/span, write {write_s / spans * 1e6:.2f} µs/span"
          f" -> {spans / (decode_s + write_s):,.0f} spans/s end to end")
    print(f"RSS growth: {(rss_after - rss_before) / spans:.0f} B/span")

    reader = storage.reader()
    window = TraceQuery(start_min_ns=now_ns - HOUR_NS // 4, start_max_ns=now_ns, limit=20)
    cases = {
        "service, limit 20": TraceQuery(service="service-03", limit=20),
        "service + error=true, last 15 min, limit 20": TraceQuery(
            service="service-03", tags={"error": "true"},
            start_min_ns=window.start_min_ns, start_max_ns=window.start_max_ns, limit=20),
        "service + http.status_code=999 (no match)": TraceQuery(
            service="service-03", tags={"http.status_code": "999"}, limit=20),
        "service + absent key (no match)": TraceQuery(
            service="service-03", tags={"no.such.key": "x"}, limit=20),
        "service + user.id=nobody (no match)": TraceQuery(
            service="service-03", tags={"user.id": "nobody"}, limit=20),
        "service + host.name=other (resource, no match)": TraceQuery(
            service="service-03", tags={"host.name": "other"}, limit=20),
        "service + op + duration 1-2 ms, limit 20": TraceQuery(
            service="service-03", operation=OPERATIONS[5], duration_min_ns=1_000_000,
            duration_max_ns=2_000_000, limit=20),
        "no service, http.status_code=500, limit 100": TraceQuery(
            tags={"http.status_code": "500"}, limit=100),
        "no service, sampled=false (no match)": TraceQuery(tags={"sampled": "false"}, limit=20),
    }
    for caption, query in cases.items():
        ms, result = await _median_ms(lambda q=query: reader.find_traces(q))
        assert isinstance(result, list)
        print(f"find_traces  {caption:<50} {ms:8.1f} ms  ({len(result)} traces)")
    some_id = next(iter(storage._store.traces))  # noqa: SLF001 - a bench may peek
    ms, _ = await _median_ms(lambda: reader.get_trace(some_id), repeats=50)
    print(f"get_trace    10 spans{'':<42} {ms:8.3f} ms")
    ms, _ = await _median_ms(lambda: reader.get_services())
    print(f"get_services{'':<51} {ms:8.3f} ms")
    deps = storage.dependency_reader()
    ms, links = await _median_ms(lambda: deps.get_dependencies(now_ns, 2 * HOUR_NS), repeats=3)
    assert isinstance(links, list)
    print(f"get_dependencies over all spans{'':<32} {ms:8.1f} ms  ({len(links)} links)")


if __name__ == "__main__":
    main()
