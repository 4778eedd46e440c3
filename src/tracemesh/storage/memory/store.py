"""The in-memory trace table: whole traces in arrival order of their first span, plus the service
and operation registry, sized to stay under ~1 KB of RAM per stored span.

A stored span is one flat tuple (see `StoredSpan`) holding the OTLP bytes and the few columns that
search and dependencies read; nothing is decoded at write time. The tuple refers to its resource
and scope by the number of a shared `Origin`, not by reference: a tuple of only bytes, ints and
strs is dropped from the garbage collector's watch, so a million stored spans do not make every
full collection walk a million objects (453 ms against 56 ms per collection, see README).
Origins are interned across batches, so a client sending one span per request does not pay for a
copy of its resource with every span, and freed when their last span is evicted.
"""

from __future__ import annotations

from collections import Counter
from operator import itemgetter
from typing import TypeAlias

from tracemesh.model.attributes import Attributes, AttrValue, value_to_text
from tracemesh.model.batch import SpanBatch
from tracemesh.model.span import Resource, Scope


class Origin:
    """A Resource and Scope shared by stored spans, with their attributes' text forms cached for
    tag search (computed on the first search that needs them)."""

    __slots__ = (
        "_resource_text",
        "_scope_text",
        "index",
        "key",
        "operations",
        "resource",
        "scope",
        "service",
        "span_count",
    )

    def __init__(
        self,
        resource: Resource,
        scope: Scope,
        service: str,
        operations: set[tuple[str, int]],
        key: object,
        index: int,
    ) -> None:
        self.resource = resource
        self.scope = scope
        self.service = service
        self.operations = operations  # the service's (name, kind) registry, shared
        self.key = key  # what interned it
        self.index = index  # its number in `MemoryStore.origins`, reused once it is freed
        self.span_count = 0  # stored spans that refer to it
        self._resource_text: dict[str, str] | None = None
        self._scope_text: dict[str, str] | None = None

    def resource_text(self) -> dict[str, str]:
        if self._resource_text is None:
            self._resource_text = _text_form(self.resource.attributes)
        return self._resource_text

    def scope_text(self) -> dict[str, str]:
        if self._scope_text is None:
            self._scope_text = _text_form(self.scope.attributes)
        return self._scope_text


# (raw OTLP Span bytes, start_ns, end_ns, name, kind, status_code, origin number, span_id,
#  parent_span_id). An origin number is only meaningful until the event loop next runs: readers
# that pause resolve it (`MemoryStore.origins`) first, since a freed number is handed out again.
StoredSpan: TypeAlias = tuple[bytes, int, int, str, int, int, int, bytes, bytes]
_origin_number = itemgetter(6)  # of a StoredSpan


class TraceEntry:
    """One trace: its spans in arrival order and the summary columns that let search skip it."""

    __slots__ = ("max_start", "min_start", "services", "spans", "trace_id")

    def __init__(self, trace_id: bytes, start_ns: int) -> None:
        self.trace_id = trace_id
        self.spans: list[StoredSpan] = []
        self.services: tuple[str, ...] = ()  # interned names, usually one to five
        self.min_start = start_ns
        self.max_start = start_ns


