"""Memory backend: the search semantics beyond the contract (Jaeger v2 memory store's special
tags) and the raw-bytes pre-filter, which must never hide a match."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from tests.contract.harness import Backend
from tests.contract.traces import BASE_NS, make_span, process, trace_id, trace_ids
from tests.unit.codecs.strategies import spans as any_spans
from tests.unit.codecs.strategies import values as any_values
from tracemesh.codecs.otlp_proto import batch_from_spans, row_from_span
from tracemesh.model.attributes import AttrValue, value_to_text
from tracemesh.model.batch import ResourceGroup, SpanBatch, SpanRow
from tracemesh.model.query import TraceQuery
from tracemesh.model.span import Event, Link, Scope, Span, SpanKind, StatusCode
from tracemesh.storage.memory.config import MemoryConfig
from tracemesh.storage.memory.factory import MemoryStorage
from tracemesh.storage.memory.search import TagTest, tag_test, value_encodings

# Keys with a meaning of their own in search (see storage/memory/README.md).
SPECIAL_KEYS = frozenset(
    [
        "error",
        "span.kind",
        "otel.status_code",
        "span.status",
        "scope.name",
        "scope.version",
        "otel.scope.name",
        "otel.scope.version",
        "otel.library.name",
        "otel.library.version",
    ]
)


@pytest.fixture
def backend() -> Iterator[Backend]:
    loop = asyncio.new_event_loop()
    yield Backend(MemoryStorage(MemoryConfig(max_traces=1000)), loop)
    loop.close()


def _found(backend: Backend, **tags: str) -> list[int]:
    return sorted(int.from_bytes(t) for t in trace_ids(backend.find(service="svc", tags=tags)))


def test_span_kind_and_status_tags(backend: Backend) -> None:
    svc = process("svc")
    backend.write(
        [
            make_span(1, 1, svc, kind=SpanKind.CLIENT, status=StatusCode.OK),
            make_span(2, 1, svc, kind=SpanKind.SERVER, status=StatusCode.ERROR),
            make_span(3, 1, svc, kind=SpanKind.INTERNAL, attributes={"span.kind": "client"}),
        ]
    )

    assert _found(backend, **{"span.kind": "client"}) == [1, 3]
    assert _found(backend, **{"span.kind": "SERVER"}) == [2]
    assert _found(backend, **{"otel.status_code": "ERROR"}) == [2]
    assert _found(backend, **{"span.status": "ok"}) == [1]


def test_error_false_means_not_an_error(backend: Backend) -> None:
    svc = process("svc")
    backend.write(
        [
            make_span(1, 1, svc, status=StatusCode.ERROR),
            make_span(2, 1, svc, attributes={"error": "true"}),
            make_span(3, 1, svc, status=StatusCode.OK, attributes={"error": False}),
            make_span(4, 1, svc, attributes={"error": 1}),  # not a true flag, as Span.is_error
            make_span(5, 1, svc, attributes={"error": "yes"}),
        ]
    )

    assert _found(backend, error="true") == [1, 2]
    assert _found(backend, error="false") == [3, 4, 5]
    assert _found(backend, error="yes") == [5]  # not a boolean word: an ordinary tag


def test_resource_prefix_looks_at_resource_attributes_only(backend: Backend) -> None:
    backend.write(
        [
            make_span(1, 1, process("svc", **{"host.name": "a"})),
            make_span(2, 1, process("svc"), attributes={"host.name": "a"}),
        ]
    )

    assert _found(backend, **{"resource.host.name": "a"}) == [1]
    assert _found(backend, **{"host.name": "a"}) == [1, 2]
    assert _found(backend, **{"resource.host.name": "b"}) == []


def test_scope_and_link_attributes_and_scope_fields(backend: Backend) -> None:
    svc = process("svc")
    flask = Scope("flask", "3.0", {"scope.attr": "s"})
    backend.write(
        [
            make_span(1, 1, svc, scope=flask),
            make_span(2, 1, svc, links=[Link(trace_id(9), b"\x00" * 7 + b"\x01", "", {"l": 5})]),
        ]
    )

    assert _found(backend, **{"scope.attr": "s"}) == [1]
    assert _found(backend, **{"otel.scope.name": "flask", "scope.version": "3.0"}) == [1]
    assert _found(backend, l="5") == [2]


def test_returned_spans_cannot_change_what_is_stored(backend: Backend) -> None:
    backend.write([make_span(1, 1, process("svc", **{"host.name": "a"}))])

    (span,) = backend.get_trace(trace_id(1))
    span.resource.attributes["host.name"] = "changed"
    span.attributes["new"] = "x"

    (again,) = backend.get_trace(trace_id(1))
    assert again.resource.attributes["host.name"] == "a"
    assert again.attributes == {}


def test_64_bit_id_given_as_8_bytes(backend: Backend) -> None:
    span = make_span(trace_id(0xABC), 1, process("svc"))
    backend.write([span])

    assert backend.get_trace((0xABC).to_bytes(8, "big")) == [span]


def test_zero_limit_finds_nothing(backend: Backend) -> None:
    backend.write([make_span(1, 1, process("svc"))])

    assert backend.find(TraceQuery(service="svc", limit=0)) == []


def test_dependencies_count_calls_within_one_service(backend: Backend) -> None:
    svc, other = process("svc"), process("other")
    backend.write(
        [
            make_span(1, 1, svc),
            make_span(1, 2, svc, parent=1),
            make_span(1, 3, other, parent=2),
        ]
    )

    links = backend.dependencies(2**63 - 1, 2**63 - 1)
    assert [(x.parent, x.child, x.call_count) for x in links] == [
        ("svc", "other", 1),
        ("svc", "svc", 1),
    ]


def test_search_gives_way_to_writes_and_stays_consistent(backend: Backend) -> None:
    """A scan pauses between chunks; writes and evictions land meanwhile without harm."""
    storage = MemoryStorage(MemoryConfig(max_traces=5000))
    marked = set(range(1, 11)) | set(range(4991, 5001))  # the oldest and the newest ten
    for first in range(1, 5001, 500):
        spans = [
            make_span(n, 1, process("svc", n=n), attributes={"mark": "x"} if n in marked else {})
            for n in range(first, first + 500)
        ]
        backend.run(storage.writer().write(batch_from_spans(spans)))

    async def search_while_writing() -> list[list[Span]]:
        query = TraceQuery(service="svc", tags={"mark": "x"}, limit=100)
        search = asyncio.create_task(storage.reader().find_traces(query))
        await asyncio.sleep(0)  # the search scans its first chunk (the newest traces) and pauses
        assert not search.done()
        fresh = [make_span(10_000 + n, 1, process("svc", n=n)) for n in range(5000)]
        await storage.writer().write(batch_from_spans(fresh))  # evicts every older trace
        return await search

    found = backend.run(search_while_writing())
    # Matches from before the pause come back whole, with their own resources, though evicted
    # since; the oldest ten were evicted before the scan reached them.
    assert [int.from_bytes(t[0].trace_id) for t in found] == list(range(5000, 4990, -1))
    assert all(t[0].resource.attributes["n"] == int.from_bytes(t[0].trace_id) for t in found)
    assert storage.stats() == (5000, 5000)


@given(key=st.text(max_size=12), value=any_values, where=st.sampled_from(["span", "event", "link"]))
def test_prefilter_never_hides_a_matching_attribute(key: str, value: AttrValue, where: str) -> None:
    span = make_span(1, 1, process("svc"))
    if where == "span":
        span.attributes = {key: value}
    elif where == "event":
        span.events = [Event(span.start_ns, "e", {key: value})]
    else:
        span.links = [Link(trace_id(2), b"\x01" * 8, "", {key: value})]
    raw = row_from_span(span).raw

    test = TagTest(key, value_to_text(value))
    assert test.on_span(raw, int(span.kind), int(span.status.code)) is not False
    assert test.on_pb(PbSpan.FromString(raw))


def test_value_encodings_know_every_scalar_form() -> None:
    assert value_encodings("") is None
    assert value_encodings("[1]") is None
    assert value_encodings("GET") == (b"GET",)
    assert value_encodings("true") == (b"true", b"\x10\x01", b"\xb6\xbb\x9e")  # also base64
    number = value_encodings("123")
    assert number is not None and b"\x18\x7b" in number and len(number) == 3  # str, int, double


def _padded(value: int) -> bytes:
    """A varint in five bytes: valid protobuf, though no mainstream encoder writes it."""
    return bytes([(value >> (7 * i) & 0x7F) | (0x80 if i < 4 else 0) for i in range(5)])


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2]) + _padded(len(payload)) + payload


def test_search_does_not_rely_on_how_the_client_encoded_the_span(backend: Backend) -> None:
    """`raw` is a slice of the client's request: fields may come in any order and lengths may be
    padded. Here each KeyValue puts its value before its key."""
    string_kv = _field(2, _field(1, b"v a l")) + _field(1, b"k.str")
    int_kv = _field(2, b"\x18\x7b") + _field(1, b"k.int")
    raw = (
        _field(5, b"op")
        + _field(9, string_kv)
        + _field(9, int_kv)
        + _field(2, b"\x00" * 7 + b"\x01")
        + _field(1, trace_id(1))
        + b"\x39" + (BASE_NS).to_bytes(8, "little")
        + b"\x41" + (BASE_NS + 1000).to_bytes(8, "little")
    )  # fmt: skip
    decoded = PbSpan.FromString(raw)
    assert [kv.key for kv in decoded.attributes] == ["k.str", "k.int"]
    row = SpanRow(trace_id(1), decoded.span_id, b"", "op", 0, BASE_NS, BASE_NS + 1000, 0, raw)
    batch = SpanBatch([ResourceGroup(process("svc"), Scope(), [row])])
    backend.run(backend.storage.writer().write(batch))

    assert _found(backend, **{"k.str": "v a l"}) == [1]
    assert _found(backend, **{"k.int": "123"}) == [1]
    assert _found(backend, **{"k.int": "124"}) == []


@given(span=any_spans())
def test_every_stored_attribute_finds_its_trace(span: Span) -> None:
    """Whatever the span holds, searching for any one of its attributes finds it."""
    storage = MemoryStorage()
    backend = Backend(storage, asyncio.new_event_loop())
    try:
        backend.write([span])
        assert backend.get_trace(span.trace_id) == [span]
        places = [span.attributes, span.resource.attributes, span.scope.attributes]
        places += [e.attributes for e in span.events] + [lk.attributes for lk in span.links]
        for attributes in places:
            for key, value in attributes.items():
                if key in SPECIAL_KEYS or key.startswith("resource."):
                    continue
                query = TraceQuery(tags={key: value_to_text(value)})
                assert trace_ids(backend.find(query)) == [span.trace_id], (key, value)
    finally:
        backend.loop.close()


def test_tag_test_dispatch() -> None:
    assert type(tag_test("error", "maybe")) is TagTest
    assert type(tag_test("http.method", "GET")) is TagTest
