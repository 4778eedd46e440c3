"""Elasticsearch storage: bulk spans/s into one local node, search latency, bytes per span.

Starts its own node (tests/support/search_node.py: Maven's integ-test-zip, loopback, 1 GB heap,
full JIT), writes `--spans` spans through `ElasticWriter` (refresh=false, as a busy collector
would run), then measures trace searches and the primary store size from `_stats`. Each run is
done twice on separate prefixes: with the `otlp` field (the default) and without it (Jaeger's
document only), so the cost of lossless reads is a ratio measured side by side.

    .venv/bin/python bench/elasticsearch.py --spans 200000

The run at scale (millions of spans in daily indices) is `bench/elasticsearch_10m.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.elastic import config_for_tests
from tests.support.search_node import SearchNode, node_spec

from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.model.query import TraceQuery
from tracemesh.model.span import Resource, Scope, Span, SpanKind, Status, StatusCode
from tracemesh.storage.elasticsearch.client import ElasticClient
from tracemesh.storage.elasticsearch.factory import ElasticStorage

SERVICES = [Resource({"service.name": f"svc-{i}", "host.name": f"h{i}"}) for i in range(20)]
SCOPE = Scope("bench", "1.0")
BATCH = 5000


def spans(count: int, now_ns: int) -> list[Span]:
    rng = random.Random(7)
    out: list[Span] = []
    for n in range(count):
        trace, index = divmod(n, 10)
        start = now_ns - rng.randrange(3600 * 10**9)
        out.append(Span(
            trace_id=(trace + 1).to_bytes(16, "big"),
            span_id=(index + 1).to_bytes(8, "big"),
            parent_span_id=b"" if index == 0 else (1).to_bytes(8, "big"),
            name=f"op-{rng.randrange(50)}",
            start_ns=start,
            end_ns=start + rng.randrange(10**6, 10**9),
            kind=SpanKind.SERVER if index == 0 else SpanKind.CLIENT,
            attributes={"http.status_code": rng.choice((200, 200, 200, 500)),
                        "user.id": f"u-{rng.randrange(1000)}", "http.method": "GET",
                        "http.url": f"https://example.com/api/{rng.randrange(100)}"},
            status=Status(StatusCode.ERROR if rng.random() < 0.025 else StatusCode.UNSET),
            resource=SERVICES[rng.randrange(len(SERVICES))],
            scope=SCOPE,
        ))  # fmt: skip
    return out


async def run(url: str, prefix: str, data: list[Span], store_otlp: bool) -> dict[str, float]:
    config = dataclasses.replace(
        config_for_tests(url, prefix), refresh="false", store_otlp=store_otlp,
        bulk_workers=2, bulk_actions=1000, timeout=300.0,
    )  # fmt: skip
    storage = ElasticStorage(config)
    await storage.start()
    writer = storage.writer()
    wall, cpu = time.perf_counter(), time.process_time()
    for at in range(0, len(data), BATCH):
        await writer.write(batch_from_spans(data[at : at + BATCH]))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    client = ElasticClient(config)
    await client.request("POST", f"/{prefix}-jaeger-span-*/_refresh")
    await client.request(
        "POST", f"/{prefix}-jaeger-span-*/_forcemerge", params={"max_num_segments": "1"}
    )
    stats = await client.request("GET", f"/{prefix}-jaeger-span-*/_stats/store,docs")
    store = stats["_all"]["primaries"]["store"]["size_in_bytes"]
    queries = [
        TraceQuery(service="svc-3", limit=20),
        TraceQuery(service="svc-5", tags={"http.status_code": "500"}, limit=20),
        TraceQuery(service="svc-7", operation="op-9", limit=20),
        TraceQuery(service="svc-1", tags={"user.id": "u-12"}, limit=20),
        TraceQuery(service="svc-2", tags={"error": "true"}, limit=20),
    ]
    latencies: list[float] = []
    reader = storage.reader()
    for _ in range(10):
        for query in queries:
            began = time.perf_counter()
            await reader.find_traces(query)
            latencies.append(time.perf_counter() - began)
    await client.close()
    await storage.close()
    latencies.sort()
    return {
        "spans_per_s": len(data) / wall,
        "cpu_us_per_span": cpu / len(data) * 1e6,
        "bytes_per_span": store / len(data),
        "search_p50_ms": statistics.median(latencies) * 1000,
        "search_p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2, help="pairs of runs (otlp on, off)")
    args = parser.parse_args()
    kind, version = node_spec()
    node = SearchNode(kind, version, java_options="-Xms1g -Xmx1g")
    node.start()
    print(f"{kind} {version} up in {node.startup_seconds:.1f}s", flush=True)
    try:
        data = spans(args.spans, time.time_ns())
        for otlp in [True, False] * args.runs:
            result = asyncio.run(
                run(node.url, f"bench-{int(otlp)}-{time.monotonic_ns()}", data, otlp)
            )
            shown = ", ".join(f"{k} {v:,.1f}" for k, v in result.items())
            print(f"otlp={'on ' if otlp else 'off'} {args.spans} spans: {shown}", flush=True)
    finally:
        node.remove()


if __name__ == "__main__":
    main()
