"""Contract: a persistent backend keeps everything it acknowledged across a restart."""

from __future__ import annotations

import pytest

from tests.contract.harness import Backend
from tests.contract.traces import BASE_NS, MINUTE, make_span, process, trace_id, trace_ids
from tracemesh.model.dependency import DependencyLink
from tracemesh.model.query import Operation
from tracemesh.model.span import SpanKind


@pytest.fixture
def persistent(backend: Backend) -> Backend:
    if not backend.storage.capabilities.persistent:
        pytest.skip(f"{backend.storage.name} is not persistent")
    return backend


def test_everything_written_is_there_after_a_restart(persistent: Backend) -> None:
    web, db = process("web", **{"host.name": "h1"}), process("db")
    first = [make_span(1, 1, web, name="GET /"), make_span(1, 2, db, parent=1, name="SELECT")]
    persistent.write(first)
    persistent.restart()
    later = make_span(1, 3, db, parent=1, name="UPDATE", start_ms=5, kind=SpanKind.CLIENT)
    persistent.write([later])  # written after the restart, into the same trace
    persistent.restart()

    assert persistent.get_trace(trace_id(1)) == [*first, later]
    assert persistent.services() == ["db", "web"]
    assert persistent.operations("db") == [
        Operation("SELECT", SpanKind.SERVER),
        Operation("UPDATE", SpanKind.CLIENT),
    ]
    assert trace_ids(persistent.find(service="web", tags={"host.name": "h1"})) == [trace_id(1)]
    if persistent.storage.capabilities.computes_dependencies:
        assert persistent.dependencies(BASE_NS + MINUTE, 2 * MINUTE) == [
            DependencyLink("web", "db", 2)
        ]


def test_restart_of_an_empty_store(persistent: Backend) -> None:
    persistent.restart()

    assert persistent.services() == []
    assert persistent.find(service="web") == []
