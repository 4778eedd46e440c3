"""Jaeger api_v2 protobuf <-> model: round trips of every field the translator carries, each
translation rule of OpenTelemetry's `jaegerproto_to_traces`, and hostile bytes."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from tracemesh.codecs import DecodeError
from tracemesh.codecs.jaeger_json import go_json_text
from tracemesh.codecs.jaeger_proto import (
    NO_SERVICE_NAME,
    decode_post_spans,
    parse_post_spans,
    request_from_spans,
    span_to_pb,
    spans_from_batch,
    tag,
)
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.codecs.proto import jaeger_model_pb2 as pb
from tracemesh.codecs.proto.jaeger_collector_pb2 import PostSpansRequest
from tracemesh.model.attributes import Attributes, AttrValue
from tracemesh.model.span import (
    Event,
    Link,
    Resource,
    Scope,
    Span,
    SpanKind,
    Status,
    StatusCode,
)

TRACE = bytes(range(1, 17))
SPAN = b"\x00\x00\x00\x00\x00\x00\x00\x05"
PARENT = b"\x00\x00\x00\x00\x00\x00\x00\x04"
START_NS = 1_700_000_000_123_456_789

# ---- round trips -------------------------------------------------------------------------------

RESERVED = {
    "span.kind", "error", "otel.status_code", "otel.status_description", "w3c.tracestate",
    "otel.scope.name", "otel.scope.version", "http.status_code", "http.status_message",
    "event", "service.name", "hostname", "host.name", "jaeger.version",
    "opencensus.exporterversion",
}  # fmt: skip
keys = st.text(max_size=12).filter(lambda k: k not in RESERVED)
scalars = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=20),
    st.none(),
)
values: st.SearchStrategy[AttrValue] = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
attributes = st.dictionaries(keys, values, max_size=5)
ids16 = st.binary(min_size=16, max_size=16).filter(any)
ids8 = st.binary(min_size=8, max_size=8).filter(any)
times = st.integers(min_value=1, max_value=2**62)


@st.composite
def resources(draw: st.DrawFn) -> Resource:
    if draw(st.booleans()):
        return Resource()
    attrs: Attributes = {"service.name": draw(st.text(min_size=1, max_size=10))}
    attrs.update(draw(attributes))
    return Resource(attrs)


@st.composite
def jaeger_spans(draw: st.DrawFn, resource: Resource, scope: Scope) -> Span:
    """Spans that only use what api_v2 can carry (no flags, dropped counts, link attributes)."""
    start = draw(times)
    code = draw(st.sampled_from(StatusCode))
    ref_types = st.sampled_from(["child_of", "follows_from"])
    trace_id = draw(ids16)
    # a link into the span's own trace may become the parent on the way back (tested below)
    other_traces = ids16.filter(lambda t: t != trace_id)
    return Span(
        trace_id=trace_id,
        span_id=draw(ids8),
        name=draw(st.text(max_size=20)),
        start_ns=start,
        end_ns=start + draw(st.integers(min_value=0, max_value=2**40)),
        parent_span_id=draw(st.just(b"") | ids8),
        kind=draw(st.sampled_from(SpanKind)),
        attributes=draw(attributes),
        events=draw(st.lists(st.builds(Event, times, st.text(max_size=8), attributes), max_size=3)),
        links=[
            Link(trace_id, span_id, "", {"opentracing.ref_type": ref_type})
            for trace_id, span_id, ref_type in draw(
                st.lists(st.tuples(other_traces, ids8, ref_types), max_size=3)
            )
        ],
        status=Status(code, draw(st.text(max_size=8)) if code else ""),
        trace_state=draw(st.text(max_size=10)),
        resource=resource,
        scope=scope,
    )


@st.composite
def span_lists(draw: st.DrawFn) -> list[Span]:
    pool = [draw(resources()) for _ in range(draw(st.integers(1, 3)))]
    scope_names = st.sampled_from([("", ""), ("lib", ""), ("lib", "1.2"), ("other", "9")])
    scopes = [Scope(*draw(scope_names)) for _ in range(2)]
    return [
        draw(jaeger_spans(draw(st.sampled_from(pool)), draw(st.sampled_from(scopes))))
        for _ in range(draw(st.integers(1, 5)))
    ]


def as_jaeger_value(value: AttrValue) -> AttrValue:
    """What a model attribute becomes after a trip through a Jaeger tag."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return go_json_text(value)
    return value