class MemoryStore:
    """Traces by 16-byte id, and in a ring by arrival of their first span, as Jaeger keeps them.

    The n-th trace ever added (its sequence number) sits in `ring[n % max_traces]` until the
    (n + max_traces)-th takes its place and evicts it. Readers walk the ring newest first by
    sequence number, which stays meaningful across pauses, unlike an iterator over a dict.
    """

    def __init__(self, max_traces: int) -> None:
        self.max_traces = max_traces  # 0: no limit, the ring only grows
        self.traces: dict[bytes, TraceEntry] = {}
        self.added = 0  # traces ever added: the next one's sequence number
        self.operations: dict[str, set[tuple[str, int]]] = {}  # kept after eviction, like Jaeger
        self.span_count = 0
        self.origins: list[Origin | None] = []  # by number; None marks a free number
        self._ring: list[TraceEntry] = []  # grows to max_traces, then wraps
        self._free_origins: list[int] = []
        self._names: dict[str, str] = {}  # interned service and operation names
        self._interned: dict[object, Origin] = {}

    def add(self, batch: SpanBatch) -> None:
        """Store every row; synchronous, so a reader on the same event loop sees all or none."""
        traces = self.traces
        names = self._names
        for group in batch.groups:
            if not group.rows:  # an origin with no spans would never be freed
                continue
            origin = self._origin(group.resource, group.scope)
            number, service, operations = origin.index, origin.service, origin.operations
            rows = group.rows
            origin.span_count += len(rows)  # before any eviction below can decrement it
            self.span_count += len(rows)
            for trace_id, span_id, parent, name, kind, start, end, status, raw in rows:
                if not 0 <= kind <= 5:  # an enum value newer than our model reads as unspecified
                    kind = 0
                name = names.setdefault(name, name)
                operations.add((name, kind))
                entry = traces.get(trace_id)
                if entry is None:
                    entry = traces[trace_id] = self._new_trace(trace_id, start)
                elif start < entry.min_start:
                    entry.min_start = start
                elif start > entry.max_start:
                    entry.max_start = start
                if service not in entry.services:
                    entry.services += (service,)
                entry.spans.append((raw, start, end, name, kind, status, number, span_id, parent))

    def newest_first(self, before: int, count: int) -> list[TraceEntry]:
        """Up to `count` held traces with sequence numbers below `before`, newest first. Numbers
        below the oldest held trace are simply absent: those traces were evicted."""
        low = max(before - count, self.added - len(self._ring))
        if low >= before:
            return []
        ring = self._ring
        if not self.max_traces:
            return ring[low:before][::-1]
        size = self.max_traces
        first, last = low % size, (before - 1) % size
        part = ring[first : last + 1] if first <= last else ring[first:] + ring[: last + 1]
        return part[::-1]

    def clear(self) -> None:
        self.traces.clear()
        self._ring.clear()
        self.added = 0
        self.operations.clear()
        self.origins.clear()
        self._free_origins.clear()
        self._names.clear()
        self._interned.clear()
        self.span_count = 0

    def _new_trace(self, trace_id: bytes, start_ns: int) -> TraceEntry:
        entry = TraceEntry(trace_id, start_ns)
        ring = self._ring
        if not self.max_traces or len(ring) < self.max_traces:
            ring.append(entry)
        else:
            slot = self.added % self.max_traces
            self._evict(ring[slot])
            ring[slot] = entry
        self.added += 1
        return entry

    def _evict(self, oldest: TraceEntry) -> None:
        del self.traces[oldest.trace_id]
        self.span_count -= len(oldest.spans)
        for number, count in Counter(map(_origin_number, oldest.spans)).items():
            origin = self.origins[number]
            assert origin is not None
            origin.span_count -= count
            if not origin.span_count:
                self._free(origin)
        # A reader holding the entry in a chunk it is scanning sees an empty trace, which matches
        # nothing and names no freed origin.
        oldest.spans.clear()

    def _origin(self, resource: Resource, scope: Scope) -> Origin:
        key = origin_key(resource, scope)
        origin = self._interned.get(key)
        if origin is None:
            service = resource.service_name
            service = self._names.setdefault(service, service)
            operations = self.operations.setdefault(service, set())
            number = self._free_origins.pop() if self._free_origins else len(self.origins)
            origin = Origin(resource, scope, service, operations, key, number)
            if number == len(self.origins):
                self.origins.append(origin)
            else:
                self.origins[number] = origin
            self._interned[key] = origin
        return origin

    def _free(self, origin: Origin) -> None:
        del self._interned[origin.key]
        self.origins[origin.index] = None
        self._free_origins.append(origin.index)


def _text_form(attributes: Attributes) -> dict[str, str]:
    return {key: value_to_text(value) for key, value in attributes.items()}


def origin_key(resource: Resource, scope: Scope) -> object:
    return (
        _frozen(resource.attributes),
        resource.dropped_attributes_count,
        resource.schema_url,
        scope.name,
        scope.version,
        _frozen(scope.attributes),
        scope.dropped_attributes_count,
        scope.schema_url,
    )


def _frozen(attributes: Attributes) -> tuple[object, ...]:
    return tuple((key, _frozen_value(value)) for key, value in attributes.items())


def _frozen_value(value: AttrValue) -> object:
    # The type goes into the key because True == 1 == 1.0 would otherwise share one origin.
    if isinstance(value, list):
        return (list, tuple(_frozen_value(v) for v in value))
    if isinstance(value, dict):
        return (dict, _frozen(value))
    return (type(value), value)
