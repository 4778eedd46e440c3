"""Reads of the memory backend: traces by id, search, services, operations and dependencies.

Long scans hand the event loop back every few thousand traces so that ingest keeps flowing during
a search. They walk a snapshot of the trace list, and each trace is examined without a pause, so
a reader never sees part of a written batch within one trace. Whatever a reader keeps across a
pause it first resolves to objects (`_resolve`): origin numbers are reused once freed.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter

from tracemesh.codecs.otlp_proto import span_from_row
from tracemesh.model.dependency import DependencyLink
from tracemesh.model.ids import SPAN_ID_SIZE, ZERO_SPAN_ID
from tracemesh.model.query import Operation, TraceQuery
from tracemesh.model.span import Resource, Scope, Span, SpanKind
from tracemesh.storage.memory.search import TraceFilter
from tracemesh.storage.memory.store import MemoryStore, Origin, TraceEntry

TRACES_PER_PAUSE = 2048  # a few ms of scanning between two turns of the event loop
SPANS_PER_PAUSE = 512  # ~5 ms of decoding

ResolvedSpan = tuple[bytes, Origin]


class MemoryReader:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def get_trace(
        self, trace_id: bytes, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[Span]:
        if len(trace_id) == SPAN_ID_SIZE:  # a 64-bit id: stored with a zero high half
            trace_id = ZERO_SPAN_ID + trace_id
        entry = self._store.traces.get(trace_id)
        if entry is None:
            return []
        return await _decode(_resolve(self._store, entry), {})

    async def find_traces(self, query: TraceQuery) -> list[list[Span]]:
        if query.limit <= 0:
            return []
        search = TraceFilter(query)
        snapshot = _newest_first(self._store)
        found: list[tuple[int, list[ResolvedSpan]]] = []
        for begin in range(0, len(snapshot), TRACES_PER_PAUSE):
            chunk = snapshot[begin : begin + TRACES_PER_PAUSE]
            for entry in search.matching(chunk, self._store.origins):
                found.append((entry.min_start, _resolve(self._store, entry)))
                if len(found) == query.limit:
                    break
            if len(found) == query.limit:
                break
            await asyncio.sleep(0)
        found.sort(key=lambda item: item[0], reverse=True)  # stable: ties stay newest-arrival first
        copies: dict[Origin, tuple[Resource, Scope]] = {}
        return [await _decode(spans, copies) for _, spans in found]

    async def get_services(self) -> list[str]:
        return sorted(self._store.operations)

    async def get_operations(
        self, service: str, span_kind: SpanKind | None = None
    ) -> list[Operation]:
        pairs = self._store.operations.get(service, set())
        return [
            Operation(name, SpanKind(kind))
            for name, kind in sorted(pairs)
            if span_kind is None or kind == span_kind
        ]


class MemoryDependencyReader:
    """Links computed on the fly as Jaeger's v2 memory store does: every span whose parent is in
    the same trace counts one call parent-service -> span-service, same-service pairs included."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def get_dependencies(self, end_ns: int, lookback_ns: int) -> list[DependencyLink]:
        begin_ns = end_ns - lookback_ns
        calls: Counter[tuple[str, str]] = Counter()
        snapshot = _newest_first(self._store)
        for begin in range(0, len(snapshot), TRACES_PER_PAUSE):
            for entry in snapshot[begin : begin + TRACES_PER_PAUSE]:
                if entry.max_start >= begin_ns and entry.min_start <= end_ns:
                    self._count_calls(entry, begin_ns, end_ns, calls)
            await asyncio.sleep(0)
        links = sorted(calls.items())
        return [DependencyLink(parent, child, count) for (parent, child), count in links]

    def _count_calls(
        self, entry: TraceEntry, begin_ns: int, end_ns: int, calls: Counter[tuple[str, str]]
    ) -> None:
        origins = self._store.origins
        service_of: dict[bytes, int] = {}  # span id -> origin number; a duplicate's first copy wins
        for _, _, _, _, _, _, number, span_id, _ in reversed(entry.spans):
            service_of[span_id] = number
        for _, start, _, _, _, _, number, _, parent in entry.spans:
            if parent and begin_ns <= start <= end_ns:
                parent_number = service_of.get(parent)
                if parent_number is not None:
                    parent_origin, origin = origins[parent_number], origins[number]
                    assert parent_origin is not None and origin is not None
                    calls[parent_origin.service, origin.service] += 1


def _newest_first(store: MemoryStore) -> list[TraceEntry]:
    return list(reversed(store.traces.values()))


def _resolve(store: MemoryStore, entry: TraceEntry) -> list[ResolvedSpan]:
    origins = store.origins
    resolved: list[ResolvedSpan] = []
    for raw, _, _, _, _, _, number, _, _ in entry.spans:
        origin = origins[number]
        assert origin is not None  # a stored span keeps its origin alive
        resolved.append((raw, origin))
    return resolved


async def _decode(
    spans: list[ResolvedSpan], copies: dict[Origin, tuple[Resource, Scope]]
) -> list[Span]:
    """Spans as model objects. Each call gets its own copies of the stored resources and scopes,
    so a caller that edits a returned span cannot change what is stored."""
    out: list[Span] = []
    for index, (raw, origin) in enumerate(spans):
        shared = copies.get(origin)
        if shared is None:
            shared = copies[origin] = (copy.deepcopy(origin.resource), copy.deepcopy(origin.scope))
        out.append(span_from_row(raw, *shared))
        if index % SPANS_PER_PAUSE == SPANS_PER_PAUSE - 1:
            await asyncio.sleep(0)
    return out
