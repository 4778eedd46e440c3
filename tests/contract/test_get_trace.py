"""Contract: a written trace reads back whole and unchanged, by id."""

from __future__ import annotations

from tests.contract.harness import Backend
from tests.contract.traces import MINUTE, MS, event, make_span, process, span_id, span_ids, trace_id
from tracemesh.model.attributes import Attributes
from tracemesh.model.query import TraceQuery
from tracemesh.model.span import Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode


def _span_with_every_field() -> Span:
    every_type: Attributes = {
        "str": "hello, wörld ✓",
        "empty": "",
        "bool": True,
        "int": -(2**63),
        "int.max": 2**63 - 1,
        "float": 72.5,
        "float.inf": float("inf"),
        "bytes": b"\x00\xffbinary",
        "list": ["a", 1, 2.5, False, b"\x01", ["nested"]],
        "kvlist": {"k": "v", "n": 7, "inner": {"deep": [1, 2]}},
        "none": None,
    }
    resource = Resource(
        {"service.name": "round-trip", "host.name": "node-1", "pid": 4242, "labels": ["a", "b"]},
        dropped_attributes_count=2,
        schema_url="https://opentelemetry.io/schemas/1.26.0",
    )
    scope = Scope(
        "io.tracemesh.tests",
        "9.8.7",
        {"scope.attr": "x", "scope.n": 3},
        dropped_attributes_count=1,
        schema_url="https://opentelemetry.io/schemas/1.21.0",
    )
    return Span(
        trace_id=trace_id(0xABCDEF0123456789_0011223344556677),
        span_id=span_id(0x1122334455667788),
        parent_span_id=span_id(0x0102030405060708),
        name="GET /things/{id}",
        start_ns=1_700_000_000_123_456_789,
        end_ns=1_700_000_000_987_654_321,
        kind=SpanKind.CONSUMER,
        attributes=every_type,
        events=[
            Event(1_700_000_000_200_000_000, "exception", {"exception.type": "ValueError"}, 1),
            Event(1_700_000_000_300_000_000, "", {"bytes": b"\x02", "list": [1, "x"]}),
        ],
        links=[
            Link(trace_id(7), span_id(8), "vendor=abc", {"opentracing.ref_type": "child_of"}, 3, 1),
            Link(trace_id(9), span_id(10)),
        ],
        status=Status(StatusCode.ERROR, "boom: <b>bad</b>"),
        trace_state="rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
        flags=0x101,
        resource=resource,
        scope=scope,
        dropped_attributes_count=4,
        dropped_events_count=5,
        dropped_links_count=6,
    )


def test_every_field_round_trips(backend: Backend) -> None:
    span = _span_with_every_field()
    plain = make_span(span.trace_id, 2, process("round-trip"), parent=0x1122334455667788)
    backend.write([span, plain])

    assert backend.get_trace(span.trace_id) == [span, plain]


def test_unknown_trace_is_an_empty_list(backend: Backend) -> None:
    backend.write([make_span(1, 1, process("svc"))])

    assert backend.get_trace(trace_id(2)) == []
    assert backend.get_trace(trace_id(0xFFFF << 64 | 1)) == []


def test_64_bit_trace_id(backend: Backend) -> None:
    short = trace_id(0x00000000000000000123456789ABCDEF)
    span = make_span(short, 1, process("legacy"))
    backend.write([span])

    assert backend.get_trace(short) == [span]
    assert [t[0].trace_id for t in backend.find(service="legacy")] == [short]


def test_large_trace_is_returned_whole(backend: Backend) -> None:
    resource = process("large")
    spans = [make_span(5, 1, resource, name="root", duration_ms=20 * MINUTE / MS)]
    spans += [
        make_span(5, i, resource, parent=1, name=f"child-{i % 7}", start_ms=i)
        for i in range(2, 10_001)
    ]
    backend.write(spans)

    got = backend.get_trace(trace_id(5))
    assert len(got) == 10_000
    assert sorted(span_ids(got)) == sorted(span_ids(spans))
    found = backend.find(service="large", operation="child-3")
    assert len(found) == 1 and len(found[0]) == 10_000


def test_duplicate_spans_are_all_returned(backend: Backend) -> None:
    resource = process("dupes")
    spans = [make_span(6, i, resource, start_ms=i) for i in range(1, 201)]
    for i in range(0, 200, 20):  # every 20th span reuses the first span's id, as Jaeger's suite
        spans[i].span_id = span_id(1)
    backend.write(spans)
    backend.write(spans[:1])  # and the same span written again

    got = backend.get_trace(trace_id(6))
    assert len(got) == 201
    assert span_ids(got).count(span_id(1)) == 11


def test_trace_written_in_batches_minutes_apart_is_one_trace(backend: Backend) -> None:
    frontend, backend_svc = process("frontend"), process("backend")
    first = make_span(7, 1, frontend, name="checkout", duration_ms=11 * MINUTE / MS)
    backend.write([first])
    backend.write([make_span(8, 1, frontend)])  # another trace in between
    later = make_span(7, 2, backend_svc, parent=1, start_ms=10 * MINUTE / MS, name="charge")
    backend.write([later])
    backend.write([make_span(9, 1, backend_svc)])
    last = make_span(7, 3, frontend, parent=1, start_ms=11 * MINUTE / MS, name="render")
    backend.write([last])

    assert backend.get_trace(trace_id(7)) == [first, later, last]
    window = TraceQuery(
        service="backend",
        start_min_ns=later.start_ns - MINUTE,
        start_max_ns=later.start_ns + MINUTE,
    )
    assert backend.find(window) == [[first, later, last]]
    assert backend.find(service="frontend", operation="render") == [[first, later, last]]


def test_events_keep_their_attributes(backend: Backend) -> None:
    span = make_span(9, 1, process("logs"), events=[event({"level": "info", "n": 1})])
    backend.write([span])

    assert backend.get_trace(trace_id(9))[0].events == span.events
