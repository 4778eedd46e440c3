"""Reads of the disk backend over blocks (oldest first = arrival order) and log heads.

A trace may be spread over several blocks and a head (its spans arrived minutes apart), so every
read that returns a trace gathers it from all of them. Searches look at the heads newest first,
then the blocks newest first, and stop at `limit` distinct traces, as the memory store does.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from typing import TYPE_CHECKING

from tracemesh.codecs.otlp_proto import span_from_row
from tracemesh.model.dependency import DependencyLink
from tracemesh.model.ids import SPAN_ID_SIZE, ZERO_SPAN_ID
from tracemesh.model.query import Operation, TraceQuery
from tracemesh.model.span import Resource, Scope, Span, SpanKind
from tracemesh.storage.disk.block import ORIGIN, RAW, SPAN_ID
from tracemesh.storage.disk.search import BlockSearch
from tracemesh.storage.disk.store import State
from tracemesh.storage.memory.store import Origin

if TYPE_CHECKING:
    from tracemesh.storage.disk.factory import DiskStorage

TRACES_PER_PAUSE = 2048
SPANS_PER_PAUSE = 512

Located = tuple[bytes, Origin]  # raw span bytes and the origin to decode them with


def locate(state: State, trace_id: bytes) -> list[Located]:
    """Every stored copy of the trace's spans, in arrival order; no pause in between."""
    found: list[Located] = []
    for block in state.blocks_oldest_first():
        ordinal = block.find(trace_id)
        if ordinal >= 0:
            first, end = block.trace_rows[ordinal], block.trace_rows[ordinal + 1]
            origins, raws = block.rows(first, end, (ORIGIN, RAW))
            found.extend((raw, block.origins[o]) for raw, o in zip(raws, origins, strict=True))
    for head in state.heads_oldest_first():
        entry = head.store.traces.get(trace_id)
        if entry is not None:
            origins_of = head.store.origins
            for raw, _, _, _, _, _, number, _, _ in entry.spans:
                origin = origins_of[number]
                assert origin is not None
                found.append((raw, origin))
    return found


async def decode(spans: list[Located]) -> list[Span]:
    """Model spans; each call gets its own copies of resources and scopes."""
    copies: dict[int, tuple[Resource, Scope]] = {}
    out: list[Span] = []
    for index, (raw, origin) in enumerate(spans):
        shared = copies.get(id(origin))
        if shared is None:
            shared = copies[id(origin)] = (
                copy.deepcopy(origin.resource),
                copy.deepcopy(origin.scope),
            )
        out.append(span_from_row(raw, *shared))
        if index % SPANS_PER_PAUSE == SPANS_PER_PAUSE - 1:
            await asyncio.sleep(0)
    return out


def _widen(trace_id: bytes) -> bytes:
    return ZERO_SPAN_ID + trace_id if len(trace_id) == SPAN_ID_SIZE else trace_id


