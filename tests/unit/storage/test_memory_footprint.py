"""Memory backend: a stored span must cost under 1 KB of Python heap with realistic spans."""

from __future__ import annotations

import asyncio
import gc
import random
import tracemalloc

from tests.contract.traces import make_span, process
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.model.span import SpanKind, StatusCode
from tracemesh.storage.memory.config import MemoryConfig
from tracemesh.storage.memory.factory import MemoryStorage

TRACES, SPANS_PER_TRACE = 1000, 10
SERVICES = [
    process(f"service-{i}", **{"host.name": f"node-{i}", "process.pid": str(1000 + i)})
    for i in range(8)
]


def _trace(rng: random.Random, n: int) -> list:  # type: ignore[type-arg]
    spans = []
    for s in range(1, SPANS_PER_TRACE + 1):
        service = SERVICES[(n + s // 4) % len(SERVICES)]
        spans.append(
            make_span(
                n,
                s,
                service,
                name=f"GET /api/v1/resource-{rng.randrange(50)}",
                parent=None if s == 1 else s - 1,
                start_ms=n + s * 0.1,
                duration_ms=rng.random() * 50,
                kind=SpanKind.SERVER if s % 3 else SpanKind.CLIENT,
                status=StatusCode.ERROR if rng.random() < 0.03 else StatusCode.UNSET,
                attributes={
                    "http.method": "GET",
                    "http.url": f"http://svc:8080/api/v1/items/{rng.randrange(10**6)}?page=2",
                    "http.status_code": 200,
                    "http.user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
                    "net.peer.ip": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
                    "net.peer.port": rng.randrange(1024, 65536),
                    "component": "flask",
                    "user.id": f"user-{rng.randrange(10**5)}",
                    "request.size": rng.random() * 10_000,
                    "sampled": True,
                },
            )
        )
    return spans


def test_a_stored_span_costs_less_than_1_kb() -> None:
    rng = random.Random(1)
    storage = MemoryStorage(MemoryConfig(max_traces=TRACES))
    loop = asyncio.new_event_loop()
    raw_bytes = 0
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for first in range(0, TRACES, 10):  # ten whole traces per write, as a receiver might
            batch = batch_from_spans([s for n in range(first, first + 10) for s in _trace(rng, n)])
            raw_bytes += sum(len(row.raw) for group in batch.groups for row in group.rows)
            loop.run_until_complete(storage.writer().write(batch))
            del batch
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        loop.close()

    spans = TRACES * SPANS_PER_TRACE
    assert storage.stats() == (TRACES, spans)
    raw_per_span = raw_bytes / spans
    assert 400 < raw_per_span < 500, "the spans are meant to be realistic 10-attribute spans"
    per_span = held / spans
    assert per_span > raw_per_span, "the measurement must include the stored bytes"
    assert per_span < 1000, f"{per_span:.0f} B per stored span ({raw_per_span:.0f} B of it raw)"
