"""A process that writes spans into disk storage as fast as it can and prints each acknowledged
batch (`ack <trace number> <spans>`), for the kill and cross-process tests.

Run: `python -m tests.integration.storage.disk_writer DIR [seal_spans]`. Eight tasks write at
once, so acknowledgements share group commits; every batch is one new trace of 20 spans.
"""

from __future__ import annotations

import asyncio
import sys
from itertools import count

from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.model.span import Resource, Span
from tracemesh.storage.disk.config import DiskConfig
from tracemesh.storage.disk.factory import DiskStorage

SPANS_PER_TRACE = 20
BASE_NS = 1_700_000_000_000_000_000


def trace(number: int, resource: Resource) -> list[Span]:
    trace_id = number.to_bytes(16, "big")
    return [
        Span(
            trace_id=trace_id,
            span_id=(i + 1).to_bytes(8, "big"),
            parent_span_id=b"" if i == 0 else (1).to_bytes(8, "big"),
            name=f"op-{i % 5}",
            start_ns=BASE_NS + number * 1_000_000 + i,
            end_ns=BASE_NS + number * 1_000_000 + i + 5_000,
            attributes={"n": number, "payload": "x" * 100},
            resource=resource,
        )
        for i in range(SPANS_PER_TRACE)
    ]


async def main(path: str, seal_spans: int) -> None:
    storage = DiskStorage(DiskConfig(path, retention_ns=0, seal_spans=seal_spans))
    await storage.start()
    print("ready", flush=True)
    numbers = count(1)
    resource = Resource({"service.name": "killed"})

    async def worker() -> None:
        while True:
            number = next(numbers)
            await storage.writer().write(batch_from_spans(trace(number, resource)))
            sys.stdout.write(f"ack {number} {SPANS_PER_TRACE}\n")
            sys.stdout.flush()

    await asyncio.gather(*(worker() for _ in range(8)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 250_000))
