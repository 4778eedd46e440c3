"""The query service: the one place that reads storage for the APIs, refuses or adapts queries the
backend cannot answer (per its `Capabilities`), and applies the query-side adjusters.

What it adapts or refuses:

* a search without a service name, on a backend without `search_without_service`: refused with
  Jaeger's message (`QueryError`, shown as HTTP 400 / gRPC INVALID_ARGUMENT);
* operations of one span kind, on a backend without `span_kind_in_operations`: all operations of
  the service are returned (the backend cannot tell kinds apart; the Monitor tab still works).

Errors from storage (`StorageError`) pass through; the HTTP layer shows them as 500.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import anyio

from tracemesh.codecs.jaeger_json import JSON, trace_json, traces_json
from tracemesh.model.dependency import DependencyLink
from tracemesh.model.query import Operation, TraceQuery
from tracemesh.model.span import Span, SpanKind, StatusCode
from tracemesh.query.adjusters import STANDARD_ADJUSTERS, Adjuster, adjust
from tracemesh.query.trace_json import ACCELERATED, OTLPSpan, OTLPTraceReader, render_otlp
from tracemesh.storage.api import Capabilities, Storage

SERVICE_REQUIRED = (
    "this storage backend requires a service name to search; "
    "searching all services is not supported"
)


class QueryError(Exception):
    """The query cannot be answered as asked, by this backend or at all (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class ServiceSummary:
    name: str
    span_count: int
    error_span_count: int


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """api_v3's TraceSummary, computed from an adjusted trace the way Jaeger's query service does:
    the root is the earliest-starting span without a parent, errors are spans with status ERROR,
    orphans are spans whose parent is not in the trace, services are sorted by name."""

    trace_id: bytes
    root_service_name: str
    root_operation_name: str
    min_start_ns: int
    max_end_ns: int
    span_count: int
    error_span_count: int
    orphan_span_count: int
    services: tuple[ServiceSummary, ...]


def summarize(spans: Sequence[Span]) -> TraceSummary:
    span_ids = {span.span_id for span in spans}
    per_service: dict[str, list[int]] = {}
    root: Span | None = None
    orphans = errors = 0
    for span in spans:
        counts = per_service.setdefault(span.service_name, [0, 0])
        counts[0] += 1
        if span.status.code is StatusCode.ERROR:
            counts[1] += 1
            errors += 1
        if not span.parent_span_id:
            if root is None or span.start_ns < root.start_ns:
                root = span
        elif span.parent_span_id not in span_ids:
            orphans += 1
    return TraceSummary(
        trace_id=spans[0].trace_id,
        root_service_name=root.service_name if root else "",
        root_operation_name=root.name if root else "",
        min_start_ns=min(span.start_ns for span in spans),
        max_end_ns=max(span.end_ns for span in spans),
        span_count=len(spans),
        error_span_count=errors,
        orphan_span_count=orphans,
        services=tuple(
            ServiceSummary(name, count, error_count)
            for name, (count, error_count) in sorted(per_service.items())
        ),
    )


def merge_dependencies(links: Iterable[DependencyLink], service: str = "") -> list[DependencyLink]:
    """One link per (parent, child) with call counts summed, in order of first appearance; with
    `service`, only links whose parent or child is that service (Jaeger's `/api/dependencies`)."""
    merged: dict[tuple[str, str], int] = {}
    for link in links:
        if service and service not in (link.parent, link.child):
            continue
        key = (link.parent, link.child)
        merged[key] = merged.get(key, 0) + link.call_count
    return [DependencyLink(parent, child, count) for (parent, child), count in merged.items()]


def _render_all(traces: list[list[OTLPSpan]]) -> list[JSON]:
    return [render_otlp(spans) for spans in traces if spans]


class QueryService:
    def __init__(self, storage: Storage, adjusters: Sequence[Adjuster] = STANDARD_ADJUSTERS):
        self._storage = storage
        self._adjusters = tuple(adjusters)

    @property
    def capabilities(self) -> Capabilities:
        return self._storage.capabilities

    def _adjusted(self, spans: Sequence[Span], raw: bool) -> list[Span]:
        return list(spans) if raw else adjust(spans, self._adjusters)

    async def get_trace(
        self,
        trace_id: bytes,
        raw: bool = False,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> list[Span] | None:
        """The trace's spans (adjusted unless `raw`), or None when storage has none of them."""
        spans = await self._storage.reader().get_trace(trace_id, start_ns, end_ns)
        if not spans:
            return None
        # A 40,000-span trace takes a while to adjust: in a worker thread, the event loop keeps
        # answering other requests and taking spans meanwhile.
        return await anyio.to_thread.run_sync(self._adjusted, spans, raw)

    async def get_trace_json(
        self,
        trace_id: bytes,
        raw: bool = False,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> JSON | None:
        """`jaeger_json.trace_json` of `get_trace`, or None when storage has none of the spans.

        From a backend that keeps OTLP bytes, the C fast path renders them without decoding
        (`query.trace_json`: ~8x less CPU); whatever it declines takes the reference path.
        """
        reader = self._storage.reader()
        if self._fast(raw) and isinstance(reader, OTLPTraceReader):
            stored = await reader.get_trace_otlp(trace_id, start_ns, end_ns)
            if not stored:
                return None
            return await anyio.to_thread.run_sync(render_otlp, stored)
        spans = await self.get_trace(trace_id, raw, start_ns=start_ns, end_ns=end_ns)
        if spans is None:
            return None
        return await anyio.to_thread.run_sync(trace_json, spans)

    async def get_traces(
        self,
        trace_ids: Sequence[bytes],
        raw: bool = False,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> list[tuple[bytes, list[Span] | None]]:
        """Each distinct id once, in the order asked, with its trace or None when not found."""
        return [
            (trace_id, await self.get_trace(trace_id, raw, start_ns=start_ns, end_ns=end_ns))
            for trace_id in dict.fromkeys(trace_ids)
        ]

    def check_search(self, query: TraceQuery) -> None:
        if not query.service and not self.capabilities.search_without_service:
            raise QueryError(SERVICE_REQUIRED)

    async def find_traces(self, query: TraceQuery, raw: bool = False) -> list[list[Span]]:
        """Matching traces, newest first, at most `query.limit`; refused per capabilities."""
        self.check_search(query)
        traces = await self._storage.reader().find_traces(query)
        return await anyio.to_thread.run_sync(self._adjusted_all, traces, raw)

    async def find_traces_json(self, query: TraceQuery, raw: bool = False) -> list[JSON]:
        """`jaeger_json.traces_json` of `find_traces`, by the fast path where it can."""
        self.check_search(query)
        reader = self._storage.reader()
        if self._fast(raw) and isinstance(reader, OTLPTraceReader):
            found = await reader.find_traces_otlp(query)
            return await anyio.to_thread.run_sync(_render_all, found)
        traces = await self.find_traces(query, raw)
        return await anyio.to_thread.run_sync(traces_json, traces)

    def _fast(self, raw: bool) -> bool:
        """Whether the fast path's output is this service's: it applies the standard adjusters."""
        return not raw and ACCELERATED and self._adjusters == STANDARD_ADJUSTERS

    def _adjusted_all(self, traces: list[list[Span]], raw: bool) -> list[list[Span]]:
        return [self._adjusted(spans, raw) for spans in traces if spans]

    async def find_trace_summaries(self, query: TraceQuery) -> list[TraceSummary]:
        """Summaries of the matching traces, always computed from adjusted traces."""
        return [summarize(spans) for spans in await self.find_traces(query, raw=False)]

    async def services(self) -> list[str]:
        return await self._storage.reader().get_services()

    async def operations(self, service: str, span_kind: SpanKind | None = None) -> list[Operation]:
        if span_kind is not None and not self.capabilities.span_kind_in_operations:
            span_kind = None
        return await self._storage.reader().get_operations(service, span_kind)

    async def dependencies(
        self, end_ns: int, lookback_ns: int, service: str = ""
    ) -> list[DependencyLink]:
        links = await self._storage.dependency_reader().get_dependencies(end_ns, lookback_ns)
        return merge_dependencies(links, service)
