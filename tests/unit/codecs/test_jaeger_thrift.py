"""Jaeger Thrift codec: datagrams from the real jaeger-client, the OpenTelemetry translator's rules
case by case, Thrift written by jaeger-client's own generated classes, a plain reference mapping
checked against the fast path, round trips, and hostile bytes that must end in DecodeError."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import tracemalloc
from collections.abc import Iterator
from typing import Any

import opentracing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jaeger_client.thrift_gen.agent import Agent as TheirAgent
from jaeger_client.thrift_gen.jaeger import ttypes as theirs
from thrift.protocol.TBinaryProtocol import TBinaryProtocol, TBinaryProtocolFactory
from thrift.protocol.TCompactProtocol import TCompactProtocolFactory
from thrift.Thrift import TMessageType
from thrift.transport.TTransport import TMemoryBuffer

from tests.unit.codecs.jaeger_reference import reference_spans
from tests.unit.collector.jaeger_tracers import jaeger_tracer
from tracemesh.codecs import DecodeError
from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.jaeger_json import trace_json
from tracemesh.codecs.jaeger_thrift import (
    batch_to_thrift,
    decode_batch,
    decode_emit_batch,
    emit_batch_message,
    spans_from_rows,
)
from tracemesh.model.attributes import AttrValue
from tracemesh.model.span import (
    REF_TYPE_KEY,
    Event,
    Link,
    Resource,
    Scope,
    Span,
    SpanKind,
    Status,
    StatusCode,
)

T0 = 1_700_000_000_000_000  # µs
STRING, DOUBLE, BOOL, LONG, BINARY = 0, 1, 2, 3, 4


def tag(key: str, value: AttrValue) -> ts.Tag:
    if isinstance(value, bool):
        return ts.Tag(key, BOOL, vBool=value)
    if isinstance(value, int):
        return ts.Tag(key, LONG, vLong=value)
    if isinstance(value, float):
        return ts.Tag(key, DOUBLE, vDouble=value)
    if isinstance(value, bytes):
        return ts.Tag(key, BINARY, vBinary=value)
    assert isinstance(value, str)
    return ts.Tag(key, STRING, vStr=value)


def jspan(span_id: int = 2, **fields: Any) -> ts.Span:
    defaults: dict[str, Any] = {
        "traceIdLow": 1, "traceIdHigh": 0, "parentSpanId": 0, "operationName": "op",
        "flags": 1, "startTime": T0, "duration": 1500,
    }  # fmt: skip
    return ts.Span(spanId=span_id, **{**defaults, **fields})


def batch(*spans: ts.Span, process: ts.Process | None = None) -> ts.Batch:
    return ts.Batch(process=process or ts.Process("svc", []), spans=list(spans))


def decode(value: ts.Batch) -> list[Span]:
    """Through bytes and the fast path, then checked against the plain reference."""
    decoded = decode_batch(ts.encode_struct(value, "binary"))
    spans = spans_from_rows(decoded.batch)
    expected, rejected = reference_spans(value)
    assert spans == expected
    assert decoded.rejected == rejected
    return spans


def one(value: ts.Batch) -> Span:
    spans = decode(value)
    assert len(spans) == 1
    return spans[0]


# ---- the real jaeger-client --------------------------------------------------------------------


@pytest.fixture
def udp_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def datagrams(sock: socket.socket) -> list[bytes]:
    """Everything sent so far: the first wait is long, then a short silence ends it."""
    out = [sock.recvfrom(70_000)[0]]
    sock.settimeout(0.3)
    try:
        while True:
            out.append(sock.recvfrom(70_000)[0])
    except TimeoutError:
        return out


def test_real_client_spans_map_like_the_translator(udp_socket: socket.socket) -> None:
    port = udp_socket.getsockname()[1]
    with jaeger_tracer(port, "checkout", generate_128bit_trace_id=True) as tracer:
        typed = {"str": "v<b>", "int": -42, "float": 2.5, "bool": True}
        root = tracer.start_span("GET /cart", tags={"span.kind": "server", **typed})
        root.log_kv({"event": "cache-miss", "key": "cart:1", "size": 3})
        child_tags = {"span.kind": "client", "error": True, "db.rows": 7}
        child = tracer.start_span("SELECT", child_of=root, tags=child_tags)
        child.finish()
        follower = tracer.start_span("audit", references=[opentracing.follows_from(root.context)])
        follower.finish()
        root.finish()
    spans: list[Span] = []
    for data in datagrams(udp_socket):
        decoded = decode_emit_batch(data, "compact")
        assert decoded.rejected == 0
        spans += spans_from_rows(decoded.batch)
    by_name = {s.name: s for s in spans}
    assert sorted(by_name) == ["GET /cart", "SELECT", "audit"]
    root_s, child_s, follower_s = by_name["GET /cart"], by_name["SELECT"], by_name["audit"]

    trace_id = root.context.trace_id.to_bytes(16, "big")
    assert trace_id[:8] != bytes(8)  # 128-bit ids survive the signed halves
    assert {s.trace_id for s in spans} == {trace_id}
    assert root_s.span_id == root.context.span_id.to_bytes(8, "big")
    assert root_s.parent_span_id == b""
    assert child_s.parent_span_id == root_s.span_id
    assert (root_s.kind, child_s.kind, follower_s.kind) == (
        SpanKind.SERVER, SpanKind.CLIENT, SpanKind.UNSPECIFIED,
    )  # fmt: skip
    assert root_s.attributes == {"sampler.type": "const", "sampler.param": True, "str": "v<b>",
                                 "int": -42, "float": 2.5, "bool": True}  # fmt: skip
    assert child_s.attributes == {"db.rows": 7}
    assert child_s.status == Status(StatusCode.ERROR)
    assert root_s.status == Status()
    assert root_s.events == [
        Event(root_s.events[0].time_ns, "cache-miss", {"key": "cart:1", "size": 3})
    ]
    assert root_s.start_ns <= root_s.events[0].time_ns <= root_s.end_ns
    assert root_s.start_ns % 1000 == 0 and root_s.end_ns > root_s.start_ns
    # jaeger-client makes the followed span the parent and also sends the reference.
    assert follower_s.parent_span_id == root_s.span_id
    assert follower_s.links == [
        Link(trace_id, root_s.span_id, attributes={REF_TYPE_KEY: "follows_from"})
    ]
    assert {s.flags for s in spans} == {1}
    assert root_s.resource.attributes == {
        "service.name": "checkout", "ip": "10.1.2.3", "host.name": "test-host",
        "opencensus.exporterversion": "Jaeger-Python-4.8.0",
    }  # fmt: skip

    shown = trace_json([root_s, child_s, follower_s])
    child_json = shown["spans"][1]  # type: ignore[index]
    assert {"key": "error", "type": "bool", "value": True} in child_json["tags"]
    assert {"key": "span.kind", "type": "string", "value": "client"} in child_json["tags"]
    assert shown["spans"][2]["references"] == [  # type: ignore[index]
        {"refType": "FOLLOWS_FROM", "traceID": trace_id.hex(), "spanID": root_s.span_id.hex()}
    ]


def test_real_client_64_bit_ids_and_full_datagrams(udp_socket: socket.socket) -> None:
    port = udp_socket.getsockname()[1]
    with jaeger_tracer(port, "bulk", reporter_batch_size=50, reporter_queue_size=200) as tracer:
        for i in range(120):
            tracer.start_span(f"op-{i % 5}", tags={"i": i, "text": "x" * 40}).finish()
    total = 0
    for data in datagrams(udp_socket):
        spans = spans_from_rows(decode_emit_batch(data, "compact").batch)
        assert all(s.trace_id[:8] == bytes(8) for s in spans)
        total += len(spans)
    assert total == 120


def their_message(name: str, args: Any, factory: Any) -> bytes:
    """What jaeger-client's generated `Agent.Client.send_<name>` writes, without its tornado IO."""
    trans = TMemoryBuffer()
    prot = factory.getProtocol(trans)
    prot.writeMessageBegin(name, TMessageType.ONEWAY, 1)
    args.write(prot)
    prot.writeMessageEnd()
    return bytes(trans.getvalue())


