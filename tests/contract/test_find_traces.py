"""Contract: trace search — a trace matches when one of its spans meets every filter at once."""

from __future__ import annotations

import pytest

from tests.contract.harness import Backend
from tests.contract.traces import (
    BASE_NS,
    MINUTE,
    MS,
    event,
    make_span,
    process,
    trace_id,
    trace_ids,
)
from tracemesh.model.query import TraceQuery
from tracemesh.model.span import SpanKind, StatusCode

FOUR_TAGS: dict[str, str | int | float | bool] = {
    "sameplacetag1": "sameplacevalue",
    "sameplacetag2": 123,
    "sameplacetag3": 72.5,
    "sameplacetag4": True,
}
FOUR_TAGS_QUERY = {
    "sameplacetag1": "sameplacevalue",
    "sameplacetag2": "123",
    "sameplacetag3": "72.5",
    "sameplacetag4": "true",
}


def test_by_service_returns_whole_traces_of_that_service_only(backend: Backend) -> None:
    web, db = process("web"), process("db")
    backend.write(
        [
            make_span(1, 1, web),
            make_span(1, 2, db, parent=1),
            make_span(2, 1, db),
        ]
    )

    found = backend.find(service="web")
    assert trace_ids(found) == [trace_id(1)]
    assert len(found[0]) == 2  # the db span comes along: the whole trace


def test_unknown_service_or_no_match_is_an_empty_list(backend: Backend) -> None:
    backend.write([make_span(1, 1, process("web"))])

    assert backend.find(service="nope") == []
    assert backend.find(service="web", operation="nope") == []


def test_by_operation(backend: Backend) -> None:
    web = process("web")
    backend.write([make_span(1, 1, web, name="GET /a"), make_span(2, 1, web, name="GET /b")])

    assert trace_ids(backend.find(service="web", operation="GET /b")) == [trace_id(2)]


def test_by_span_kind(backend: Backend) -> None:
    web = process("web")
    backend.write(
        [
            make_span(1, 1, web, name="call", kind=SpanKind.CLIENT),
            make_span(2, 1, web, name="call", kind=SpanKind.SERVER),
        ]
    )

    query = TraceQuery(service="web", operation="call", span_kind=SpanKind.CLIENT)
    assert trace_ids(backend.find(query)) == [trace_id(1)]


@pytest.mark.parametrize(
    ("where", "expected"),
    [("span", 1), ("event", 2), ("resource", 3), ("spread over span, event, resource", 4)],
)
def test_tags_found_in_span_event_and_resource(backend: Backend, where: str, expected: int) -> None:
    """Jaeger's 'Tags in one spot' and 'Tags in different spots' cases."""
    plain = process("tags")
    tagged = process("tags", **FOUR_TAGS)
    split_resource = process("tags", sameplacetag3=72.5)
    backend.write(
        [
            make_span(1, 1, plain, attributes=dict(FOUR_TAGS)),
            make_span(2, 1, plain, events=[event(dict(FOUR_TAGS))]),
            make_span(3, 1, tagged),
            make_span(
                4,
                1,
                split_resource,
                attributes={"sameplacetag1": "sameplacevalue"},
                events=[event({"sameplacetag2": 123}), event({"sameplacetag4": True})],
            ),
            make_span(5, 1, plain, attributes={"sameplacetag1": "sameplacevalue"}),
        ]
    )

    found = trace_ids(backend.find(service="tags", tags=FOUR_TAGS_QUERY))
    assert trace_id(expected) in found
    assert sorted(found) == [trace_id(n) for n in (1, 2, 3, 4)]
    assert trace_id(5) not in found


