"""Contract: the service and operation lists that feed the search form."""

from __future__ import annotations

from tests.contract.harness import Backend
from tests.contract.traces import make_span, process
from tracemesh.model.query import Operation
from tracemesh.model.span import SpanKind


def _write_example(backend: Backend) -> None:
    one, two, three = (
        process("example-service-1"),
        process("example-service-2"),
        process("example-service-3"),
    )
    backend.write(
        [
            make_span(0x11, 1, one, name="example-operation-1", kind=SpanKind.UNSPECIFIED),
            make_span(0x11, 2, one, parent=1, name="example-operation-4", kind=SpanKind.CLIENT),
            make_span(0x11, 3, two, parent=2, name="example-operation-2", kind=SpanKind.SERVER),
            make_span(0x11, 4, one, parent=1, name="example-operation-3", kind=SpanKind.SERVER),
            make_span(0x11, 5, three, parent=2, name="example-operation-3", kind=SpanKind.SERVER),
            make_span(0x11, 6, one, parent=1, name="example-operation-3", kind=SpanKind.CLIENT),
        ]
    )


def test_services_are_sorted_and_distinct(backend: Backend) -> None:
    assert backend.services() == []
    _write_example(backend)

    assert backend.services() == ["example-service-1", "example-service-2", "example-service-3"]


def test_operations_carry_their_kind_sorted_by_name_then_kind(backend: Backend) -> None:
    _write_example(backend)

    expected = [
        Operation("example-operation-1", SpanKind.UNSPECIFIED),
        Operation("example-operation-3", SpanKind.SERVER),
        Operation("example-operation-3", SpanKind.CLIENT),
        Operation("example-operation-4", SpanKind.CLIENT),
    ]
    if not backend.storage.capabilities.span_kind_in_operations:
        assert [op.name for op in backend.operations("example-service-1")] == [
            "example-operation-1",
            "example-operation-3",
            "example-operation-4",
        ]
        return
    assert backend.operations("example-service-1") == expected


def test_operations_filtered_by_kind(backend: Backend) -> None:
    if not backend.storage.capabilities.span_kind_in_operations:
        return
    _write_example(backend)

    assert backend.operations("example-service-1", SpanKind.CLIENT) == [
        Operation("example-operation-3", SpanKind.CLIENT),
        Operation("example-operation-4", SpanKind.CLIENT),
    ]
    assert backend.operations("example-service-1", SpanKind.PRODUCER) == []


def test_operations_of_unknown_service_is_an_empty_list(backend: Backend) -> None:
    _write_example(backend)

    assert backend.operations("no-such-service") == []


def test_lists_grow_over_batches_without_repeating(backend: Backend) -> None:
    _write_example(backend)
    _write_example(backend)  # the same names again
    backend.write(
        [make_span(0x12, 1, process("example-service-4"), name="late-op", kind=SpanKind.PRODUCER)]
    )
    backend.write(
        [make_span(0x13, 1, process("example-service-2"), name="new-op", kind=SpanKind.INTERNAL)]
    )

    assert backend.services() == [f"example-service-{n}" for n in (1, 2, 3, 4)]
    if backend.storage.capabilities.span_kind_in_operations:
        assert backend.operations("example-service-2") == [
            Operation("example-operation-2", SpanKind.SERVER),
            Operation("new-op", SpanKind.INTERNAL),
        ]
    assert [op.name for op in backend.operations("example-service-4")] == ["late-op"]


def test_a_service_named_like_sql_or_a_pattern(backend: Backend) -> None:
    odd = ["svc_%", "svc'; DROP TABLE spans; --", "ünï ✓"]
    backend.write([make_span(0x20 + i, 1, process(name), name=name) for i, name in enumerate(odd)])

    assert backend.services() == sorted(odd)
    for name in odd:
        assert [op.name for op in backend.operations(name)] == [name]
    assert backend.operations("svc_") == []