def test_their_generated_classes_and_ours_agree() -> None:
    """jaeger-client's Thrift 0.9.3 generated code writes what we read, and reads what we write."""
    their_batch = theirs.Batch(
        process=theirs.Process("svc", [theirs.Tag("hostname", theirs.TagType.STRING, vStr="h")]),
        spans=[theirs.Span(
            traceIdLow=-5, traceIdHigh=7, spanId=-9, parentSpanId=3, operationName="op",
            references=[theirs.SpanRef(theirs.SpanRefType.FOLLOWS_FROM, 1, 2, 4)], flags=1,
            startTime=T0, duration=10,
            tags=[theirs.Tag("l", theirs.TagType.LONG, vLong=-(2**63)),
                  theirs.Tag("d", theirs.TagType.DOUBLE, vDouble=-0.5)],
            logs=[theirs.Log(T0 + 1, [theirs.Tag("event", theirs.TagType.STRING, vStr="e")])],
        )],
    )  # fmt: skip
    for factory, protocol in ((TBinaryProtocolFactory(), "binary"),
                              (TCompactProtocolFactory(), "compact")):  # fmt: skip
        data = their_message("emitBatch", TheirAgent.emitBatch_args(their_batch), factory)
        (span,) = spans_from_rows(decode_emit_batch(data, protocol).batch)
        assert span.trace_id == struct.pack(">qq", 7, -5)
        assert span.span_id == struct.pack(">q", -9)
        assert span.parent_span_id == struct.pack(">q", 3)
        assert span.attributes == {"l": -(2**63), "d": -0.5}
        assert span.events == [Event((T0 + 1) * 1000, "e")]
        follows = {REF_TYPE_KEY: "follows_from"}
        assert span.links == [
            Link(struct.pack(">qq", 2, 1), struct.pack(">q", 4), attributes=follows)
        ]
        assert span.resource.attributes == {"service.name": "svc", "host.name": "h"}

    ours = batch_to_thrift(spans_from_rows(decode_batch(ts.encode_struct(
        batch(jspan(tags=[tag("k", "v")])), "binary")).batch))  # fmt: skip
    read_back = theirs.Batch()
    read_back.read(TBinaryProtocol(TMemoryBuffer(ours)))
    assert read_back.process.serviceName == "svc"
    assert read_back.spans[0].tags[0].key == "k" and read_back.spans[0].tags[0].vStr == "v"


