"""Benchmark: disk storage with millions of spans — durable ingest, trace by id, searches, bytes.

Run: `.venv/bin/python bench/storage.py --spans 10000000 [--phase all|ingest|query]`.

The data set is search_memory.py's (20 services, 50 operations, 10 attributes, ~2.5% errors, one
hour of start times, 10 spans a trace), generated once as OTLP requests into
`bench/out/storage-<N>/requests.bin` and reused. `ingest` decodes the requests and writes them
into a fresh store at `bench/out/storage-<N>/store` in pipeline-sized batches (10,000 spans, one
write at a time, each acknowledged after fsync), then waits until every segment is a block;
`query` opens that store as a restarted process would and times each read. Times are CPU time
of this process (all threads) and wall time; p50/p99 over every repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from search_memory import HOUR_NS, OPERATIONS, SERVICES, TRACES_PER_REQUEST, _request
from tracemesh.codecs.otlp_proto import batch_from_request, parse_request
from tracemesh.model.batch import SpanBatch
from tracemesh.model.query import TraceQuery
from tracemesh.runtime.process import tune_gc
from tracemesh.storage.disk.config import DiskConfig
from tracemesh.storage.disk.factory import DiskStorage

OUT = Path(__file__).parent / "out"
_LEN = struct.Struct("<I")


def _dataset(spans: int) -> tuple[Path, int]:
    """The cached request file and the `now` its start times are relative to."""
    folder = OUT / f"storage-{spans}"
    folder.mkdir(parents=True, exist_ok=True)
    data, stamp = folder / "requests.bin", folder / "now_ns"
    if data.exists() and stamp.exists():
        return data, int(stamp.read_text())
    tmp = data.with_suffix(".tmp")
    if spans > BASE_SET and spans % BASE_SET == 0:
        base, now_ns = _dataset(BASE_SET)
        print(f"making {spans:,} spans once from {base} ...", flush=True)
        with tmp.open("wb") as out:
            for body in _bodies(base):
                for copy in range(spans // BASE_SET):
                    body_copy = _copy(body, copy, spans // 10)
                    out.write(_LEN.pack(len(body_copy)) + body_copy)
    else:
        rng = random.Random(7)
        now_ns = time.time_ns()
        traces = spans // 10
        print(f"generating {spans:,} spans once into {data} ...", flush=True)
        with tmp.open("wb") as out:
            for first in range(0, traces, TRACES_PER_REQUEST):
                body = _request(rng, first, now_ns, traces)
                out.write(_LEN.pack(len(body)) + body)
    tmp.replace(data)
    stamp.write_text(str(now_ns))
    return data, now_ns


BASE_SET = 1_000_000


def _copy(body: bytes, copy: int, traces: int) -> bytes:
    """The request with its traces made the `copy`-th distinct copy: the trace id's first byte
    changed and starts moved by `copy` trace slots of the larger set, so that copies interleave
    in time and every trace keeps its own slot in the hour."""
    if not copy:
        return body
    request = parse_request(body)
    shift = copy * HOUR_NS // traces
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span.trace_id = bytes([trace_id[0] ^ copy]) + trace_id[1:]
                span.start_time_unix_nano -= shift
                span.end_time_unix_nano -= shift
    return request.SerializeToString()


def _bodies(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while header := file.read(4):
            (size,) = _LEN.unpack(header)
            yield file.read(size)


def _merge(batches: list[SpanBatch]) -> SpanBatch:
    return SpanBatch([group for batch in batches for group in batch.groups])


async def _ingest(data: Path, store: Path, batch_spans: int) -> None:
    if store.exists():
        shutil.rmtree(store)
    storage = DiskStorage(DiskConfig(str(store), retention_ns=0))
    await storage.start()
    writer = storage.writer()
    decode_cpu = write_cpu = 0.0
    spans = 0
    pending: list[SpanBatch] = []
    pending_spans = 0
    wall = time.perf_counter()
    report = wall
    for body in _bodies(data):
        begin = time.process_time()
        batch = batch_from_request(parse_request(body), body).batch
        decode_cpu += time.process_time() - begin
        pending.append(batch)
        pending_spans += batch.span_count
        if pending_spans >= batch_spans:
            begin = time.process_time()
            await writer.write(_merge(pending))
            write_cpu += time.process_time() - begin
            spans += pending_spans
            pending, pending_spans = [], 0
            if time.perf_counter() - report > 30:
                report = time.perf_counter()
                print(f"  {spans:,} spans, {spans / write_cpu:,.0f} spans/s write CPU", flush=True)
    if pending:
        begin = time.process_time()
        await writer.write(_merge(pending))
        write_cpu += time.process_time() - begin
        spans += pending_spans
    begin = time.process_time()
    async with storage._io:  # seal the last segment too, so the whole set is in blocks
        await storage._rotate()
    await storage.settle()
    write_cpu += time.process_time() - begin
    wall = time.perf_counter() - wall
    await storage.close()
    size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    blocks = len(list((store / "blocks").iterdir()))
    print(f"ingested {spans:,} spans into {blocks} blocks, {wall:.0f} s wall")
    print(f"OTLP decode          {decode_cpu / spans * 1e6:6.2f} µs/span CPU")
    print(
        f"disk write + seal    {write_cpu / spans * 1e6:6.2f} µs/span CPU"
        f" = {spans / write_cpu:,.0f} spans/s on one core (durable acknowledgements)"
    )
    print(f"decode + write       {spans / (decode_cpu + write_cpu):,.0f} spans/s on one core")
    print(f"disk                 {size / spans:6.1f} bytes/span ({size / 2**20:,.0f} MiB)")


async def _timed(
    label: str, runs: list[Callable[[], Awaitable[object]]]
) -> tuple[float, float, float]:
    cpu: list[float] = []
    wall: list[float] = []
    for run in runs:
        begin_cpu, begin_wall = time.process_time(), time.perf_counter()
        await run()
        cpu.append((time.process_time() - begin_cpu) * 1000)
        wall.append((time.perf_counter() - begin_wall) * 1000)
    cpu.sort()
    wall.sort()
    p99 = wall[min(len(wall) - 1, int(len(wall) * 0.99))]
    cpu99 = cpu[min(len(cpu) - 1, int(len(cpu) * 0.99))]
    print(
        f"{label:<56} wall p50 {statistics.median(wall):8.1f} p99 {p99:8.1f} ms"
        f" | CPU p50 {statistics.median(cpu):7.1f} p99 {cpu99:7.1f} ms  (n={len(runs)})",
        flush=True,
    )
    return statistics.median(wall), p99, statistics.median(cpu)


async def _query(store: Path, now_ns: int, spans: int, repeats: int, follow: bool) -> None:
    begin = time.perf_counter()
    storage = DiskStorage(DiskConfig(str(store), retention_ns=0, writable=not follow))
    await storage.start()
    print(f"opened {len(storage.state.blocks)} blocks in {time.perf_counter() - begin:.2f} s")
    print(f"holding {storage.stats()[1]:,} spans")
    begin = time.perf_counter()
    for block in storage.state.blocks.values():
        block.search_columns()
    print(f"loaded search columns in {time.perf_counter() - begin:.2f} s")
    # the background preload (search columns, sorted tag indexes, dependency links) must end
    # before timing starts: its thread's CPU time would be counted in the queries'
    begin = time.perf_counter()
    await storage._tasks[0]
    print(f"background preload done in another {time.perf_counter() - begin:.2f} s")
    reader = storage.reader()
    rng = random.Random(11)
    blocks = [block for block in storage.state.blocks.values() if block.traces]
    ids = []
    for _ in range(200):
        block = rng.choice(blocks)
        ids.append(block.trace_id(rng.randrange(block.traces)))
    await _timed("get_trace (10 spans), random ids", [lambda t=t: reader.get_trace(t) for t in ids])
    quarter = now_ns - HOUR_NS // 4

    def each(
        make: Callable[[str], TraceQuery], times: int
    ) -> list[Callable[[], Awaitable[object]]]:
        queries = [make(rng.choice(SERVICES)) for _ in range(times)]
        return [lambda q=q: reader.find_traces(q) for q in queries]

    cases: dict[str, Callable[[str], TraceQuery]] = {
        "service, limit 20": lambda s: TraceQuery(service=s, limit=20),
        "service + operation, limit 20": lambda s: TraceQuery(
            service=s, operation=rng.choice(OPERATIONS), limit=20
        ),
        "service + kind client, limit 20": lambda s: TraceQuery(
            service=s,
            span_kind=3,
            limit=20,  # type: ignore[arg-type]
        ),
        "service + error=true, last 15 min, limit 20": lambda s: TraceQuery(
            service=s, tags={"error": "true"}, start_min_ns=quarter, limit=20
        ),
        "service + http.status_code=500, limit 20": lambda s: TraceQuery(
            service=s, tags={"http.status_code": "500"}, limit=20
        ),
        "service + duration 1-2 ms, limit 20": lambda s: TraceQuery(
            service=s, duration_min_ns=1_000_000, duration_max_ns=2_000_000, limit=20
        ),
        "service + op + duration >45 ms, limit 20": lambda s: TraceQuery(
            service=s, operation=rng.choice(OPERATIONS), duration_min_ns=45_000_000, limit=20
        ),
        "service + 10-min window in the middle, limit 20": lambda s: TraceQuery(
            service=s,
            start_min_ns=now_ns - HOUR_NS // 2,
            start_max_ns=now_ns - HOUR_NS // 2 + HOUR_NS // 6,
            limit=20,
        ),
        "service + resource tag host.name=node-7, limit 20": lambda s: TraceQuery(
            service=s, tags={"host.name": "node-7"}, limit=20
        ),
        "service + user.id=user-42 (rare), limit 20": lambda s: TraceQuery(
            service=s, tags={"user.id": "user-42"}, limit=20
        ),
        "no service, user.id=user-42 (rare), limit 20": lambda s: TraceQuery(
            tags={"user.id": "user-42"}, limit=20
        ),
        "no service, http.status_code=500, limit 20": lambda s: TraceQuery(
            tags={"http.status_code": "500"}, limit=20
        ),
        "service + user.id=nobody (no match: every block)": lambda s: TraceQuery(
            service=s, tags={"user.id": "nobody"}, limit=20
        ),
        "service + op + kind producer (no match)": lambda s: TraceQuery(
            service=s,
            operation=rng.choice(OPERATIONS),
            span_kind=4,
            limit=20,  # type: ignore[arg-type]
        ),
    }
    for label, make in cases.items():
        # the scans of every block run 3 times: one takes seconds on a shared machine
        times = (1 if follow else 3) if "no match" in label or "rare" in label else repeats
        await _timed(f"find_traces {label}", each(make, times))
    await _timed("get_services", [reader.get_services for _ in range(repeats)])
    await _timed(
        "get_operations",
        [lambda s=s: reader.get_operations(s) for s in rng.sample(SERVICES, 10) * 2],
    )
    dependencies = storage.dependency_reader()
    await _timed(
        "get_dependencies, last 5 min",
        [lambda: dependencies.get_dependencies(now_ns, HOUR_NS // 12) for _ in range(3)],
    )
    await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--phase", choices=("all", "generate", "ingest", "query"), default="all")
    parser.add_argument("--batch-spans", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--follow", action="store_true", help="query as a reading process, while ingest runs"
    )
    args = parser.parse_args()
    data, now_ns = _dataset(args.spans)
    tune_gc()  # as a tracemesh process does
    store = data.parent / "store"
    if args.phase in ("all", "ingest"):
        asyncio.run(_ingest(data, store, args.batch_spans))
    if args.phase in ("all", "query"):
        asyncio.run(_query(store, now_ns, args.spans, args.repeats, args.follow))


if __name__ == "__main__":
    main()
