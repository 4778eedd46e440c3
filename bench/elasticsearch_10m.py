"""Elasticsearch at 10 million spans: bulk spans/s, search latency and bytes per span on one node.

The scale run of issue 8 (the side-by-side `otlp` on/off comparison at small scale is
`bench/elasticsearch.py`). Starts one node (tests/support/search_node.py: Maven's integ-test-zip,
loopback, `--heap` heap, full JIT), then:

1. **writer**: `--writer-runs` runs of `--writer-spans` spans each through the real
   `ElasticWriter` (bulk 1,000 documents, 2 in flight, `refresh=false`): spans/s and client CPU.
2. **fill**: the rest up to `--spans` with a cheaper loader that sends the same documents: each
   template trace is converted once by the writer's own code (`span_document`, `OtlpEnvelope`)
   and then copied with new random trace/span ids and start times substituted (in the JSON and
   in the OTLP bytes of the `otlp` field), so the client is not the bottleneck. It stops at
   `--fill-until` (UTC HH:MM) whatever the count, so the run stays bounded.
3. **measure**: refresh, force merge to one segment, then searches through `QueryService` (the
   code behind `GET /api/traces`), trace by id, service and operation lists, each timed one at a
   time, with the node's CPU from `_nodes/stats`, and primary store bytes / span.

Spans start in time order over `--hours` hours ending at the start of the run, so they fall into
2-3 daily `jaeger-span-YYYY-MM-DD` indices (1 shard, 0 replicas each). Traces of 10 spans, 20
services, 50 operations, 4 attributes, 2.5% errors.

    .venv/bin/python bench/elasticsearch_10m.py --spans 10000000 --fill-until 10:45
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import datetime
import functools
import os
import random
import re
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.elastic import config_for_tests
from tests.support.search_node import SearchNode, node_spec

from tracemesh.codecs.otlp_proto import batch_from_spans, span_to_pb
from tracemesh.model.query import TraceQuery
from tracemesh.model.span import Resource, Scope, Span, SpanKind, Status, StatusCode
from tracemesh.query.service import QueryService
from tracemesh.storage.elasticsearch.client import ElasticClient
from tracemesh.storage.elasticsearch.config import ElasticConfig
from tracemesh.storage.elasticsearch.documents import (
    OtlpEnvelope,
    TagFields,
    process,
    span_document,
    split_process,
)
from tracemesh.storage.elasticsearch.factory import ElasticStorage
from tracemesh.storage.elasticsearch.indices import Indices
from tracemesh.storage.elasticsearch.writer import service_doc_id

SERVICES = [Resource({"service.name": f"svc-{i}", "host.name": f"h{i}"}) for i in range(20)]
SCOPE = Scope("bench", "1.0")
SPANS_PER_TRACE = 10
WRITE_BATCH = 5000  # spans per `ElasticWriter.write`, as a collector's queue hands them over
TEMPLATES = 2000  # template traces of the fill
FILL_BULK = 2000  # documents per bulk request of the fill
FILL_IN_FLIGHT = 3
QUERIES = 100  # per shape
WARMUP = 5  # untimed queries of each shape first
SHAPE_SECONDS = 60.0  # per shape at most, so that the run stays bounded
HOUR_NS = 3600 * 10**9
JSON = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Plan:
    traces: int
    start_ns: int
    end_ns: int

    def trace_start(self, n: int, rng: random.Random) -> int:
        """Trace n starts at its share of the window, give or take a second: time order."""
        at = self.start_ns + (self.end_ns - self.start_ns) * n // self.traces
        return at + rng.randrange(10**9)


def make_trace(rng: random.Random, trace_id: bytes, start_ns: int) -> list[Span]:
    """A root SERVER span and 9 children (each under an earlier span) inside its duration."""
    root_duration = rng.randrange(10**6, 10**9)
    ids = [rng.randbytes(8) for _ in range(SPANS_PER_TRACE)]
    out: list[Span] = []
    for index in range(SPANS_PER_TRACE):
        if index == 0:
            start, end = start_ns, start_ns + root_duration
        else:
            offset = rng.randrange(root_duration // 2)
            start = start_ns + offset
            end = start + rng.randrange(1000, root_duration - offset)
        out.append(Span(
            trace_id=trace_id,
            span_id=ids[index],
            parent_span_id=b"" if index == 0 else ids[rng.randrange(index)],
            name=f"op-{rng.randrange(50)}",
            start_ns=start,
            end_ns=end,
            kind=SpanKind.SERVER if index == 0 else rng.choice((SpanKind.CLIENT, SpanKind.SERVER)),
            attributes={"http.status_code": rng.choice((200, 200, 200, 500)),
                        "user.id": f"u-{rng.randrange(1000)}", "http.method": "GET",
                        "http.url": f"https://example.com/api/{rng.randrange(100)}"},
            status=Status(StatusCode.ERROR if rng.random() < 0.025 else StatusCode.UNSET),
            resource=SERVICES[rng.randrange(len(SERVICES))],
            scope=SCOPE,
        ))  # fmt: skip
    return out


class LoadSampler:
    """The 1-minute load average every 10 s, so each phase can quote its own."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(10.0):
            self.samples.append((time.monotonic(), os.getloadavg()[0]))

    def between(self, began: float, ended: float) -> str:
        values = [load for at, load in self.samples if began <= at <= ended]
        if not values:
            return f"{os.getloadavg()[0]:.1f}"
        return f"{statistics.median(values):.1f} (max {max(values):.1f})"

    def stop(self) -> None:
        self._stop.set()


