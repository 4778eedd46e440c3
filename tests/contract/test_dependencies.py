"""Contract: service dependency links computed from parent/child spans in a time window."""

from __future__ import annotations

import pytest

from tests.contract.harness import Backend
from tests.contract.traces import BASE_NS, MINUTE, make_span, process
from tracemesh.model.dependency import DependencyLink


@pytest.fixture
def computed(backend: Backend) -> Backend:
    if not backend.storage.capabilities.computes_dependencies:
        pytest.skip(f"{backend.storage.name} reads links written by an external job")
    return backend


def test_links_count_calls_between_services(computed: Backend) -> None:
    a, b, c = process("svc-a"), process("svc-b"), process("svc-c")
    computed.write(
        [
            make_span(1, 1, a),
            make_span(1, 2, b, parent=1),
            make_span(1, 3, c, parent=2),
            make_span(2, 1, a),
            make_span(2, 2, b, parent=1),
            make_span(3, 1, c, parent=99),  # its parent never arrived: no link
        ]
    )

    assert computed.dependencies(BASE_NS + MINUTE, 2 * MINUTE) == [
        DependencyLink("svc-a", "svc-b", 2),
        DependencyLink("svc-b", "svc-c", 1),
    ]


def test_links_come_from_spans_started_in_the_window(computed: Backend) -> None:
    a, b = process("svc-a"), process("svc-b")
    computed.write(
        [
            make_span(1, 1, a, start_ms=0),
            make_span(1, 2, b, parent=1, start_ms=1),
            make_span(2, 1, a, start_ms=60 * MINUTE / 1_000_000),
            make_span(2, 2, b, parent=1, start_ms=60 * MINUTE / 1_000_000 + 1),
        ]
    )

    last_half_hour = computed.dependencies(BASE_NS + 61 * MINUTE, 30 * MINUTE)
    assert last_half_hour == [DependencyLink("svc-a", "svc-b", 1)]
    assert computed.dependencies(BASE_NS + 61 * MINUTE, 120 * MINUTE) == [
        DependencyLink("svc-a", "svc-b", 2)
    ]
    assert computed.dependencies(BASE_NS - MINUTE, MINUTE) == []


def test_same_service_calls_and_late_children_count(computed: Backend) -> None:
    a, b = process("svc-a"), process("svc-b")
    computed.write([make_span(1, 1, a), make_span(1, 2, a, parent=1)])  # a -> a
    computed.write([make_span(2, 1, a)])
    computed.write([make_span(1, 3, b, parent=2, start_ms=3), make_span(2, 2, b, parent=1)])

    assert computed.dependencies(BASE_NS + MINUTE, 2 * MINUTE) == [
        DependencyLink("svc-a", "svc-a", 1),
        DependencyLink("svc-a", "svc-b", 2),
    ]


def test_a_parent_outside_the_window_still_names_the_caller(computed: Backend) -> None:
    a, b = process("svc-a"), process("svc-b")
    computed.write([make_span(1, 1, a, start_ms=0, duration_ms=40 * MINUTE / 1_000_000)])
    computed.write([make_span(1, 2, b, parent=1, start_ms=30 * MINUTE / 1_000_000)])

    window_end = BASE_NS + 31 * MINUTE
    assert computed.dependencies(window_end, 5 * MINUTE) == [DependencyLink("svc-a", "svc-b", 1)]