# ---- the mapping, rule by rule -----------------------------------------------------------------


def test_ids_are_unsigned_halves() -> None:
    span = one(batch(jspan(traceIdHigh=-1, traceIdLow=-2, span_id=-3, parentSpanId=-4)))
    assert span.trace_id == b"\xff" * 8 + b"\xff" * 7 + b"\xfe"
    assert span.span_id == b"\xff" * 7 + b"\xfd"
    assert span.parent_span_id == b"\xff" * 7 + b"\xfc"


def ref(ref_type: int, span_id: int, low: int = 1, high: int = 0) -> ts.SpanRef:
    return ts.SpanRef(ref_type, low, high, span_id)


CHILD_OF, FOLLOWS_FROM = ts.SpanRefType.CHILD_OF, ts.SpanRefType.FOLLOWS_FROM


@pytest.mark.parametrize(
    ("refs", "parent", "links"),
    [
        ([ref(CHILD_OF, 7)], 7, []),
        ([ref(FOLLOWS_FROM, 7)], 7, [(7, "follows_from")]),
        ([ref(FOLLOWS_FROM, 5), ref(CHILD_OF, 7)], 7, [(5, "follows_from")]),
        ([ref(CHILD_OF, 7, low=99)], 0, [(7, "child_of")]),  # another trace: a link only
        ([ref(CHILD_OF, 7), ref(CHILD_OF, 8)], 7, [(8, "child_of")]),
        ([ref(5, 7)], 0, [(7, "follows_from")]),  # unknown type: neither parent nor CHILD_OF
    ],
)
def test_parent_from_references(
    refs: list[ts.SpanRef], parent: int, links: list[tuple[int, str]]
) -> None:
    span = one(batch(jspan(references=refs)))
    assert span.parent_span_id == (parent.to_bytes(8, "big") if parent else b"")
    got = [(int.from_bytes(lk.span_id, "big"), lk.attributes[REF_TYPE_KEY]) for lk in span.links]
    assert got == links