class DiskReader:
    def __init__(self, storage: DiskStorage) -> None:
        self._storage = storage

    async def get_trace(
        self, trace_id: bytes, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[Span]:
        return await decode(locate(self._storage.view(), _widen(trace_id)))

    async def find_traces(self, query: TraceQuery) -> list[list[Span]]:
        if query.limit <= 0:
            return []
        state = self._storage.view()
        blocks = state.blocks_oldest_first()[::-1]
        heads = state.heads_oldest_first()[::-1]
        search = BlockSearch(query)
        found: dict[bytes, None] = {}
        for head in heads:
            store = head.store
            before = store.added
            while len(found) < query.limit:
                chunk = store.newest_first(before, TRACES_PER_PAUSE)
                if not chunk:
                    break
                for entry in search.filter.matching(chunk, store.origins):
                    found[entry.trace_id] = None
                    if len(found) == query.limit:
                        break
                before -= TRACES_PER_PAUSE
                await asyncio.sleep(0)
        for block in blocks:
            if len(found) >= query.limit:
                break
            # Ask for more than the room left: some may be traces already found elsewhere.
            for ordinal in search.traces(block, query.limit):
                found[block.trace_id(ordinal)] = None
                if len(found) == query.limit:
                    break
            await asyncio.sleep(0)
        traces: list[tuple[int, list[Span]]] = []
        state = self._storage.view()
        for trace_id in found:
            spans = await decode(locate(state, trace_id))
            if spans:  # gone if retention deleted it meanwhile
                traces.append((min(s.start_ns for s in spans), spans))
        traces.sort(key=lambda item: item[0], reverse=True)  # stable: ties keep search order
        return [spans for _, spans in traces]

    async def get_services(self) -> list[str]:
        state = self._storage.view()
        services: set[str] = set()
        for head in state.heads.values():
            services.update(name for name, ops in head.store.operations.items() if ops)
        for block in state.blocks.values():
            services.update(service for service, _, _ in block.operations)
        return sorted(services)

    async def get_operations(
        self, service: str, span_kind: SpanKind | None = None
    ) -> list[Operation]:
        state = self._storage.view()
        pairs: set[tuple[str, int]] = set()
        for head in state.heads.values():
            pairs.update(head.store.operations.get(service, ()))
        for block in state.blocks.values():
            pairs.update((name, kind) for s, name, kind in block.operations if s == service)
        return [
            Operation(name, SpanKind(kind))
            for name, kind in sorted(pairs)
            if span_kind is None or kind == span_kind
        ]


class DiskDependencyReader:
    """Links as the memory store computes them: every span that started in the window and whose
    parent is in its trace counts one call parent-service -> span-service. Within a block the
    links are counted from its precomputed summary (`links.py`); a parent in another block or a
    log head is looked up by trace id, the first copy (oldest block first, then heads) naming it."""

    def __init__(self, storage: DiskStorage) -> None:
        self._storage = storage

    async def get_dependencies(self, end_ns: int, lookback_ns: int) -> list[DependencyLink]:
        begin_ns = end_ns - lookback_ns
        state = self._storage.view()
        calls: Counter[tuple[str, str]] = Counter()
        unresolved: list[tuple[bytes, bytes, str]] = []  # (trace, parent id, service)
        for block in state.blocks_oldest_first():
            if block.max_start < begin_ns or block.min_start > end_ns:
                continue
            links = block.links() if block.links_ready else await asyncio.to_thread(block.links)
            links.count(begin_ns, end_ns, calls)
            unresolved += [(t, p, s) for _, t, p, s in links.unresolved_in(begin_ns, end_ns)]
            await asyncio.sleep(0)
        for head in state.heads_oldest_first():
            store = head.store
            for trace_id, entry in store.traces.items():
                if entry.max_start < begin_ns or entry.min_start > end_ns:
                    continue
                known: dict[bytes, str] = {}
                children: list[tuple[bytes, str]] = []
                for _, start, _, _, _, _, number, span_id, parent in entry.spans:
                    origin = store.origins[number]
                    assert origin is not None
                    known.setdefault(span_id, origin.service)
                    if parent and begin_ns <= start <= end_ns:
                        children.append((parent, origin.service))
                for parent, service in children:
                    caller = known.get(parent)
                    if caller is None:
                        unresolved.append((trace_id, parent, service))
                    else:
                        calls[caller, service] += 1
        traces: dict[bytes, dict[bytes, str]] = {}
        for trace_id, parent, service in unresolved:
            spans = traces.get(trace_id)
            if spans is None:
                spans = traces[trace_id] = _span_services(state, trace_id)
            caller = spans.get(parent)
            if caller is not None:
                calls[caller, service] += 1
        return [DependencyLink(p, c, n) for (p, c), n in sorted(calls.items())]


def _span_services(state: State, trace_id: bytes) -> dict[bytes, str]:
    """Span id -> service for every stored copy of the trace's spans, the first copy winning."""
    known: dict[bytes, str] = {}
    for block in state.blocks_oldest_first():
        ordinal = block.find(trace_id)
        if ordinal < 0:
            continue
        first, end = block.trace_rows[ordinal], block.trace_rows[ordinal + 1]
        span_ids, origins = block.rows(first, end, (SPAN_ID, ORIGIN))
        for span_id, origin in zip(span_ids, origins, strict=True):
            known.setdefault(span_id, block.origins[origin].service)
    for head in state.heads_oldest_first():
        entry = head.store.traces.get(trace_id)
        if entry is None:
            continue
        for _, _, _, _, _, _, number, span_id, _ in entry.spans:
            origin = head.store.origins[number]
            assert origin is not None
            known.setdefault(span_id, origin.service)
    return known
