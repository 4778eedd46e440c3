"""QueryService over a real MemoryStorage: adjusting, capability checks, summaries, dependencies."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.query.traces import (
    START_NS,
    TRACE_A,
    TRACE_B,
    Declaring,
    memory_storage,
    sid,
    trace_a,
    trace_b,
)
from tracemesh.model.dependency import DependencyLink
from tracemesh.model.query import TraceQuery
from tracemesh.model.span import SpanKind
from tracemesh.query.service import (
    SERVICE_REQUIRED,
    QueryError,
    QueryService,
    ServiceSummary,
    merge_dependencies,
    summarize,
)


def test_get_trace_adjusts_unless_raw() -> None:
    service = QueryService(memory_storage(trace_b()))
    adjusted = asyncio.run(service.get_trace(TRACE_B))
    raw = asyncio.run(service.get_trace(TRACE_B, raw=True))
    assert adjusted is not None and raw is not None
    assert [s.span_id for s in adjusted] == [sid(0x20), sid(0x21), sid(1)]
    assert [s.span_id for s in raw] == [sid(0x20), sid(0x21), sid(0x21)]
    assert asyncio.run(service.get_trace(bytes(15) + b"\x09")) is None


def test_get_traces_in_order_asked_each_once() -> None:
    service = QueryService(memory_storage(trace_a(), trace_b()))
    missing = bytes(15) + b"\x09"
    found = asyncio.run(service.get_traces([TRACE_B, missing, TRACE_A, TRACE_B]))
    assert [(trace_id, spans is not None) for trace_id, spans in found] == [
        (TRACE_B, True),
        (missing, False),
        (TRACE_A, True),
    ]


def test_search_without_service_per_capability() -> None:
    storage = memory_storage(trace_a())
    assert len(asyncio.run(QueryService(storage).find_traces(TraceQuery()))) == 1
    refusing = QueryService(Declaring(storage, search_without_service=False))
    with pytest.raises(QueryError, match=SERVICE_REQUIRED):
        asyncio.run(refusing.find_traces(TraceQuery()))
    with pytest.raises(QueryError):
        asyncio.run(refusing.find_trace_summaries(TraceQuery()))


def test_operations_without_kinds_are_adapted() -> None:
    storage = memory_storage(trace_a())
    servers = asyncio.run(QueryService(storage).operations("frontend", SpanKind.SERVER))
    assert [op.name for op in servers] == ["GET /"]
    kindless = QueryService(Declaring(storage, span_kind_in_operations=False))
    every = asyncio.run(kindless.operations("frontend", SpanKind.SERVER))
    assert [op.name for op in every] == ["GET /", "call backend"]


def test_summarize() -> None:
    summary = summarize(trace_a())
    assert summary.trace_id == TRACE_A
    assert (summary.root_service_name, summary.root_operation_name) == ("frontend", "GET /")
    assert (summary.min_start_ns, summary.max_end_ns) == (START_NS, START_NS + 9_000_000)
    assert (summary.span_count, summary.error_span_count, summary.orphan_span_count) == (3, 1, 0)
    assert summary.services == (ServiceSummary("backend", 1, 1), ServiceSummary("frontend", 2, 0))


def test_merge_dependencies() -> None:
    links = [
        DependencyLink("a", "b", 2),
        DependencyLink("c", "d", 1),
        DependencyLink("a", "b", 3, source="other"),
    ]
    assert merge_dependencies(links) == [DependencyLink("a", "b", 5), DependencyLink("c", "d", 1)]
    assert merge_dependencies(links, "d") == [DependencyLink("c", "d", 1)]