def test_parent_field_wins_and_its_reference_is_not_repeated() -> None:
    span = one(batch(jspan(parentSpanId=3, references=[ref(CHILD_OF, 3), ref(FOLLOWS_FROM, 4)])))
    assert span.parent_span_id == (3).to_bytes(8, "big")
    assert [lk.span_id for lk in span.links] == [(4).to_bytes(8, "big")]


@pytest.mark.parametrize(
    ("tags", "status", "left"),
    [
        ([tag("error", True)], Status(StatusCode.ERROR), {}),
        ([tag("error", True), tag("otel.status_description", "boom")],
         Status(StatusCode.ERROR, "boom"), {}),
        ([tag("error", True), tag("http.status_message", "Bad")],
         Status(StatusCode.ERROR, "Bad"), {"http.status_message": "Bad"}),
        ([tag("error", False)], Status(), {"error": False}),
        ([tag("error", "true")], Status(), {"error": "true"}),
        ([tag("otel.status_code", "OK")], Status(StatusCode.OK), {}),
        ([tag("otel.status_code", "error"), tag("otel.status_description", "x")],
         Status(StatusCode.ERROR, "x"), {}),
        ([tag("otel.status_code", "nonsense")], Status(), {}),
        ([tag("error", True), tag("otel.status_code", "OK")], Status(StatusCode.ERROR), {}),
        ([tag("http.status_code", 500)], Status(StatusCode.ERROR), {"http.status_code": 500}),
        ([tag("http.status_code", "503")], Status(StatusCode.ERROR), {"http.status_code": "503"}),
        ([tag("http.status_code", 200)], Status(), {"http.status_code": 200}),
        ([tag("http.status_code", "abc")], Status(), {"http.status_code": "abc"}),
        ([tag("http.status_code", 404), tag("span.kind", "server")], Status(),
         {"http.status_code": 404}),
        ([tag("http.status_code", 404), tag("span.kind", "client"),
          tag("http.status_message", "Not Found")],
         Status(StatusCode.ERROR, "Not Found"),
         {"http.status_code": 404, "http.status_message": "Not Found"}),
        ([tag("error", True), tag("error", "no")], Status(), {"error": "no"}),  # last one counts
    ],
)  # fmt: skip
def test_status(tags: list[ts.Tag], status: Status, left: dict[str, AttrValue]) -> None:
    span = one(batch(jspan(tags=tags)))
    assert span.status == status
    assert span.attributes == left


@pytest.mark.parametrize(
    ("value", "kind"),
    [("server", SpanKind.SERVER), ("client", SpanKind.CLIENT), ("producer", SpanKind.PRODUCER),
     ("consumer", SpanKind.CONSUMER), ("internal", SpanKind.INTERNAL),
     ("weird", SpanKind.UNSPECIFIED), (2, SpanKind.UNSPECIFIED)],
)  # fmt: skip
def test_kind(value: AttrValue, kind: SpanKind) -> None:
    span = one(batch(jspan(tags=[tag("a", 1), tag("span.kind", value)])))
    assert span.kind is kind
    assert span.attributes == {"a": 1}


