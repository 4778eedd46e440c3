"""Query-side adjusters: Jaeger's rules, applied to a private copy of the trace."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.codecs.strategies import spans as any_spans
from tracemesh.model.span import Event, Link, Resource, Scope, Span, SpanKind
from tracemesh.query.adjusters import (
    INVALID_LINK_WARNING,
    adjust,
    copy_trace,
    drop_duplicate_spans,
    move_library_attributes,
    normalize_ip_attributes,
    remove_empty_links,
    sort_collections,
    uniquify_client_server_span_ids,
)

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def _id(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _span(span_id: int, parent: int = 0, kind: SpanKind = SpanKind.INTERNAL, **kw: object) -> Span:
    return Span(TRACE, _id(span_id), "op", 1000, 2000, _id(parent) if parent else b"", kind, **kw)  # type: ignore[arg-type]


def test_zipkin_shared_span_ids_are_split() -> None:
    client = _span(2, parent=7, kind=SpanKind.CLIENT)
    server = _span(2, parent=7, kind=SpanKind.SERVER)
    child = _span(9, parent=2)
    root = _span(7)
    out = uniquify_client_server_span_ids([root, client, server, child])
    assert [(s.span_id, s.parent_span_id) for s in out] == [
        (_id(7), b""),
        (_id(2), _id(7)),
        (_id(1), _id(2)),  # first unused id counting from 1; the client is now its parent
        (_id(9), _id(1)),  # children of the shared id follow the server span
    ]


def test_new_ids_skip_used_ones() -> None:
    spans = [_span(1), _span(3, 1, SpanKind.CLIENT), _span(3, 1, SpanKind.SERVER), _span(2)]
    out = uniquify_client_server_span_ids(spans)
    assert out[2].span_id == _id(4)


def test_server_span_without_client_twin_is_kept() -> None:
    spans = [_span(3, kind=SpanKind.SERVER), _span(3, kind=SpanKind.SERVER)]
    assert [s.span_id for s in uniquify_client_server_span_ids(spans)] == [_id(3), _id(3)]


def test_sort_collections() -> None:
    resource = Resource({"service.name": "s", "b": 1, "a": 2})
    span = _span(
        1,
        attributes={"z": 1, "a": 2},
        events=[Event(5, "b", {"y": 1, "x": 2}), Event(3, "a"), Event(4, "b")],
        links=[Link(TRACE, _id(9), attributes={"n": 1, "m": 2}), Link(TRACE, _id(8))],
        resource=resource,
        scope=Scope("lib", attributes={"q": 1, "p": 2}),
    )
    (out,) = sort_collections(copy_trace([span]))
    assert list(out.resource.attributes) == ["a", "b", "service.name"]
    assert list(out.scope.attributes) == ["p", "q"]
    assert list(out.attributes) == ["a", "z"]
    assert [(e.name, e.time_ns) for e in out.events] == [("a", 3), ("b", 5), ("b", 4)]
    assert list(out.events[1].attributes) == ["x", "y"]
    assert [lk.span_id for lk in out.links] == [_id(9), _id(8)]
    assert list(out.links[0].attributes) == ["m", "n"]


def test_duplicates_are_dropped_but_not_near_duplicates() -> None:
    resource = Resource({"service.name": "s"})
    a = _span(1, attributes={"k": "v"}, resource=resource)
    b = _span(1, attributes={"k": "v"}, resource=Resource({"service.name": "s"}))
    c = _span(1, attributes={"k": "w"}, resource=resource)
    d = _span(1, attributes={"k": "v"}, resource=Resource({"service.name": "other"}))
    assert drop_duplicate_spans([a, b, c, d]) == [a, c, d]


def test_ip_attributes_become_dotted() -> None:
    resource = Resource({"ip": 134744072})
    span = _span(
        1,
        attributes={"peer.ipv4": 3232235777.0, "ip": "10.0.0.1", "other": 5},
        resource=resource,
    )
    flag = _span(2, attributes={"ip": True, "peer.ipv4": float("nan")})
    out, flag_out = normalize_ip_attributes(copy_trace([span, flag]))
    assert out.resource.attributes == {"ip": "8.8.8.8"}
    assert out.attributes == {"peer.ipv4": "192.168.1.1", "ip": "10.0.0.1", "other": 5}
    assert flag_out.attributes["ip"] is True


def test_library_attributes_move_to_resource() -> None:
    resource = Resource({"service.name": "s", "telemetry.sdk.name": "opentelemetry"})
    agreeing = _span(1, attributes={"telemetry.sdk.language": "python", "k": 1}, resource=resource)
    conflicting = _span(2, attributes={"telemetry.sdk.name": "other"}, resource=resource)
    a, b = move_library_attributes(copy_trace([agreeing, conflicting]))
    assert a.resource is b.resource
    assert a.resource.attributes["telemetry.sdk.language"] == "python"
    assert a.attributes == {"k": 1}
    assert b.attributes == {"telemetry.sdk.name": "other"}
    assert b.warnings == [
        "conflicting values between Span and Resource for attribute telemetry.sdk.name"
    ]


def test_empty_links_removed_with_warning() -> None:
    span = _span(1, links=[Link(bytes(16), _id(1)), Link(b"", _id(2)), Link(TRACE, _id(3))])
    (out,) = remove_empty_links(copy_trace([span]))
    assert [lk.span_id for lk in out.links] == [_id(3)]
    assert out.warnings == [INVALID_LINK_WARNING, INVALID_LINK_WARNING]


def test_adjust_never_changes_its_input() -> None:
    shared = Resource({"service.name": "s", "b": 1, "a": 2})
    spans = [
        _span(2, kind=SpanKind.CLIENT, attributes={"b": 1, "a": 2}, resource=shared),
        _span(2, kind=SpanKind.SERVER, attributes={"telemetry.sdk.name": "x"}, resource=shared),
        _span(2, kind=SpanKind.SERVER, attributes={"telemetry.sdk.name": "x"}, resource=shared),
        _span(3, links=[Link(bytes(16), _id(1))], resource=shared),
    ]
    before = copy.deepcopy(spans)
    out = adjust(spans)
    assert spans == before
    assert list(shared.attributes) == ["service.name", "b", "a"]
    assert len(out) == 4  # the two servers got distinct ids, so neither is a duplicate
    assert {s.span_id for s in out} == {_id(1), _id(2), _id(3), _id(4)}
    assert out[0].resource is out[1].resource  # sharing is kept within the copy


@settings(max_examples=100)
@given(st.lists(any_spans(), max_size=5))
def test_adjust_any_trace(spans: list[Span]) -> None:
    before = copy.deepcopy(spans)
    out = adjust(spans)
    assert spans == before
    assert len(out) <= len(spans)
    assert adjust(out + out) == adjust(out)  # duplicates of an adjusted trace go away