def as_jaeger(attrs: Attributes) -> Attributes:
    return {k: as_jaeger_value(v) for k, v in attrs.items()}


def comparable(span: Span) -> tuple[object, ...]:
    return (
        span.trace_id,
        span.span_id,
        span.name,
        span.start_ns,
        span.end_ns,
        span.parent_span_id,
        span.kind,
        span.attributes,
        [(e.time_ns, e.name, e.attributes) for e in span.events],
        [(lk.trace_id, lk.span_id, lk.attributes) for lk in span.links],
        (span.status.code, span.status.message),
        span.trace_state,
        span.resource.attributes,
        (span.scope.name, span.scope.version),
    )


def expected_after_trip(span: Span) -> tuple[object, ...]:
    resource = Resource(as_jaeger(span.resource.attributes))
    events = [Event(e.time_ns, e.name, as_jaeger(e.attributes)) for e in span.events]
    return comparable(
        Span(
            trace_id=span.trace_id,
            span_id=span.span_id,
            name=span.name,
            start_ns=span.start_ns,
            end_ns=span.end_ns,
            parent_span_id=span.parent_span_id,
            kind=span.kind,
            attributes=as_jaeger(span.attributes),
            events=events,
            links=span.links,
            status=span.status,
            trace_state=span.trace_state,
            resource=resource,
            scope=span.scope,
        )
    )


@given(span_lists())
def test_model_spans_survive_a_trip_through_api_v2(spans: list[Span]) -> None:
    wire = request_from_spans(spans).SerializeToString()
    decoded = decode_post_spans(wire)
    assert decoded.rejected == 0
    assert [comparable(s) for s in decoded.spans] == [expected_after_trip(s) for s in spans]


@given(span_lists())
def test_spans_sharing_a_process_and_scope_share_one_group(spans: list[Span]) -> None:
    decoded = decode_post_spans(request_from_spans(spans).SerializeToString())
    groups = batch_from_spans(decoded.spans).groups
    distinct = {(repr(s.resource.attributes), s.scope.name, s.scope.version) for s in decoded.spans}
    assert len(groups) == len(distinct)
    assert sum(len(g.rows) for g in groups) == len(spans)


# ---- the translator's rules, one by one --------------------------------------------------------


def kv(key: str, value: AttrValue) -> pb.KeyValue:
    return tag(key, value)


def make_span(**fields: object) -> pb.Span:
    span = pb.Span(trace_id=TRACE, span_id=SPAN, operation_name="op")
    span.start_time.FromNanoseconds(START_NS)
    span.duration.FromNanoseconds(1_500)
    for name, value in fields.items():
        if name == "tags":
            span.tags.extend(value)  # type: ignore[arg-type]
        elif name == "references":
            span.references.extend(value)  # type: ignore[arg-type]
        elif name == "logs":
            span.logs.extend(value)  # type: ignore[arg-type]
        elif isinstance(value, Message):
            getattr(span, name).CopyFrom(value)
        else:
            setattr(span, name, value)
    return span


def decode_one(span: pb.Span, process: pb.Process | None = None) -> Span:
    batch = pb.Batch(spans=[span])
    if process is not None:
        batch.process.CopyFrom(process)
    decoded = spans_from_batch(batch)
    assert decoded.rejected == 0, decoded.error
    (out,) = decoded.spans
    return out


def test_basic_fields_and_times() -> None:
    span = decode_one(make_span(), pb.Process(service_name="shop"))
    assert (span.trace_id, span.span_id, span.name) == (TRACE, SPAN, "op")
    assert (span.start_ns, span.end_ns) == (START_NS, START_NS + 1_500)
    assert span.parent_span_id == b""
    assert span.resource.attributes == {"service.name": "shop"}
    assert span.flags == 0  # Jaeger flags are not carried, as in the translator