def test_scope_trace_state_and_typed_values() -> None:
    tags = [
        tag("otel.scope.name", "lib"), tag("otel.scope.version", "1.2"),
        tag("w3c.tracestate", "a=b"), tag("s", ""), tag("d", 1e300), tag("b", b"\x00"),
        tag("l", -(2**63)), ts.Tag("odd", 9), ts.Tag("nolong", LONG), ts.Tag("nostr"),
    ]  # fmt: skip
    span = one(batch(jspan(tags=tags)))
    assert span.scope == Scope("lib", "1.2")
    assert span.trace_state == "a=b"
    assert span.attributes == {
        "s": "", "d": 1e300, "b": b"\x00", "l": -(2**63),
        "odd": "<Unknown Jaeger TagType 9>", "nolong": 0, "nostr": "",
    }  # fmt: skip
    alone = one(batch(jspan(tags=[tag("otel.scope.version", "1.2")])))
    assert alone.scope == Scope() and alone.attributes == {"otel.scope.version": "1.2"}


def test_spans_of_different_scopes_are_grouped_apart() -> None:
    spans = [jspan(i, tags=[tag("otel.scope.name", f"lib{i % 2}")]) for i in range(1, 5)]
    decoded = decode_batch(ts.encode_struct(batch(*spans), "binary"))
    assert [(g.scope.name, len(g.rows)) for g in decoded.batch.groups] == [("lib1", 2), ("lib0", 2)]
    assert len({id(g.resource) for g in decoded.batch.groups}) == 1


def test_logs_become_events() -> None:
    logs = [
        ts.Log(T0 + 5, [tag("event", "retry"), tag("attempt", 2)]),
        ts.Log(T0 + 6, [tag("message", "no name")]),
        ts.Log(T0 + 7, [tag("event", 3)]),
        ts.Log(T0 + 8, None),
    ]
    span = one(batch(jspan(logs=logs)))
    assert span.events == [
        Event((T0 + 5) * 1000, "retry", {"attempt": 2}),
        Event((T0 + 6) * 1000, "", {"message": "no name"}),
        Event((T0 + 7) * 1000, ""),
        Event((T0 + 8) * 1000, ""),
    ]


def test_process_becomes_the_resource() -> None:
    process = ts.Process("svc", [tag("hostname", "h"), tag("jaeger.version", "Go-2.30.0"),
                                 tag("ip", "10.0.0.1"), tag("n", 3)])  # fmt: skip
    span = one(batch(jspan(), process=process))
    assert span.resource == Resource({
        "service.name": "svc", "ip": "10.0.0.1", "n": 3, "host.name": "h",
        "opencensus.exporterversion": "Jaeger-Go-2.30.0",
    })  # fmt: skip
    kept = one(batch(jspan(), process=ts.Process("svc", [tag("hostname", "h"),
                                                         tag("host.name", "real")])))  # fmt: skip
    assert kept.resource.attributes == {"service.name": "svc", "hostname": "h", "host.name": "real"}
    assert one(ts.Batch(ts.Process(), [jspan()])).resource == Resource()
    for lacking in (ts.Batch(spans=[]), ts.Batch(ts.Process("svc"))):
        with pytest.raises(DecodeError, match="the Batch has no"):
            decode_batch(ts.encode_struct(lacking, "binary"))


@pytest.mark.parametrize(("flags", "expected"), [(0, 0), (1, 1), (2, 0), (3, 1), (None, 0)])
def test_sampled_flag(flags: int | None, expected: int) -> None:
    assert one(batch(jspan(flags=flags))).flags == expected


def test_times_are_microseconds() -> None:
    span = one(batch(jspan(startTime=T0, duration=0)))
    assert (span.start_ns, span.end_ns) == (T0 * 1000, T0 * 1000)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (jspan(traceIdLow=0, traceIdHigh=0), "zero trace id"),
        (jspan(0), "zero span id"),
        (jspan(startTime=0), "no start time"),
        (jspan(startTime=-5), "no start time"),
        (jspan(startTime=2**63 - 1), "beyond the year 2554"),
        (jspan(logs=[ts.Log(-1, [])]), "log timestamp -1 is out of range"),
        (ts.Span(), "zero trace id"),
    ],
)
def test_unstorable_spans_are_rejected_and_the_rest_kept(bad: ts.Span, reason: str) -> None:
    decoded = decode_batch(ts.encode_struct(batch(jspan(5), bad, jspan(6)), "binary"))
    assert decoded.rejected == 1
    assert reason in decoded.error
    assert [s.span_id[-1] for s in spans_from_rows(decoded.batch)] == [5, 6]