@pytest.mark.parametrize(
    "value",
    [
        "with spaces",
        "with \"double\" and 'single' quotes",
        "ünïcödé ✓ 追踪",
        "a=b",
        "key:value:more",
        "<script>alert('x')</script>",
        "back\\slash",
        "line\nbreak",
    ],
)
def test_tag_values_with_special_characters(backend: Backend, value: str) -> None:
    svc = process("special")
    backend.write(
        [
            make_span(1, 1, svc, attributes={"tag.key": value}),
            make_span(2, 1, svc, attributes={"tag.key": value + "x"}),
        ]
    )

    assert trace_ids(backend.find(service="special", tags={"tag.key": value})) == [trace_id(1)]


@pytest.mark.parametrize(
    ("stored", "query"),
    [
        (123, "123"),
        (-7, "-7"),
        (2**63 - 1, "9223372036854775807"),
        (72.5, "72.5"),
        (3.0, "3"),
        (True, "true"),
        (False, "false"),
    ],
)
def test_typed_tag_values_compare_as_strings(backend: Backend, stored: object, query: str) -> None:
    svc = process("typed")
    backend.write(
        [
            make_span(1, 1, svc, attributes={"typed": stored}),  # type: ignore[dict-item]
            make_span(2, 1, svc, attributes={"typed": "other"}),
        ]
    )

    assert trace_ids(backend.find(service="typed", tags={"typed": query})) == [trace_id(1)]


def test_error_true_matches_status_error_and_error_attribute(backend: Backend) -> None:
    svc = process("errors")
    backend.write(
        [
            make_span(1, 1, svc, status=StatusCode.ERROR),
            make_span(2, 1, svc, attributes={"error": True}),
            make_span(3, 1, svc, status=StatusCode.OK),
            make_span(4, 1, svc),
        ]
    )

    found = trace_ids(backend.find(service="errors", tags={"error": "true"}))
    assert sorted(found) == [trace_id(1), trace_id(2)]


def test_duration_bounds_apply_to_one_span(backend: Backend) -> None:
    svc = process("durations")
    backend.write(
        [
            make_span(1, 1, svc, duration_ms=1),
            make_span(2, 1, svc, duration_ms=5),
            make_span(3, 1, svc, duration_ms=10),
            # one short and one long span: each fails one bound of the 4-6 ms range
            make_span(4, 1, svc, duration_ms=1),
            make_span(4, 2, svc, parent=1, duration_ms=10),
        ]
    )

    def durations(low: float | None, high: float | None) -> list[bytes]:
        query = TraceQuery(
            service="durations",
            duration_min_ns=None if low is None else int(low * MS),
            duration_max_ns=None if high is None else int(high * MS),
        )
        return sorted(trace_ids(backend.find(query)))

    assert durations(4.5, 5.5) == [trace_id(2)]
    assert durations(None, 2) == [trace_id(1), trace_id(4)]
    assert durations(8, None) == [trace_id(3), trace_id(4)]
    assert durations(5, 5) == [trace_id(2)]  # bounds are inclusive


def test_filters_must_meet_on_one_span(backend: Backend) -> None:
    """Operation on one span, tag on another, duration on a third: no single span meets all."""
    svc = process("one-span")
    backend.write(
        [
            make_span(1, 1, svc, name="target", duration_ms=1),
            make_span(1, 2, svc, parent=1, attributes={"color": "red"}, duration_ms=1),
            make_span(1, 3, svc, parent=1, duration_ms=50),
        ]
    )

    def count(**filters: object) -> int:
        return len(backend.find(TraceQuery(service="one-span", **filters)))  # type: ignore[arg-type]

    assert count(operation="target") == 1
    assert count(tags={"color": "red"}) == 1
    assert count(duration_min_ns=40 * MS) == 1
    assert count(operation="target", tags={"color": "red"}) == 0
    assert count(tags={"color": "red"}, duration_min_ns=40 * MS) == 0
    assert count(operation="target", duration_min_ns=40 * MS) == 0