def test_a_64_bit_trace_id_gets_a_zero_high_half() -> None:
    span = decode_one(
        make_span(
            trace_id=TRACE[8:],
            references=[pb.SpanRef(trace_id=TRACE[8:], span_id=PARENT, ref_type=pb.CHILD_OF)],
        )
    )
    assert span.trace_id == bytes(8) + TRACE[8:]
    assert span.parent_span_id == PARENT
    assert span.links == []


def test_the_parent_is_the_first_child_of_in_the_same_trace_and_the_rest_are_links() -> None:
    other_trace = b"\x09" * 16
    refs = [
        pb.SpanRef(trace_id=other_trace, span_id=b"\x01" * 8, ref_type=pb.CHILD_OF),
        pb.SpanRef(trace_id=TRACE, span_id=b"\x02" * 8, ref_type=pb.FOLLOWS_FROM),
        pb.SpanRef(trace_id=TRACE, span_id=PARENT, ref_type=pb.CHILD_OF),
    ]
    span = decode_one(make_span(references=refs))
    assert span.parent_span_id == PARENT
    assert [(lk.trace_id, lk.span_id, lk.attributes) for lk in span.links] == [
        (other_trace, b"\x01" * 8, {"opentracing.ref_type": "child_of"}),
        (TRACE, b"\x02" * 8, {"opentracing.ref_type": "follows_from"}),
    ]


def test_a_child_of_link_in_the_own_trace_of_a_root_comes_back_as_its_parent() -> None:
    """Lossy as in Jaeger: api_v2 has no parent field, only references."""
    link = Link(TRACE, PARENT, attributes={"opentracing.ref_type": "child_of"})
    span = Span(TRACE, SPAN, "op", START_NS, START_NS + 1, links=[link])
    (back,) = decode_post_spans(request_from_spans([span]).SerializeToString()).spans
    assert (back.parent_span_id, back.links) == (PARENT, [])


def test_a_follows_from_reference_is_the_parent_when_there_is_no_child_of() -> None:
    refs = [pb.SpanRef(trace_id=TRACE, span_id=PARENT, ref_type=pb.FOLLOWS_FROM)]
    span = decode_one(make_span(references=refs))
    assert span.parent_span_id == PARENT
    # it stays a link too, so that FOLLOWS_FROM is not forgotten
    assert [lk.attributes for lk in span.links] == [{"opentracing.ref_type": "follows_from"}]


def test_typed_tags_become_typed_attributes() -> None:
    tags = [
        kv("s", "x"), kv("b", True), kv("i", -(2**63)), kv("f", 2.5), kv("bin", b"\x00\xff"),
        pb.KeyValue(key="odd", v_type=7),  # type: ignore[arg-type]
        kv("s", "last wins"),
    ]  # fmt: skip
    span = decode_one(make_span(tags=tags))
    assert span.attributes == {
        "s": "last wins",
        "b": True,
        "i": -(2**63),
        "f": 2.5,
        "bin": b"\x00\xff",
        "odd": '<Unknown Jaeger TagType "7">',
    }


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("server", SpanKind.SERVER),
        ("client", SpanKind.CLIENT),
        ("producer", SpanKind.PRODUCER),
        ("consumer", SpanKind.CONSUMER),
        ("internal", SpanKind.INTERNAL),
        ("SERVER", SpanKind.UNSPECIFIED),  # the translator matches lowercase only
        (5, SpanKind.UNSPECIFIED),
    ],
)
def test_span_kind_tag(value: AttrValue, kind: SpanKind) -> None:
    span = decode_one(make_span(tags=[kv("span.kind", value), kv("k", "v")]))
    assert span.kind is kind
    assert span.attributes == {"k": "v"}