def test_rows_carry_the_index_fields() -> None:
    tags = [tag("span.kind", "client"), tag("error", True)]
    decoded = decode_batch(ts.encode_struct(batch(jspan(parentSpanId=9, tags=tags)), "binary"))
    (row,) = decoded.batch.groups[0].rows
    assert row.trace_id == (1).to_bytes(16, "big") and row.span_id == (2).to_bytes(8, "big")
    assert row.parent_span_id == (9).to_bytes(8, "big") and row.name == "op"
    assert (row.kind, row.status_code) == (SpanKind.CLIENT, StatusCode.ERROR)
    assert (row.start_ns, row.end_ns) == (T0 * 1000, (T0 + 1500) * 1000)


def test_invalid_utf8_is_repaired_not_fatal() -> None:
    data = ts.encode_struct(batch(jspan(tags=[tag("k", "AAAA")])), "binary")
    span = one_from_bytes(data.replace(b"AAAA", b"A\xffA\xfe"))
    assert span.attributes == {"k": b"A\xffA\xfe"}  # as Jaeger does: the value kept as bytes
    assert span.warnings == ["an attribute value was not valid UTF-8; stored as bytes"]


def one_from_bytes(data: bytes) -> Span:
    (span,) = spans_from_rows(decode_batch(data).batch)
    return span


# ---- the fast path against the reference, on arbitrary batches ---------------------------------

keys = st.sampled_from(
    ["a", "b", "error", "span.kind", "otel.status_code", "otel.status_description",
     "otel.scope.name", "otel.scope.version", "w3c.tracestate", "http.status_code",
     "http.status_message", "event"]
) | st.text(max_size=8)  # fmt: skip
i64 = st.integers(-(2**63), 2**63 - 1)
tags_st = st.lists(
    st.builds(
        ts.Tag, keys, st.sampled_from([None, 0, 1, 2, 3, 4, 7]),
        st.none() | st.sampled_from(["OK", "ERROR", "server", "client", "500", "404", "x"]),
        st.none() | st.floats(allow_nan=False), st.none() | st.booleans(),
        st.none() | st.sampled_from([0, 200, 404, 500, -1]) | i64,
        st.none() | st.binary(max_size=4),
    ),
    max_size=6,
)  # fmt: skip
small_ids = st.integers(-3, 3)
refs_st = st.lists(st.builds(ts.SpanRef, st.sampled_from([None, 0, 1, 2]), small_ids, small_ids,
                             small_ids), max_size=3)  # fmt: skip
logs_st = st.lists(st.builds(ts.Log, st.integers(-1, 2**60), tags_st | st.none()), max_size=2)
spans_st = st.builds(
    ts.Span, small_ids, small_ids, small_ids, small_ids, st.none() | st.text(max_size=5),
    refs_st | st.none(), st.none() | st.integers(0, 3), st.none() | st.integers(-1, 2**60),
    st.none() | st.integers(-1, 10**6), tags_st | st.none(), logs_st | st.none(),
)  # fmt: skip
batches_st = st.builds(ts.Batch, st.builds(ts.Process, st.text(max_size=5), tags_st),
                       st.lists(spans_st, max_size=4))  # fmt: skip


@given(batches_st)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_fast_path_matches_the_reference(value: ts.Batch) -> None:
    decode(value)  # asserts equality with the reference


# ---- round trips --------------------------------------------------------------------------------

