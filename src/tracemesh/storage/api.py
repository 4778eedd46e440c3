"""The storage contract every backend implements, and the capabilities it declares.

A backend is a `Storage`: constructing it does no I/O; `start()` opens or connects; `check()`
reports health; `close()` flushes and releases. It hands out one writer and split readers.
The query service is the one place that adapts or refuses a query a backend cannot answer;
backends never answer a query they cannot do silently wrong — they declare it in `Capabilities`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tracemesh.model.batch import SpanBatch
from tracemesh.model.dependency import DependencyLink
from tracemesh.model.query import Operation, TraceQuery
from tracemesh.model.span import Span, SpanKind


class StorageError(Exception):
    """The backend failed; the caller may retry. Shown as HTTP 500 / gRPC UNAVAILABLE."""


class StorageFullError(StorageError):
    """The backend refused the write for lack of room; retryable later."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    search_without_service: bool = False  # FindTraces with an empty service name
    span_kind_in_operations: bool = True  # operations carry their span kind
    tag_regex: bool = False  # tag values are matched as regular expressions (Elasticsearch)
    computes_dependencies: bool = True  # links come from stored spans, no external job
    persistent: bool = False  # survives a restart
    shared_between_processes: bool = False  # a separate `query` process can read it


class SpanWriter(Protocol):
    async def write(self, batch: SpanBatch) -> None:
        """Store every span in the batch. When this returns the spans are readable (and durable,
        for a persistent backend). Writing the same span twice is harmless: readers may return both
        copies and the query service drops exact duplicates. Raises StorageError on failure, in
        which case none, some or all spans may be stored: the caller retries the whole batch."""


class TraceReader(Protocol):
    async def get_trace(
        self, trace_id: bytes, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[Span]:
        """All spans of one trace in arrival order, duplicates included; an empty list when the
        trace is unknown (not an error). `start_ns`/`end_ns` are hints a backend may use to
        narrow where it looks."""
        ...

    async def find_traces(self, query: TraceQuery) -> list[list[Span]]:
        """Whole traces (every span, not only matching ones) of which at least one span matches,
        newest first, at most `query.limit`. An empty list when nothing matches."""
        ...

    async def get_services(self) -> list[str]:
        """Every service name that has spans, sorted."""
        ...

    async def get_operations(
        self, service: str, span_kind: SpanKind | None = None
    ) -> list[Operation]:
        """Operations of `service` (of one span kind when given), sorted by name then kind;
        an empty list for an unknown service."""
        ...


class DependencyReader(Protocol):
    async def get_dependencies(self, end_ns: int, lookback_ns: int) -> list[DependencyLink]:
        """Parent-service -> child-service call counts from spans that started in
        [end_ns - lookback_ns, end_ns], one link per (parent, child), sorted."""
        ...


class Storage(Protocol):
    name: str
    capabilities: Capabilities

    async def start(self) -> None: ...

    async def check(self) -> bool:
        """True when the backend can serve reads and writes now."""
        ...

    async def close(self) -> None: ...

    def writer(self) -> SpanWriter: ...

    def reader(self) -> TraceReader: ...

    def dependency_reader(self) -> DependencyReader: ...