@pytest.mark.parametrize(
    ("tags", "status", "left"),
    [
        ([kv("error", True)], Status(StatusCode.ERROR), {}),
        ([kv("error", False)], Status(), {"error": False}),
        ([kv("error", "true")], Status(), {"error": "true"}),  # only a bool counts
        (
            [kv("error", True), kv("otel.status_description", "boom")],
            Status(StatusCode.ERROR, "boom"),
            {},
        ),
        (
            [kv("error", True), kv("http.status_message", "Bad Gateway")],
            Status(StatusCode.ERROR, "Bad Gateway"),
            {"http.status_message": "Bad Gateway"},
        ),
        (
            [kv("otel.status_code", "OK"), kv("otel.status_description", "fine")],
            Status(StatusCode.OK, "fine"),
            {},
        ),
        ([kv("otel.status_code", "error")], Status(StatusCode.ERROR), {}),
        ([kv("otel.status_code", "weird")], Status(StatusCode.UNSET), {}),
        (
            [kv("error", True), kv("otel.status_code", "OK")],  # error=true wins
            Status(StatusCode.ERROR),
            {},
        ),
        ([kv("http.status_code", 503)], Status(StatusCode.ERROR), {"http.status_code": 503}),
        ([kv("http.status_code", "200")], Status(), {"http.status_code": "200"}),
        ([kv("http.status_code", "5x")], Status(), {"http.status_code": "5x"}),
        (
            [kv("http.status_code", 500), kv("http.status_message", "oops")],
            Status(StatusCode.ERROR, "oops"),
            {"http.status_code": 500, "http.status_message": "oops"},
        ),
    ],
)
def test_status_tags(tags: list[pb.KeyValue], status: Status, left: Attributes) -> None:
    span = decode_one(make_span(tags=tags))
    assert (span.status.code, span.status.message) == (status.code, status.message)
    assert span.attributes == left


@pytest.mark.parametrize(
    ("kind", "code"), [("server", StatusCode.UNSET), ("client", StatusCode.ERROR)]
)
def test_http_4xx_is_an_error_for_clients_only(kind: str, code: StatusCode) -> None:
    span = decode_one(make_span(tags=[kv("span.kind", kind), kv("http.status_code", 404)]))
    assert span.status.code is code


def test_trace_state_and_scope_tags() -> None:
    tags = [
        kv("otel.scope.version", "1.0"),
        kv("w3c.tracestate", "vendor=x"),
        kv("otel.scope.name", "lib"),
        kv("a", 1),
    ]
    span = decode_one(make_span(tags=tags))
    assert (span.scope.name, span.scope.version) == ("lib", "1.0")
    assert span.trace_state == "vendor=x"
    assert span.attributes == {"a": 1}


def test_a_scope_version_without_a_name_stays_an_attribute() -> None:
    span = decode_one(make_span(tags=[kv("otel.scope.version", "1.0")]))
    assert (span.scope.name, span.scope.version) == ("", "")
    assert span.attributes == {"otel.scope.version": "1.0"}


def test_logs_become_events_named_by_their_event_field() -> None:
    named = pb.Log(fields=[kv("event", "retry"), kv("attempt", 2)])
    named.timestamp.FromNanoseconds(START_NS + 10)
    bare = pb.Log()
    bare.timestamp.FromNanoseconds(START_NS + 20)
    span = decode_one(make_span(logs=[named, bare]))
    assert [(e.time_ns, e.name, e.attributes) for e in span.events] == [
        (START_NS + 10, "retry", {"attempt": 2}),
        (START_NS + 20, "", {}),
    ]


def test_process_becomes_the_resource_with_the_translator_renames() -> None:
    process = pb.Process(
        service_name="shop",
        tags=[kv("hostname", "box-1"), kv("jaeger.version", "Python-4.8.0"), kv("ip", "10.0.0.1")],
    )
    span = decode_one(make_span(), process)
    assert span.resource.attributes == {
        "service.name": "shop",
        "ip": "10.0.0.1",
        "host.name": "box-1",
        "opencensus.exporterversion": "Jaeger-Python-4.8.0",
    }