def test_tags_do_not_combine_across_spans(backend: Backend) -> None:
    svc = process("across")
    backend.write(
        [
            make_span(1, 1, svc, attributes={"a": "1"}),
            make_span(1, 2, svc, parent=1, attributes={"b": "2"}),
            make_span(2, 1, svc, attributes={"a": "1", "b": "2"}),
        ]
    )

    assert trace_ids(backend.find(service="across", tags={"a": "1", "b": "2"})) == [trace_id(2)]


def test_time_window_bounds_span_start(backend: Backend) -> None:
    svc = process("window")
    backend.write(
        [
            make_span(1, 1, svc, start_ms=0),
            make_span(2, 1, svc, start_ms=10 * MINUTE / MS),
            make_span(3, 1, svc, start_ms=20 * MINUTE / MS),
            # starts before the window, one child inside it
            make_span(4, 1, svc, start_ms=0, duration_ms=30 * MINUTE / MS),
            make_span(4, 2, svc, parent=1, start_ms=15 * MINUTE / MS),
        ]
    )

    def window(low_min: int, high_min: int) -> list[bytes]:
        query = TraceQuery(
            service="window",
            start_min_ns=BASE_NS + low_min * MINUTE,
            start_max_ns=BASE_NS + high_min * MINUTE,
        )
        return sorted(trace_ids(backend.find(query)))

    assert window(5, 12) == [trace_id(2)]
    assert window(5, 16) == [trace_id(2), trace_id(4)]
    assert window(10, 10) == [trace_id(2)]  # bounds are inclusive
    assert window(21, 60) == []
    found = backend.find(service="window", start_min_ns=BASE_NS + 14 * MINUTE)
    assert len(next(t for t in found if t[0].trace_id == trace_id(4))) == 2


def test_limit_keeps_the_most_recent_traces_newest_first(backend: Backend) -> None:
    svc = process("recent")
    for n in range(1, 11):
        backend.write([make_span(n, 1, svc, start_ms=n * 1000)])

    assert trace_ids(backend.find(service="recent", limit=3)) == [trace_id(n) for n in (10, 9, 8)]
    assert trace_ids(backend.find(service="recent")) == [trace_id(n) for n in range(10, 0, -1)]


def test_results_are_ordered_by_trace_start_not_arrival(backend: Backend) -> None:
    svc = process("ordering")
    starts = {1: 30, 2: 10, 3: 50, 4: 20, 5: 40}  # trace -> minutes; written in this order
    for n, minutes in starts.items():
        backend.write([make_span(n, 1, svc, start_ms=minutes * MINUTE / MS)])
    # a late child that starts before its trace's root: the trace starts at its earliest span
    backend.write([make_span(3, 2, svc, parent=1, start_ms=5 * MINUTE / MS)])

    found = trace_ids(backend.find(service="ordering"))
    assert found == [trace_id(n) for n in (5, 1, 4, 2, 3)]


def test_a_trace_matching_through_several_spans_is_returned_once(backend: Backend) -> None:
    svc = process("once")
    backend.write([make_span(1, i, svc, start_ms=i) for i in range(1, 6)])
    backend.write([make_span(1, i, svc, start_ms=i) for i in range(6, 11)])

    found = backend.find(service="once")
    assert trace_ids(found) == [trace_id(1)]
    assert len(found[0]) == 10


def test_search_without_service(backend: Backend) -> None:
    if not backend.storage.capabilities.search_without_service:
        pytest.skip(f"{backend.storage.name} requires a service name to search")
    backend.write(
        [
            make_span(
                1, 1, process("cross-service-a"), attributes={"rfc0013.cross.service": "yes"}
            ),
            make_span(
                2, 1, process("cross-service-b"), attributes={"rfc0013.cross.service": "yes"}
            ),
            make_span(3, 1, process("cross-service-c"), attributes={"rfc0013.cross.service": "no"}),
        ]
    )

    found = trace_ids(backend.find(tags={"rfc0013.cross.service": "yes"}))
    assert sorted(found) == [trace_id(1), trace_id(2)]
