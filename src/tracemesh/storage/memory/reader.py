"""Reads of the memory backend: traces by id, search, services, operations and dependencies.

Long scans walk the trace ring newest first a chunk at a time and hand the event loop back between
chunks, so that ingest keeps flowing during a search. A chunk is examined without a pause, so a
reader never sees part of a written batch. Whatever a reader keeps across a pause it first
resolves to objects (`_resolve`): origin numbers are reused once freed.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from operator import itemgetter

from tracemesh.codecs.otlp_proto import span_from_row
from tracemesh.model.dependency import DependencyLink
from tracemesh.model.ids import SPAN_ID_SIZE, ZERO_SPAN_ID
from tracemesh.model.query import Operation, TraceQuery
from tracemesh.model.span import Resource, Scope, Span, SpanKind
from tracemesh.storage.memory.search import TraceFilter
from tracemesh.storage.memory.store import MemoryStore, Origin, TraceEntry

_id_and_origin = itemgetter(7, 6)  # (span id, origin number) of a StoredSpan
TRACES_PER_PAUSE = 2048  # 5-30 ms of scanning between two turns of the event loop
SPANS_PER_PAUSE = 512  # 5-20 ms of decoding

ResolvedSpan = tuple[bytes, Origin]


class MemoryReader:
    """The `TraceReader` of the memory backend."""

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

    async def get_trace_otlp(
        self, trace_id: bytes, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[tuple[bytes, Resource, Scope]]:
        """`get_trace` without the decoding: each span's stored OTLP bytes with its resource and
        scope, which are the store's own (the caller reads them, never changes them). The query
        service's fast path (`query.trace_json`) renders these straight to JSON."""
        if len(trace_id) == SPAN_ID_SIZE:
            trace_id = ZERO_SPAN_ID + trace_id
        entry = self._store.traces.get(trace_id)
        if entry is None:
            return []
        resolved = _resolve(self._store, entry)
        return [(raw, origin.resource, origin.scope) for raw, origin in resolved]

    async def find_traces(self, query: TraceQuery) -> list[list[Span]]:
        copies: dict[Origin, tuple[Resource, Scope]] = {}
        return [await _decode(spans, copies) for spans in await self._find(query)]

    async def find_traces_otlp(
        self, query: TraceQuery
    ) -> list[list[tuple[bytes, Resource, Scope]]]:
        """`find_traces` without the decoding, as `get_trace_otlp` gives one trace."""
        found = await self._find(query)
        return [[(raw, origin.resource, origin.scope) for raw, origin in spans] for spans in found]

    async def _find(self, query: TraceQuery) -> list[list[ResolvedSpan]]:
        if query.limit <= 0:
            return []
        search = TraceFilter(query)
        found: list[tuple[int, list[ResolvedSpan]]] = []
        before = self._store.added
        while chunk := self._store.newest_first(before, TRACES_PER_PAUSE):
            for entry in search.matching(chunk, self._store.origins):
                found.append((entry.min_start, _resolve(self._store, entry)))
                if len(found) == query.limit:
                    break
            if len(found) == query.limit:
                break
            before -= TRACES_PER_PAUSE
            await asyncio.sleep(0)  # traces that arrive meanwhile are not visited
        found.sort(key=lambda item: item[0], reverse=True)  # stable: ties stay newest-arrival first
        return [spans for _, spans in found]

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
        before = self._store.added
        while chunk := self._store.newest_first(before, TRACES_PER_PAUSE):
            # Counted by origin number first (cheap ints), named before the next pause.
            pairs = Counter(_calls(chunk, begin_ns, end_ns))
            origins = self._store.origins
            for (parent, child), count in pairs.items():
                parent_origin, child_origin = origins[parent], origins[child]
                assert parent_origin is not None and child_origin is not None
                calls[parent_origin.service, child_origin.service] += count
            before -= TRACES_PER_PAUSE
            await asyncio.sleep(0)
        links = sorted(calls.items())
        return [DependencyLink(parent, child, count) for (parent, child), count in links]


def _calls(entries: list[TraceEntry], begin_ns: int, end_ns: int) -> list[tuple[int, int]]:
    """(parent origin, child origin) for every span in the window whose parent is in its trace."""
    found: list[tuple[int, int]] = []
    for entry in entries:
        if entry.max_start < begin_ns or entry.min_start > end_ns:
            continue
        spans = entry.spans
        # span id -> origin number; reversed, so that a duplicated id's first copy wins
        origin_of = dict(map(_id_and_origin, reversed(spans)))
        for _, start, _, _, _, _, number, _, parent in spans:
            if parent and begin_ns <= start <= end_ns and parent in origin_of:
                found.append((origin_of[parent], number))
    return found


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