@pytest.mark.parametrize(
    "process", [None, pb.Process(), pb.Process(service_name=NO_SERVICE_NAME, tags=[kv("a", 1)])]
)
def test_no_process_means_an_empty_resource(process: pb.Process | None) -> None:
    assert decode_one(make_span(), process).resource.attributes == {}


def test_a_span_process_overrides_the_batch_process() -> None:
    own = make_span(span_id=b"\x00" * 7 + b"\x07", process=pb.Process(service_name="billing"))
    batch = pb.Batch(process=pb.Process(service_name="shop"), spans=[make_span(), own])
    first, second = spans_from_batch(batch).spans
    assert first.service_name == "shop"
    assert second.service_name == "billing"


def test_blank_spans_are_skipped_and_invalid_ones_counted() -> None:
    zero_trace = make_span(trace_id=bytes(16))
    zero_span = make_span(span_id=bytes(8))
    no_start = make_span()
    no_start.ClearField("start_time")
    negative = make_span()
    negative.duration.CopyFrom(Duration(seconds=-1))
    good = make_span()
    batch = pb.Batch(spans=[pb.Span(), zero_trace, zero_span, no_start, negative, good])
    decoded = spans_from_batch(batch)
    # A negative duration is kept: `collector.admission` corrects its end and says so.
    assert [s.span_id for s in decoded.spans] == [SPAN, SPAN]
    assert decoded.spans[0].end_ns == START_NS - 1_000_000_000
    assert decoded.rejected == 3
    assert "trace id" in decoded.error


# ---- model -> api_v2 ---------------------------------------------------------------------------


def test_model_to_api_v2_tags_references_and_logs() -> None:
    span = Span(
        trace_id=TRACE,
        span_id=SPAN,
        name="GET /",
        start_ns=START_NS,
        end_ns=START_NS + 2_000_000_001,
        parent_span_id=PARENT,
        kind=SpanKind.SERVER,
        attributes={"http.method": "GET", "list": [1, "<a>"]},
        events=[Event(START_NS + 5, "ping", {"n": 1}), Event(START_NS + 6, "x", {"event": "y"})],
        links=[
            Link(TRACE, PARENT, attributes={"opentracing.ref_type": "follows_from"}),
            Link(b"\x03" * 16, b"\x04" * 8),
        ],
        status=Status(StatusCode.ERROR, "boom"),
        trace_state="k=v",
        resource=Resource({"service.name": "shop", "host.name": "h"}),
        scope=Scope("lib", "2"),
    )
    out = span_to_pb(span, with_process=True)
    assert [(t.key, t.v_type) for t in out.tags] == [
        ("otel.scope.name", pb.STRING),
        ("otel.scope.version", pb.STRING),
        ("http.method", pb.STRING),
        ("list", pb.STRING),
        ("span.kind", pb.STRING),
        ("otel.status_code", pb.STRING),
        ("error", pb.BOOL),
        ("otel.status_description", pb.STRING),
        ("w3c.tracestate", pb.STRING),
    ]
    assert out.tags[3].v_str == '[1,"\\u003ca\\u003e"]'  # Go's JSON, HTML-escaped
    # the link to the parent only changes the parent reference's type
    assert [(r.span_id, r.ref_type) for r in out.references] == [
        (PARENT, pb.FOLLOWS_FROM),
        (b"\x04" * 8, pb.FOLLOWS_FROM),
    ]
    assert (out.start_time.seconds, out.start_time.nanos) == (1_700_000_000, 123_456_789)
    assert (out.duration.seconds, out.duration.nanos) == (2, 1)
    assert [[(f.key, f.v_str or f.v_int64) for f in log.fields] for log in out.logs] == [
        [("event", "ping"), ("n", 1)],
        [("event", "y")],  # an `event` attribute wins over the name
    ]
    assert out.process.service_name == "shop"
    assert [(t.key, t.v_str) for t in out.process.tags] == [("host.name", "h")]