SPECIAL = {"error", "span.kind", "otel.status_code", "otel.status_description", "event",
           "otel.scope.name", "otel.scope.version", "w3c.tracestate", "http.status_code",
           "http.status_message", "hostname", "jaeger.version", "service.name"}  # fmt: skip
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
plain_keys = text.filter(lambda k: k not in SPECIAL)
scalars: st.SearchStrategy[AttrValue] = (
    text | st.booleans() | i64 | st.floats(allow_nan=False) | st.binary(max_size=8)
)
attrs = st.dictionaries(plain_keys, scalars, max_size=4)
us = st.integers(1, 2**50).map(lambda n: n * 1000)
ids8 = st.binary(min_size=8, max_size=8).filter(any)
ids16 = st.binary(min_size=16, max_size=16).filter(any)


@st.composite
def model_spans(draw: st.DrawFn) -> list[Span]:
    resource = Resource({"service.name": draw(text.filter(bool)), **draw(attrs)})
    out = []
    for _ in range(draw(st.integers(1, 3))):
        start = draw(us)
        trace_id = draw(ids16)
        parent = draw(st.just(b"") | ids8)
        scope_name = draw(text)
        # Without a parent, a reference into the span's own trace would be read as the parent.
        link_traces = ids16.filter(lambda t, p=parent, own=trace_id: bool(p) or t != own)
        link_spans = ids8.filter(lambda s, p=parent: s != p)
        ref_types = st.sampled_from(["child_of", "follows_from"]).map(lambda t: {REF_TYPE_KEY: t})
        links = draw(st.lists(st.builds(Link, link_traces, link_spans, attributes=ref_types),
                              max_size=2))  # fmt: skip
        out.append(Span(
            trace_id=trace_id, span_id=draw(ids8), name=draw(text), start_ns=start,
            end_ns=start + draw(st.integers(0, 10**9)) * 1000, parent_span_id=parent,
            kind=draw(st.sampled_from(SpanKind)), attributes=draw(attrs),
            events=draw(st.lists(st.builds(Event, us, text, attrs), max_size=2)), links=links,
            status=draw(st.just(Status()) | st.builds(Status, st.sampled_from(
                [StatusCode.OK, StatusCode.ERROR]), text)),
            trace_state=draw(text), flags=draw(st.integers(0, 1)), resource=resource,
            scope=Scope(scope_name, draw(text) if scope_name else ""),
        ))  # fmt: skip
    return out


@given(model_spans(), st.sampled_from(ts.PROTOCOLS))
@settings(max_examples=200)
def test_model_round_trip(spans: list[Span], protocol: str) -> None:
    decoded = decode_batch(batch_to_thrift(spans, protocol), protocol)
    assert decoded.rejected == 0
    # Rows come grouped by scope, so spans of different scopes may come back reordered.
    assert sorted(spans_from_rows(decoded.batch), key=repr) == sorted(spans, key=repr)
    message = decode_emit_batch(emit_batch_message(spans, protocol, seqid=7), protocol)
    assert sorted(spans_from_rows(message.batch), key=repr) == sorted(spans, key=repr)


def test_encoder_renders_what_thrift_cannot_type() -> None:
    untyped: dict[str, AttrValue] = {"list": [1, "a"], "map": {"k": None}, "none": None,
                                     "big": 2**64}  # fmt: skip
    span = Span(b"\x01" * 16, b"\x02" * 8, "op", 10**18, 10**18 + 10**9, attributes=untyped)
    (back,) = spans_from_rows(decode_batch(batch_to_thrift([span])).batch)
    assert back.attributes == {"list": '[1,"a"]', "map": '{"k":null}', "none": "",
                               "big": str(2**64)}  # fmt: skip
    assert back.resource.attributes == {"service.name": "unknown_service"}


def test_a_batch_has_one_process() -> None:
    a = Span(b"\x01" * 16, b"\x02" * 8, "a", 1000, 2000, resource=Resource({"service.name": "a"}))
    b = Span(b"\x01" * 16, b"\x03" * 8, "b", 1000, 2000, resource=Resource({"service.name": "b"}))
    with pytest.raises(ValueError, match="one process"):
        batch_to_thrift([a, b])


