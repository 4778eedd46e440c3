"""Every span `jaeger_keeps` lets go without its `otlp` copy reads back exactly from Jaeger's
fields and `ns`; typical SDK spans qualify."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tracemesh.model.span import Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode
from tracemesh.storage.elasticsearch.documents import Reader, TagFields, process, span_document
from tracemesh.storage.elasticsearch.fidelity import jaeger_keeps

values = (
    st.text(max_size=5) | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True) | st.binary(max_size=3) | st.none()
    | st.lists(st.integers(0, 2), max_size=2)
)  # fmt: skip
keys = st.sampled_from(["k", "n", "event", "error", "span.kind", "otel.status_code",
                        "http.response.status_code", "opentracing.ref_type", "a.b"])  # fmt: skip
attributes = st.dictionaries(keys, values, max_size=4)
ids8 = st.binary(min_size=8, max_size=8)
ids16 = st.binary(min_size=16, max_size=16)


@st.composite
def spans(draw: st.DrawFn) -> Span:
    start = draw(st.integers(0, 2**62))
    parent = draw(st.just(b"") | ids8)
    resource = Resource(draw(st.dictionaries(
        st.sampled_from(["service.name", "host.name"]), values, max_size=2)))  # fmt: skip
    links = [
        Link(draw(ids16), draw(st.just(parent) | ids8), draw(st.text(max_size=3)),
             draw(st.dictionaries(st.sampled_from(["opentracing.ref_type", "x"]),
                                  st.sampled_from(["child_of", "follows_from", "other", 1]),
                                  max_size=2)),
             flags=draw(st.integers(0, 3)))
        for _ in range(draw(st.integers(0, 2)))
    ]  # fmt: skip
    return Span(
        trace_id=draw(ids16),
        span_id=draw(ids8),
        name=draw(st.text(max_size=5)),
        start_ns=start,
        end_ns=start + draw(st.integers(0, 10**12)),
        parent_span_id=parent,
        kind=draw(st.sampled_from(SpanKind)),
        attributes=draw(attributes),
        events=[Event(start + d, n, a) for d, n, a in draw(st.lists(
            st.tuples(st.integers(0, 10**9), st.text(max_size=3), attributes), max_size=2))],
        links=links,
        status=Status(draw(st.sampled_from(StatusCode)), draw(st.sampled_from(["", "boom"]))),
        trace_state=draw(st.sampled_from(["", "a=b"])),
        flags=draw(st.integers(0, 0x301)),
        resource=resource,
        scope=Scope(*draw(st.sampled_from([("", ""), ("lib", ""), ("lib", "1"), ("", "1")])),
                    attributes=draw(st.dictionaries(st.sampled_from(["s"]), values, max_size=1))),
    )  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(spans())
def test_what_passes_reads_back_exactly(span: Span) -> None:
    if not jaeger_keeps(span):
        return
    doc = span_document(span, process(span.resource), TagFields())
    assert "otlp" not in doc
    assert Reader(TagFields()).span(doc) == span


def test_a_typical_sdk_span_needs_no_otlp_copy() -> None:
    start = 1_765_000_000_123_456_789  # nanoseconds, as SDKs report them
    span = Span(
        bytes(range(16)), bytes(range(1, 9)), "GET /cart", start, start + 2_345_678,
        parent_span_id=bytes(range(2, 10)), kind=SpanKind.SERVER,
        attributes={"http.method": "GET", "http.status_code": 200, "ratio": 0.5, "ok": True},
        events=[Event(start + 1_001, "cache miss", {"key": "c-1"})],
        status=Status(StatusCode.ERROR, "boom"),
        resource=Resource({"service.name": "cart", "host.name": "h1"}),
        scope=Scope("io.opentelemetry.http", "1.2.0"),
    )  # fmt: skip
    assert jaeger_keeps(span)
    doc = span_document(span, process(span.resource), TagFields())
    assert doc["ns"] == [789, 1467, 790]  # the end after the µs start plus the µs duration
    assert Reader(TagFields()).span(doc) == span