def test_an_empty_resource_is_the_translators_no_service_name() -> None:
    span = Span(TRACE, SPAN, "op", START_NS, START_NS + 1)
    assert span_to_pb(span, with_process=True).process.service_name == NO_SERVICE_NAME


# ---- hostile input -----------------------------------------------------------------------------


def valid_request_bytes() -> bytes:
    request = PostSpansRequest()
    request.batch.process.service_name = "shop"
    request.batch.spans.append(make_span(tags=[kv("k", "v" * 50)]))
    return request.SerializeToString()


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",
        b"\x0a\xff\xff\xff\xff\x0f",  # batch with an absurd length
        valid_request_bytes()[:-7],  # truncated
        b"\x0a\x04\x0a\x02\x0a\x05",  # a span whose trace_id runs past the end
    ],
)
def test_malformed_protobuf_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_post_spans(data)


@pytest.mark.parametrize(
    "span",
    [
        make_span(trace_id=b"\x01" * 12),
        make_span(span_id=b"\x01" * 9),
        make_span(references=[pb.SpanRef(trace_id=TRACE, span_id=b"\x01" * 3)]),
        make_span(start_time=Timestamp(seconds=10**12)),
        make_span(start_time=Timestamp(seconds=1, nanos=-1)),
        make_span(duration=Duration(seconds=1, nanos=-5)),
        make_span(duration=Duration(seconds=10**13)),
        make_span(logs=[pb.Log(timestamp=Timestamp(nanos=2_000_000_000))]),
    ],
)
def test_bad_ids_and_invalid_times_are_decode_errors(span: pb.Span) -> None:
    request = PostSpansRequest(batch=pb.Batch(spans=[span]))
    with pytest.raises(DecodeError):
        decode_post_spans(request.SerializeToString())


def test_a_span_past_2554_is_rejected_not_stored() -> None:
    span = make_span(start_time=Timestamp(seconds=20_000_000_000))
    decoded = spans_from_batch(pb.Batch(spans=[span]))
    assert (decoded.spans, decoded.rejected) == ([], 1)


def test_invalid_utf8_is_repaired_not_refused() -> None:
    """As Jaeger does: the string value becomes bytes, the span says so in its warnings."""
    data = bytearray(valid_request_bytes())
    at = data.index(b"v" * 50)
    data[at] = 0xFF
    decoded = decode_post_spans(bytes(data))
    assert decoded.repaired == 1 and decoded.rejected == 0
    (repaired,) = [span for span in decoded.spans if span.warnings]
    assert repaired.warnings == ["an attribute value was not valid UTF-8; stored as bytes"]
    assert b"\xff" + b"v" * 49 in repaired.attributes.values()


@given(st.binary(max_size=300))
def test_random_bytes_decode_or_fail_cleanly(data: bytes) -> None:
    try:
        decoded = decode_post_spans(data)
    except DecodeError:
        return
    batch_from_spans(decoded.spans)  # whatever decodes can be stored


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=200))
def test_mutated_requests_decode_or_fail_cleanly(junk: bytes, at: int) -> None:
    data = valid_request_bytes()
    at %= len(data)
    mutated = data[:at] + junk + data[at + len(junk) :]
    try:
        decoded = decode_post_spans(mutated)
    except DecodeError:
        return
    batch_from_spans(decoded.spans)


def test_parse_post_spans_reads_what_we_write() -> None:
    assert parse_post_spans(valid_request_bytes()).batch.process.service_name == "shop"


def test_a_child_of_link_into_another_trace_is_kept_even_if_it_shares_the_parents_id() -> None:
    other = b"\x09" * 16
    refs = [
        pb.SpanRef(trace_id=TRACE, span_id=PARENT, ref_type=pb.CHILD_OF),
        pb.SpanRef(trace_id=other, span_id=PARENT, ref_type=pb.CHILD_OF),
    ]
    span = decode_one(make_span(references=refs))
    assert span.parent_span_id == PARENT
    assert [(lk.trace_id, lk.span_id) for lk in span.links] == [(other, PARENT)]
