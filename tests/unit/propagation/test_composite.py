"""The Propagator: precedence, completion, sampling hints, write formats, strip, baggage merge."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemesh.propagation import Extraction, Propagator, SpanContext
from tracemesh.propagation.baggage import BaggageForm
from tracemesh.propagation.composite import Format

from .strategies import contexts, tokens, tracestates, unicode_values

W3C_TRACE = "0af7651916cd43dd8448eb211c80319c"
B3_TRACE = "463ac35c9f6413ad48485a3953bb6124"
SPAN = "a2fb4a1d1a96d312"
PARENT = "0020000000000001"
RID = "3d2e6d1c-9f0b-4c1a-8a7e-2b4c6d8e0f12"

ALL_THREE = {
    "traceparent": f"00-{W3C_TRACE}-b7ad6b7169203331-01",
    "x-b3-traceid": B3_TRACE,
    "x-b3-spanid": SPAN,
    "x-b3-sampled": "0",
    "uber-trace-id": "48485a3953bb6124:a2fb4a1d1a96d312:0:1",
}


def _ctx(propagator: Propagator, headers: object) -> SpanContext:
    ctx = propagator.extract(headers)
    assert ctx is not None
    return ctx


def test_default_precedence_is_w3c_then_b3_then_jaeger() -> None:
    headers = dict(ALL_THREE)
    assert _ctx(Propagator(), headers).trace_id.hex() == W3C_TRACE
    del headers["traceparent"]
    assert _ctx(Propagator(), headers).trace_id.hex() == B3_TRACE
    del headers["x-b3-traceid"]  # B3 now malformed: Jaeger's turn
    ctx = _ctx(Propagator(), headers)
    assert ctx.trace_id.hex() == "0" * 16 + "48485a3953bb6124" and ctx.trace_id_64bit


def test_invalid_higher_format_falls_through() -> None:
    headers = {**ALL_THREE, "traceparent": f"ff-{W3C_TRACE}-b7ad6b7169203331-01"}
    assert _ctx(Propagator(), headers).trace_id.hex() == B3_TRACE


def test_read_order_is_configurable() -> None:
    envoy_like = Propagator(read=["b3", "w3c"])
    assert _ctx(envoy_like, ALL_THREE).trace_id.hex() == B3_TRACE
    jaeger_only = Propagator(read=[Format.JAEGER])
    assert _ctx(jaeger_only, ALL_THREE).span_id.hex() == SPAN
    assert Propagator(read=["w3c"]).extract({"b3": f"{B3_TRACE}-{SPAN}-1"}) is None
    assert _ctx(Propagator(read=["b3-single"]), {"b3": f"{B3_TRACE}-{SPAN}-1"})


def test_unknown_formats_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown propagation format 'zipkin'"):
        Propagator(read=["zipkin"])
    with pytest.raises(ValueError, match="unknown baggage form"):
        Propagator(write_baggage=["uberctx"])


def test_nothing_valid_gives_none() -> None:
    assert Propagator().extract({}) is None
    assert Propagator().extract({"traceparent": "garbage", "tracestate": "a=1"}) is None
    assert Propagator().extract({"x-b3-traceid": "0" * 32, "x-b3-spanid": SPAN}) is None


def test_winner_is_completed_from_agreeing_formats() -> None:
    headers = {
        "traceparent": f"00-{'0' * 16}48485a3953bb6124-{SPAN}-01",
        "tracestate": "rojo=1",
        "x-b3-traceid": "48485a3953bb6124",
        "x-b3-spanid": SPAN,
        "x-b3-parentspanid": PARENT,
        "x-b3-flags": "1",
        "uber-trace-id": f"48485a3953bb6124:{SPAN}:0:9",
    }
    ctx = _ctx(Propagator(), headers)
    assert ctx.parent_span_id is not None and ctx.parent_span_id.hex() == PARENT
    assert ctx.debug and ctx.sampled is True and ctx.trace_id_64bit and ctx.firehose
    assert ctx.trace_state == "rojo=1"
    b3_first = _ctx(Propagator(read=["b3", "w3c"]), headers)
    assert b3_first.trace_state == "rojo=1"  # tracestate comes along from the agreeing W3C
    other_span = {**headers, "x-b3-spanid": "1" * 16, "uber-trace-id": "1:2:0:1"}
    alone = _ctx(Propagator(), other_span)
    assert alone.parent_span_id is None and not alone.debug and not alone.trace_id_64bit


def test_deferred_sampling_survives_a_w3c_winner() -> None:
    deferred = SpanContext(trace_id=bytes.fromhex(B3_TRACE), span_id=bytes.fromhex(SPAN))
    headers: dict[str, str] = {}
    Propagator().inject(deferred, headers)
    assert headers["traceparent"].endswith("-00")
    assert _ctx(Propagator(), headers).sampled is None
    assert _ctx(Propagator(read=["w3c"]), headers).sampled is False


def test_sampling_hints_without_context() -> None:
    extraction = Propagator().extract_request({"b3": "0", "baggage": "k=v", "x-request-id": RID})
    assert extraction.context is None
    assert extraction.sampled is False and not extraction.debug
    root = extraction.start()
    assert root.sampled is False and root.baggage == {"k": "v"} and root.request_id == RID
    assert root.parent_span_id is None
    debug = Propagator().extract_request({"x-b3-flags": "1"})
    assert debug.sampled is True and debug.debug and debug.start().debug


def test_jaeger_debug_id() -> None:
    alone = Propagator().extract_request({"jaeger-debug-id": "find-me"})
    assert alone.context is None and alone.debug and alone.sampled is True
    assert alone.debug_id == "find-me" and alone.start().debug
    with_ctx = Propagator().extract_request({"jaeger-debug-id": "x", "uber-trace-id": "1:2:0:0"})
    assert with_ctx.context is not None and with_ctx.context.debug
    ignored = Propagator(read=["w3c", "b3"]).extract_request({"jaeger-debug-id": "x"})
    assert not ignored.debug and ignored.debug_id == ""


def test_start_continues_the_trace() -> None:
    extraction = Propagator().extract_request(ALL_THREE)
    parent = extraction.context
    assert parent is not None
    child = extraction.start()
    assert child.trace_id == parent.trace_id and child.parent_span_id == parent.span_id


def test_request_ids() -> None:
    assert _ctx(Propagator(), {**ALL_THREE, "x-request-id": RID}).request_id == RID
    made = _ctx(Propagator(), {**ALL_THREE, "x-request-id": "bad value"}).request_id
    assert uuid.UUID(made).version == 4
    assert _ctx(Propagator(generate_request_id=False), ALL_THREE).request_id == ""
    assert _ctx(Propagator(request_ids=False), {**ALL_THREE, "x-request-id": RID}).request_id == ""
    assert Extraction().request_id == ""


def test_baggage_from_all_forms_is_merged_into_the_context() -> None:
    headers = {
        **ALL_THREE,
        "baggage": "userId=alice,tier=w3c",
        "uberctx-tier": "uberctx",
        "uberctx-userid": "not-alice",  # same key as userId, case lost on the wire
        "uberctx-region": "eu",
        "jaeger-baggage": "debug-user=bob",
        "baggage-canary": "true",
    }
    ctx = _ctx(Propagator(), headers)
    assert ctx.baggage == {
        "userId": "alice",
        "tier": "w3c",
        "region": "eu",
        "debug-user": "bob",
        "canary": "true",
    }
    only_w3c = _ctx(Propagator(read_baggage=["w3c"]), headers)
    assert only_w3c.baggage == {"userId": "alice", "tier": "w3c"}


def test_inject_default_formats() -> None:
    ctx = SpanContext(
        trace_id=bytes.fromhex(B3_TRACE),
        span_id=bytes.fromhex(SPAN),
        parent_span_id=bytes.fromhex(PARENT),
        sampled=True,
        baggage={"userId": "alice"},
        request_id=RID,
    )
    headers: list[tuple[str, str]] = [("host", "example"), ("B3", "stale"), ("x-b3-flags", "1")]
    Propagator().inject(ctx, headers)
    assert dict(headers) == {
        "host": "example",
        "x-b3-traceid": B3_TRACE,
        "x-b3-spanid": SPAN,
        "x-b3-parentspanid": PARENT,
        "x-b3-sampled": "1",
        "traceparent": f"00-{B3_TRACE}-{SPAN}-01",
        "uber-trace-id": f"{B3_TRACE}:{SPAN}:{PARENT}:1",
        "baggage": "userId=alice",
        "uberctx-userid": "alice",
        "x-request-id": RID,
    }
    assert Propagator().fields == (
        "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
        "traceparent", "tracestate", "uber-trace-id", "baggage", "x-request-id",
    )  # fmt: skip


def test_inject_removes_stale_headers_of_formats_it_does_not_write() -> None:
    ctx = SpanContext(trace_id=bytes.fromhex(B3_TRACE), span_id=bytes.fromhex(SPAN), sampled=True)
    headers = {**ALL_THREE, "tracestate": "a=1", "b3": "1", "x-b3-parentspanid": PARENT}
    Propagator(write=["b3-single"], write_baggage=[]).inject(ctx, headers)
    assert headers == {"b3": f"{B3_TRACE}-{SPAN}-1"}
    Propagator(write=["w3c"], write_baggage=["prefixed"]).inject(
        replace(ctx, baggage={"k": "v"}), headers
    )
    assert headers == {"traceparent": f"00-{B3_TRACE}-{SPAN}-01", "baggage-k": "v"}


def test_strip_removes_every_tracing_header() -> None:
    headers = {
        **ALL_THREE,
        "Host": "example",
        "Cookie": "c=1",
        "tracestate": "a=1",
        "b3": "0",
        "X-B3-ParentSpanId": PARENT,
        "x-b3-flags": "1",
        "Baggage": "k=v",
        "uberctx-k": "v",
        "UberCtx-Other": "v",
        "jaeger-baggage": "k=v",
        "jaeger-debug-id": "x",
        "baggage-k": "v",
        "ot-baggage-k": "v",
        "ot-tracer-traceid": "1",
        "x-ot-span-context": "abc",
        "x-datadog-trace-id": "1",
        "grpc-trace-bin": "AAA",
        "sw8": "1-abc",
        "x-request-id": RID,
    }
    keep = dict(headers)
    Propagator().strip(headers)
    assert headers == {"Host": "example", "Cookie": "c=1"}
    Propagator().strip(keep, request_ids=False)
    assert keep == {"Host": "example", "Cookie": "c=1", "x-request-id": RID}
    pairs = [(k.encode(), v.encode()) for k, v in ALL_THREE.items()] + [(b"host", b"h")]
    Propagator().strip(pairs)
    assert pairs == [(b"host", b"h")]


token_baggage = st.dictionaries(tokens, unicode_values, max_size=8)


@given(contexts(baggage=token_baggage, trace_state=tracestates))
def test_round_trip_through_every_format(ctx: SpanContext) -> None:
    propagator = Propagator(
        write=list(Format), write_baggage=list(BaggageForm), generate_request_id=False
    )
    headers: dict[str, str] = {}
    propagator.inject(ctx, headers)
    assert propagator.extract(headers) == ctx


@pytest.mark.parametrize("fmt", list(Format))
@given(ctx=contexts(baggage=token_baggage))
def test_round_trip_through_each_format_alone(fmt: Format, ctx: SpanContext) -> None:
    propagator = Propagator(write=[fmt], generate_request_id=False)
    headers: list[tuple[str, str]] = []
    propagator.inject(ctx, headers)
    back = propagator.extract(headers)
    assert back is not None
    assert (back.trace_id, back.span_id, back.baggage, back.request_id) == (
        ctx.trace_id, ctx.span_id, ctx.baggage, ctx.request_id,
    )  # fmt: skip
    if fmt is not Format.W3C:
        assert back.debug == ctx.debug and back.trace_id_64bit == ctx.trace_id_64bit
    if fmt is Format.B3:
        assert back.sampled == ctx.sampled and back.parent_span_id == ctx.parent_span_id


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=12))
def test_arbitrary_headers_never_raise(headers: dict[str, str]) -> None:
    propagator = Propagator()
    extraction = propagator.extract_request(headers)
    out: dict[str, str] = {}
    propagator.inject(extraction.start(), out)
    propagator.strip(headers)