def say(text: str) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
    print(f"[{stamp}] {text}", flush=True)


def bench_config(url: str, prefix: str) -> ElasticConfig:
    return dataclasses.replace(
        config_for_tests(url, prefix), refresh="false", bulk_workers=2, bulk_actions=1000,
        timeout=600.0, bulk_retry_timeout=600.0,
    )  # fmt: skip


async def node_cpu_ms(client: ElasticClient) -> int:
    stats = await client.request("GET", "/_nodes/_local/stats/process")
    node = next(iter(stats["nodes"].values()))
    return int(node["process"]["cpu"]["total_in_millis"])


# ---- 1. the real writer ------------------------------------------------------------------------


async def writer_run(
    storage: ElasticStorage, plan: Plan, first: int, traces: int, sampled: list[bytes]
) -> dict[str, float]:
    rng = random.Random(first)
    batches = []
    pending: list[Span] = []
    for n in range(first, first + traces):
        trace_id = rng.randbytes(16)
        if n % 997 == 0:
            sampled.append(trace_id)
        pending.extend(make_trace(rng, trace_id, plan.trace_start(n, rng)))
        if len(pending) >= WRITE_BATCH:
            batches.append(batch_from_spans(pending))
            pending = []
    if pending:
        batches.append(batch_from_spans(pending))
    writer = storage.writer()
    node_before = await node_cpu_ms(storage.client)
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        await writer.write(batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    node_ms = await node_cpu_ms(storage.client) - node_before
    spans = traces * SPANS_PER_TRACE
    return {"spans": spans, "spans_per_s": spans / wall, "client_cpu_us": cpu / spans * 1e6,
            "node_cpu_us": node_ms * 1000 / spans, "wall_s": wall}  # fmt: skip


# ---- 2. the fill: the writer's documents, ids and times substituted ---------------------------

MARK_START_US = 1111111111111111  # 16 digits, as every µs start time of this era
MARK_TRACE = bytes(range(0xA0, 0xB0))


def _mark_span(index: int) -> bytes:
    return bytes([0xC0 + index, 0xD1, 0xE2, 0xF3, 0xC4, 0xD5, 0xE6, 0xF7])


class Template:
    """One trace's documents, cut at every id and start time; `render` fills them in."""

    def __init__(self, spans: list[Span], indices: Indices, tag_fields: TagFields) -> None:
        base = spans[0].start_ns
        self.offsets = [s.start_ns - base for s in spans]
        marks = {s.span_id: _mark_span(i) for i, s in enumerate(spans)}
        self.services: set[tuple[str, str, str]] = set()
        self.json_parts: list[list[bytes | int]] = []
        self.otlp_parts: list[list[bytes | int]] = []
        hex_slots = {MARK_TRACE.hex().encode(): -1}
        raw_slots = {MARK_TRACE: -1}
        for i in range(len(spans)):
            hex_slots[_mark_span(i).hex().encode()] = i
            raw_slots[_mark_span(i)] = i
        for span in spans:
            marked = dataclasses.replace(
                span, trace_id=MARK_TRACE, span_id=marks[span.span_id],
                parent_span_id=marks[span.parent_span_id] if span.parent_span_id else b"",
                start_ns=MARK_START_US * 1000, end_ns=MARK_START_US * 1000 + span.duration_ns,
            )  # fmt: skip
            process_doc = split_process(process(span.resource), tag_fields)
            self.services.add((process_doc["serviceName"], span.name, span.kind.jaeger_name))
            doc = orjson.dumps(span_document(marked, process_doc, tag_fields))
            assert doc.endswith(b"}")
            self.json_parts.append(self._cut(doc[:-1], hex_slots))
            raw = OtlpEnvelope(span.resource, span.scope).wrap(
                span_to_pb(marked).SerializeToString()
            )
            self.otlp_parts.append(self._cut_raw(raw, raw_slots))

    @staticmethod
    def _cut(doc: bytes, slots: dict[bytes, int]) -> list[bytes | int]:
        """Literal pieces and slots: -1 trace id, 0..9 span ids, -2 startTime, -3 millis."""
        parts: list[bytes | int] = []
        at = 0
        pattern = re.compile(
            b"|".join(
                [
                    *(re.escape(m) for m in slots),
                    rb'(?<="startTime":)\d+',
                    rb'(?<="startTimeMillis":)\d+',
                ]
            )
        )
        for match in pattern.finditer(doc):
            parts.append(doc[at : match.start()])
            text = match.group()
            if text in slots:
                parts.append(slots[text])
            else:
                parts.append(-2 if len(text) == 16 else -3)
            at = match.end()
        parts.append(doc[at:])
        return parts

    @staticmethod
    def _cut_raw(raw: bytes, slots: dict[bytes, int]) -> list[bytes | int]:
        """The OTLP bytes: ids as in the JSON; -4 start and -5 end (fixed64) stay relative."""
        parts: list[bytes | int] = []
        at = 0
        pattern = re.compile(b"|".join(re.escape(m) for m in slots), re.DOTALL)
        for match in pattern.finditer(raw):
            parts.append(raw[at : match.start()])
            parts.append(slots[match.group()])
            at = match.end()
        parts.append(raw[at:])
        return parts


def _fixed64_times(raw: bytes, start_ns: int, shift: int) -> bytes:
    """The OTLP span's start (field 7) and end (field 8) moved by `shift`."""
    mark = MARK_START_US * 1000
    start_tag = b"\x39" + mark.to_bytes(8, "little")
    at = raw.find(start_tag)
    end_at = at + 9
    assert at >= 0 and raw[end_at] == 0x41, "end_time_unix_nano follows start_time_unix_nano"
    end = int.from_bytes(raw[end_at + 1 : end_at + 9], "little")
    return (raw[: at + 1] + start_ns.to_bytes(8, "little") + raw[at + 9 : end_at + 1]
            + (end + shift).to_bytes(8, "little") + raw[end_at + 9 :])  # fmt: skip


def render(template: Template, index_name: Callable[[int], bytes], trace_id: bytes,
           span_ids: list[bytes], start_ns: int) -> list[bytes]:  # fmt: skip
    out: list[bytes] = []
    trace_hex = trace_id.hex().encode()
    span_hex = [s.hex().encode() for s in span_ids]
    for i, offset in enumerate(template.offsets):
        begins = start_ns + offset
        micros = begins // 1000
        pieces: list[bytes] = []
        for part in template.json_parts[i]:
            if isinstance(part, bytes):
                pieces.append(part)
            elif part == -1:
                pieces.append(trace_hex)
            elif part >= 0:
                pieces.append(span_hex[part])
            elif part == -2:
                pieces.append(str(micros).encode())
            else:
                pieces.append(str(micros // 1000).encode())
        raw_pieces: list[bytes] = []
        for part in template.otlp_parts[i]:
            if isinstance(part, bytes):
                raw_pieces.append(part)
            elif part == -1:
                raw_pieces.append(trace_id)
            else:
                raw_pieces.append(span_ids[part])
        raw = _fixed64_times(b"".join(raw_pieces), begins, begins - MARK_START_US * 1000)
        pieces.append(b',"otlp":"' + base64.b64encode(raw) + b'"}\n')
        out.append(index_name(begins) + b"".join(pieces))
    return out


def check_template(template: Template, spans: list[Span], tag_fields: TagFields) -> None:
    """A copy with a new trace id, span ids and start is the writer's document for such a span."""
    rng = random.Random(len(spans))
    trace_id, span_ids = rng.randbytes(16), [rng.randbytes(8) for _ in spans]
    shift = rng.randrange(10**12)
    copies = render(template, lambda _: b"", trace_id, span_ids, spans[0].start_ns + shift)
    new_ids = {s.span_id: new for s, new in zip(spans, span_ids, strict=True)}
    for span, copy in zip(spans, copies, strict=True):
        moved = dataclasses.replace(
            span, trace_id=trace_id, span_id=new_ids[span.span_id],
            parent_span_id=new_ids.get(span.parent_span_id, b""),
            start_ns=span.start_ns + shift, end_ns=span.end_ns + shift,
        )  # fmt: skip
        otlp = OtlpEnvelope(span.resource, span.scope).wrap(span_to_pb(moved).SerializeToString())
        process_doc = split_process(process(span.resource), tag_fields)
        expected = orjson.dumps(span_document(moved, process_doc, tag_fields, otlp)) + b"\n"
        if copy != expected:
            raise AssertionError(f"the fill's document differs from the writer's:\n{copy!r}\n"
                                 f"{expected!r}")  # fmt: skip


async def fill(
    config: ElasticConfig, storage: ElasticStorage, plan: Plan, first: int, last: int,
    until: float, sampled: list[bytes],
) -> dict[str, float]:  # fmt: skip
    rng = random.Random(12345)
    tag_fields = storage.tag_fields
    templates = []
    for k in range(TEMPLATES):
        spans = make_trace(rng, rng.randbytes(16), plan.start_ns + k * 10**9)
        templates.append(Template(spans, storage.indices, tag_fields))
        if k < 50:
            check_template(templates[-1], spans, tag_fields)
    actions: dict[str, bytes] = {}

    def index_name(start_ns: int) -> bytes:
        name = storage.indices.write_span(start_ns)
        action = actions.get(name)
        if action is None:
            action = actions[name] = orjson.dumps({"index": {"_index": name}}) + b"\n"
        return action

    client = ElasticClient(dataclasses.replace(config, bulk_workers=FILL_IN_FLIGHT))
    slots = asyncio.Semaphore(FILL_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()
    errors: list[str] = []

    async def send(body: bytes) -> None:
        try:
            answer = await client.request("POST", "/_bulk", raw=body,
                                          content_type="application/x-ndjson")  # fmt: skip
            if answer.get("errors"):
                bad = [i for i in answer["items"] if next(iter(i.values()))["status"] >= 300]
                errors.append(f"{len(bad)} refused, first: {bad[0]}")
        finally:
            slots.release()

    node_before = await node_cpu_ms(client)
    wall, cpu = time.perf_counter(), time.process_time()
    written = 0
    n = first
    pending: list[bytes] = []
    while n < last and time.time() < until and not errors:
        trace_id = rng.randbytes(16)
        if n % 997 == 0:
            sampled.append(trace_id)
        span_ids = [rng.randbytes(8) for _ in range(SPANS_PER_TRACE)]
        pending.extend(render(templates[n % TEMPLATES], index_name, trace_id, span_ids,
                              plan.trace_start(n, rng)))  # fmt: skip
        n += 1
        if len(pending) >= FILL_BULK:
            await slots.acquire()
            task = asyncio.create_task(send(b"".join(pending)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            written += len(pending)
            pending = []
            if written % 500_000 < FILL_BULK:
                say(f"fill: {written:,} spans, {written / (time.perf_counter() - wall):,.0f}/s")
    if pending:
        await slots.acquire()
        await send(b"".join(pending))
        written += len(pending)
    await asyncio.gather(*tasks)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    node_ms = await node_cpu_ms(client) - node_before
    # the service documents the writer would have written, once per day, service, operation, kind
    days = sorted({name.replace("span", "service") for name in actions})
    services = set().union(*(t.services for t in templates))
    body = b"".join(
        orjson.dumps({"index": {"_index": day, "_id": service_doc_id(s, op, kind)}}) + b"\n"
        + orjson.dumps({"serviceName": s, "operationName": op, "spanKind": kind}) + b"\n"
        for day in days for s, op, kind in sorted(services)
    )  # fmt: skip
    await client.request("POST", "/_bulk", raw=body, content_type="application/x-ndjson")
    await client.close()
    if errors:
        raise RuntimeError(f"the fill was refused: {errors[:3]}")
    return {"spans": written, "traces_end": n, "spans_per_s": written / wall,
            "client_cpu_us": cpu / max(written, 1) * 1e6,
            "node_cpu_us": node_ms * 1000 / max(written, 1), "wall_s": wall}  # fmt: skip


# ---- 3. measure --------------------------------------------------------------------------------


async def timed(
    name: str, client: ElasticClient, calls: Sequence[Callable[[], Awaitable[object]]]
) -> str:
    """One table row: the calls one after the other, until done or SHAPE_SECONDS have passed."""
    latencies: list[float] = []
    sizes: list[int] = []
    before = await node_cpu_ms(client)
    stop = time.monotonic() + SHAPE_SECONDS
    for call in calls:
        began = time.perf_counter()
        result = await call()
        latencies.append(time.perf_counter() - began)
        sizes.append(len(result) if isinstance(result, list) else int(result is not None))
        if time.monotonic() > stop:
            break
    node_ms = await node_cpu_ms(client) - before
    latencies.sort()
    count = len(latencies)
    p99 = latencies[max(int(count * 0.99) - 1, 0)]
    p50, found = statistics.median(latencies), statistics.median(sizes)
    row = (f"| {name} | {count} | {p50 * 1000:,.0f} | {p99 * 1000:,.0f} | "
           f"{node_ms / count:,.0f} | {found:g} |")  # fmt: skip
    say(row)
    return row


async def measure(storage: ElasticStorage, data_end_ns: int, sampled: list[bytes],
                  prefix: str) -> list[str]:  # fmt: skip
    client = ElasticClient(dataclasses.replace(storage.config, timeout=3600.0))
    spans_index = f"{prefix}-jaeger-span-*"
    began = time.perf_counter()
    await client.request("POST", f"/{spans_index}/_refresh")
    await client.request("POST", f"/{spans_index}/_forcemerge", params={"max_num_segments": "1"})
    await client.request("POST", f"/{spans_index}/_refresh")
    lines = [f"force merge + refresh: {time.perf_counter() - began:,.0f} s"]
    count = (await client.request("GET", f"/{spans_index}/_count"))["count"]
    stats = await client.request("GET", f"/{spans_index}/_stats/store,docs,segments")
    for name, index in sorted(stats["indices"].items()):
        p = index["primaries"]
        size, docs = p["store"]["size_in_bytes"] / 1e6, p["docs"]["count"]
        lines.append(f"{name}: {size:,.0f} MB, {docs:,} Lucene docs, "
                     f"{p['segments']['count']} segments")  # fmt: skip
    store = stats["_all"]["primaries"]["store"]["size_in_bytes"]
    lines.append(f"spans {count:,}; primary store {store / 1e9:.2f} GB; "
                 f"{store / count:.0f} bytes/span")  # fmt: skip
    service = QueryService(storage)
    rng = random.Random(99)

    def search(lookback_ns: int, **fields: Any) -> Callable[[], Awaitable[object]]:
        def call() -> Awaitable[object]:
            # a fresh window each time, as the UI sends one: no request-cache hits either
            end = data_end_ns + rng.randrange(10**9)
            chosen = {k: v() if callable(v) else v for k, v in fields.items()}
            query = TraceQuery(start_min_ns=end - lookback_ns, start_max_ns=end, limit=20, **chosen)
            return service.find_traces_json(query)

        return call

    def svc() -> str:
        return f"svc-{rng.randrange(len(SERVICES))}"

    days2, hour = 48 * HOUR_NS, HOUR_NS
    shapes: list[tuple[str, int, dict[str, Any]]] = [
        ("service, 1 h", hour, {"service": svc}),
        ("service, 2 days", days2, {"service": svc}),
        ("service + operation, 2 days", days2,
         {"service": svc, "operation": lambda: f"op-{rng.randrange(50)}"}),
        ("service + http.status_code=500 (25% of spans), 2 days", days2,
         {"service": svc, "tags": lambda: {"http.status_code": "500"}}),
        ("service + user.id (0.1% of spans), 2 days", days2,
         {"service": svc, "tags": lambda: {"user.id": f"u-{rng.randrange(1000)}"}}),
        ("service + error=true (2.5%), 2 days", days2,
         {"service": svc, "tags": lambda: {"error": "true"}}),
        ("service + duration 100-500 ms, 2 days", days2,
         {"service": svc, "duration_min_ns": 100 * 10**6, "duration_max_ns": 500 * 10**6}),
        ("no service, user.id (0.1%), 2 days", days2,
         {"tags": lambda: {"user.id": f"u-{rng.randrange(1000)}"}}),
        ("service + user.id (0.1%), 1 h", hour,
         {"service": svc, "tags": lambda: {"user.id": f"u-{rng.randrange(1000)}"}}),
    ]  # fmt: skip
    lines.append("| query | n | p50 ms | p99 ms | node CPU ms/query | traces found (median) |")
    lines.append("|---|---|---|---|---|---|")
    began = time.perf_counter()
    for _ in range(WARMUP):  # the node compiles its search code (full JIT) before timing starts
        for _, lookback, fields in shapes:
            await search(lookback, **fields)()
        await service.get_trace_json(rng.choice(sampled))
    say(f"warm-up: {WARMUP} queries of each shape in {time.perf_counter() - began:.0f} s")
    for name, lookback, fields in shapes:
        lines.append(await timed(name, client, [search(lookback, **fields)] * QUERIES))
    ids = rng.sample(sampled, min(len(sampled), 200))
    by_id = [functools.partial(service.get_trace_json, t) for t in ids]
    lines.append(await timed("trace by id (no window: every daily index)", client, by_id))
    lines.append(await timed("services", client, [service.services] * QUERIES))
    lines.append(await timed("operations of a service", client,
                             [lambda: service.operations(svc())] * QUERIES))  # fmt: skip
    await client.close()
    return lines


# ---- main --------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, url: str, sampler: LoadSampler) -> None:
    """The fill takes the oldest spans, the writer runs the newest, so time order holds and a
    phase cut short by its deadline only ends the data earlier."""
    prefix = "bench10m"
    config = bench_config(url, prefix)
    storage = ElasticStorage(config)
    await storage.start()
    now = time.time_ns()
    plan = Plan(args.spans // SPANS_PER_TRACE, now - int(args.hours * HOUR_NS), now)
    sampled: list[bytes] = []
    writer_traces = args.writer_spans // SPANS_PER_TRACE
    began = time.monotonic()
    fill_to = plan.traces - args.writer_runs * writer_traces
    filled = await fill(config, storage, plan, 0, fill_to,
                        args.fill_until, sampled)  # fmt: skip
    shown = ", ".join(f"{k} {v:,.1f}" for k, v in filled.items())
    say(f"fill: {shown}; load {sampler.between(began, time.monotonic())}")
    next_trace = int(filled["traces_end"])
    last_wall = 0.0
    for run in range(args.writer_runs):
        if time.time() + last_wall > args.writer_until:
            say(f"writer run {run + 1} skipped: it would end after --writer-until")
            break
        began = time.monotonic()
        result = await writer_run(storage, plan, next_trace, writer_traces, sampled)
        next_trace += writer_traces
        last_wall = time.monotonic() - began
        shown = ", ".join(f"{k} {v:,.1f}" for k, v in result.items())
        say(f"writer run {run + 1}: {shown}; load {sampler.between(began, time.monotonic())}")
    data_end = plan.trace_start(next_trace, random.Random(0))
    began = time.monotonic()
    for line in await measure(storage, data_end, sampled, prefix):
        say(line)
    say(f"measure: load {sampler.between(began, time.monotonic())}")
    await storage.close()


def utc_today_at(clock: str) -> float:
    """`HH:MM` today (UTC) as a Unix time; empty: a day from now."""
    if not clock:
        return time.time() + 86400
    hours, minutes = map(int, clock.split(":"))
    now = datetime.datetime.now(datetime.UTC)
    return now.replace(hour=hours, minute=minutes, second=0, microsecond=0).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--writer-spans", type=int, default=1_000_000)
    parser.add_argument("--writer-runs", type=int, default=3)
    parser.add_argument("--hours", type=float, default=47.0, help="span start times cover this")
    parser.add_argument("--heap", default="4g")
    parser.add_argument("--fill-until", default="", help="UTC HH:MM: the fill stops then")
    parser.add_argument("--writer-until", default="",
                        help="UTC HH:MM: no writer run that would end later starts")  # fmt: skip
    args = parser.parse_args()
    args.fill_until = utc_today_at(args.fill_until)
    args.writer_until = utc_today_at(args.writer_until)
    kind, version = node_spec()
    node = SearchNode(kind, version, java_options=f"-Xms{args.heap} -Xmx{args.heap}")
    sampler = LoadSampler()
    node.start()
    say(f"{kind} {version} up in {node.startup_seconds:.1f}s, heap {args.heap}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    try:
        asyncio.run(bench(args, node.url, sampler))
    finally:
        sampler.stop()
        node.remove()


if __name__ == "__main__":
    main()
