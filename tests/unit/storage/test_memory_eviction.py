"""Memory backend: the ring of `max_traces` traces, evicting the oldest whole trace first."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.contract.harness import Backend
from tests.contract.traces import make_span, process, trace_id
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.model.query import TraceQuery
from tracemesh.storage.memory.config import MemoryConfig
from tracemesh.storage.memory.factory import MemoryStorage
from tracemesh.storage.memory.store import MemoryStore


@pytest.fixture
def small() -> Iterator[Backend]:
    loop = asyncio.new_event_loop()
    storage = MemoryStorage(MemoryConfig(max_traces=3))
    yield Backend(storage, loop)
    loop.close()


def test_oldest_trace_goes_first_and_services_stay(small: Backend) -> None:
    for n in range(1, 6):
        svc = process(f"svc-{n}")
        small.write([make_span(n, 1, svc), make_span(n, 2, svc, parent=1)])

    assert small.get_trace(trace_id(1)) == []
    assert small.get_trace(trace_id(2)) == []
    assert [len(small.get_trace(trace_id(n))) for n in (3, 4, 5)] == [2, 2, 2]
    assert small.storage.stats() == (3, 6)  # type: ignore[attr-defined]
    assert small.services() == [f"svc-{n}" for n in range(1, 6)]  # Jaeger keeps them too
    assert small.find(service="svc-1") == []


def test_position_is_set_by_a_trace_s_first_span(small: Backend) -> None:
    svc = process("svc")
    for n in (1, 2, 3):
        small.write([make_span(n, 1, svc)])
    small.write([make_span(1, 2, svc, parent=1)])  # late span of the oldest trace
    small.write([make_span(4, 1, svc)])

    assert small.get_trace(trace_id(1)) == []  # evicted whole, late span included
    assert small.storage.stats() == (3, 3)  # type: ignore[attr-defined]


def test_a_trace_seen_again_after_eviction_starts_afresh(small: Backend) -> None:
    svc = process("svc")
    for n in (1, 2, 3, 4):
        small.write([make_span(n, 1, svc)])
    late = make_span(1, 2, svc, parent=1)
    small.write([late])

    assert small.get_trace(trace_id(1)) == [late]
    assert small.get_trace(trace_id(2)) == []


def test_freed_resources_are_not_confused_with_new_ones(small: Backend) -> None:
    for n in range(1, 10):  # a distinct resource per trace: each eviction frees one
        small.write([make_span(n, 1, process("svc", instance=n))])

    for n in (7, 8, 9):
        (span,) = small.get_trace(trace_id(n))
        assert span.resource.attributes["instance"] == n
    found = small.find(service="svc", tags={"instance": "8"})
    assert [t[0].trace_id for t in found] == [trace_id(8)]


def test_unlimited_when_max_traces_is_zero() -> None:
    loop = asyncio.new_event_loop()
    backend = Backend(MemoryStorage(MemoryConfig(max_traces=0)), loop)
    for n in range(1, 101):
        backend.write([make_span(n, 1, process("svc"))])

    assert backend.storage.stats() == (100, 100)  # type: ignore[attr-defined]
    assert len(backend.find(TraceQuery(service="svc", limit=1000))) == 100
    loop.close()


def test_negative_max_traces_is_refused() -> None:
    with pytest.raises(ValueError, match="max-traces"):
        MemoryConfig(max_traces=-1)


@pytest.mark.parametrize("max_traces", [0, 5])
def test_ring_walks_newest_first_across_the_wrap(max_traces: int) -> None:
    store = MemoryStore(max_traces)
    for n in range(1, 13):
        store.add(batch_from_spans([make_span(n, 1, process("svc"))]))

    def walk(before: int, count: int) -> list[int]:
        return [int.from_bytes(e.trace_id) for e in store.newest_first(before, count)]

    assert walk(store.added, 3) == [12, 11, 10]
    if max_traces:
        assert walk(9, 10) == [9, 8]  # traces 1-7 were evicted
        assert walk(7, 3) == []
        assert len(store.traces) == 5
    else:
        assert walk(9, 10) == list(range(9, 0, -1))
    assert walk(0, 3) == []


def test_eviction_inside_one_batch_keeps_the_newest() -> None:
    loop = asyncio.new_event_loop()
    backend = Backend(MemoryStorage(MemoryConfig(max_traces=1)), loop)
    svc = process("svc")
    spans = [make_span(1, 1, svc), make_span(2, 1, svc), make_span(1, 2, svc), make_span(3, 1, svc)]
    backend.write(spans)

    assert backend.storage.stats() == (1, 1)  # type: ignore[attr-defined]
    assert backend.get_trace(trace_id(3)) == [spans[3]]
    assert len(backend.find(service="svc")) == 1
    loop.close()