# ---- hostile bytes -----------------------------------------------------------------------------


def sample_message(protocol: str = "compact") -> bytes:
    value = batch(jspan(tags=[tag("k", "v"), tag("n", 5)], logs=[ts.Log(T0, [tag("event", "e")])],
                        references=[ref(FOLLOWS_FROM, 9)]), jspan(3))  # fmt: skip
    return ts.encode_message(ts.EMIT_BATCH, 1, ts.EmitBatchArgs(value), protocol)


@pytest.mark.parametrize("protocol", ts.PROTOCOLS)
def test_every_truncation_is_a_decode_error(protocol: str) -> None:
    data = sample_message(protocol)
    assert len(spans_from_rows(decode_emit_batch(data, protocol).batch)) == 2
    for size in range(len(data) - 1):  # the last byte is the args' stop: without it, EOF too
        with pytest.raises(DecodeError):
            decode_emit_batch(data[:size], protocol)


@pytest.mark.parametrize(
    ("data", "protocol", "message"),
    [
        (b"", "compact", "empty message"),
        (sample_message("binary"), "compact", "Thrift binary protocol? use the binary port"),
        (sample_message("compact"), "binary", "Thrift compact protocol? use the compact port"),
        (sample_message().replace(b"emitBatch", b"emitBatcX"), "compact",
         "unknown method 'emitBatcX'; expected emitBatch"),
        (ts.encode_message("emitBatch", 1, ts.EmitBatchArgs(), "compact"), "compact",
         "carries no Batch"),
        (b"\x00" + os.urandom(64_999), "compact", "not a Thrift compact"),
    ],
)  # fmt: skip
def test_hostile_messages_say_what_is_wrong(data: bytes, protocol: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message.replace("?", r"\?")):
        decode_emit_batch(data, protocol)


def test_reply_messages_are_not_calls() -> None:
    data = bytearray(sample_message("compact"))
    data[1] = (data[1] & 0x1F) | (2 << 5)  # REPLY
    with pytest.raises(DecodeError, match="not a call"):
        decode_emit_batch(bytes(data), "compact")


def compact_header() -> bytes:
    return b"\x82\x81\x01\x09emitBatch"  # protocol id, ONEWAY v1, seqid 1, name


@pytest.mark.parametrize(
    "body",
    [
        b"\x1c\x19\xfc\xff\xff\xff\x07",  # batch.process: list of 2^31-1 structs claimed
        b"\x1c\x29\xfc\xff\xff\xff\x07",  # batch.spans: the same
        b"\x1c\x1c\x18\xff\xff\xff\xff\x07",  # process.serviceName: a 2 GB string claimed
        b"\x1c\x5c" + b"\x1c" * 60_000,  # unknown nested structs, 60,000 deep
        b"\x1c\x59" + b"\x19" * 60_000,  # unknown nested lists, 60,000 deep
    ],
)
def test_memory_and_stack_bombs_fail_fast(body: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            decode_emit_batch(compact_header() + body, "compact")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


@given(st.binary(max_size=300), st.sampled_from(ts.PROTOCOLS))
@settings(max_examples=500)
def test_arbitrary_bytes_only_raise_decode_error(data: bytes, protocol: str) -> None:
    for decoder in (decode_emit_batch, decode_batch):
        with contextlib.suppress(DecodeError):
            decoder(data, protocol)


@given(st.data(), st.sampled_from(ts.PROTOCOLS))
@settings(max_examples=500)
def test_mutated_messages_only_raise_decode_error(data: st.DataObject, protocol: str) -> None:
    message = bytearray(sample_message(protocol))
    for _ in range(data.draw(st.integers(1, 4))):
        message[data.draw(st.integers(0, len(message) - 1))] = data.draw(st.integers(0, 255))
    try:
        decoded = decode_emit_batch(bytes(message), protocol)
    except DecodeError:
        return
    spans_from_rows(decoded.batch)  # whatever was accepted is valid OTLP
