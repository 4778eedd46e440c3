"""Interop with the OpenTelemetry SDK's own W3C propagators, both ways.

OpenTelemetry Python's trace-context and baggage propagators are the real clients here; the B3
and Jaeger ones (`opentelemetry-propagator-b3`, `-jaeger`) are not installed, so those formats
are checked against jaeger-client instead (test_interop_jaeger_client.py).
"""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import baggage as otel_baggage
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceState

from tracemesh.propagation import Propagator, SpanContext
from tracemesh.propagation import baggage as our_baggage

TRACECONTEXT = TraceContextTextMapPropagator()
BAGGAGE = W3CBaggagePropagator()
W3C_ONLY = Propagator(read=["w3c"], write=["w3c"], read_baggage=["w3c"], write_baggage=["w3c"])

trace_ids = st.integers(min_value=1, max_value=2**128 - 1)
span_ids = st.integers(min_value=1, max_value=2**64 - 1)
# Keys both sides accept: OpenTelemetry Python's tracestate follows Level 1, its baggage
# propagator URL-encodes keys (`quote_plus`), so only characters it leaves alone are used.
ts_keys = st.text(string.ascii_lowercase, min_size=1, max_size=1).flatmap(
    lambda first: st.text(string.ascii_lowercase + string.digits + "_-*/", max_size=12).map(
        lambda rest: first + rest
    )
)
ts_values = st.text(
    "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ",="), min_size=1, max_size=12
)
tracestates = st.dictionaries(ts_keys, ts_values, max_size=8)
bag_keys = st.text(string.ascii_letters + string.digits + "_.-~", min_size=1, max_size=12)
bag_values = st.text(max_size=20).filter(lambda v: v == v.strip())  # OTel strips decoded values


def _otel_context(trace_id: int, span_id: int, flags: int, state: dict[str, str]) -> Context:
    span_context = trace.SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        is_remote=False,
        trace_flags=trace.TraceFlags(flags),
        trace_state=TraceState(list(state.items())),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


@given(trace_ids, span_ids, st.integers(min_value=0, max_value=3), tracestates)
def test_otel_traceparent_to_ours(
    trace_id: int, span_id: int, flags: int, state: dict[str, str]
) -> None:
    headers: dict[str, str] = {}
    TRACECONTEXT.inject(headers, context=_otel_context(trace_id, span_id, flags, state))
    ctx = W3C_ONLY.extract(headers)
    assert ctx is not None
    assert int.from_bytes(ctx.trace_id, "big") == trace_id
    assert int.from_bytes(ctx.span_id, "big") == span_id
    assert ctx.sampled is bool(flags & 1) and ctx.random_trace_id is bool(flags & 2)
    assert ctx.trace_state == ",".join(f"{k}={v}" for k, v in state.items())


@given(trace_ids, span_ids, st.sampled_from([True, False]), tracestates)
def test_ours_to_otel_traceparent(
    trace_id: int, span_id: int, sampled: bool, state: dict[str, str]
) -> None:
    ctx = SpanContext(
        trace_id=trace_id.to_bytes(16, "big"),
        span_id=span_id.to_bytes(8, "big"),
        sampled=sampled,
        trace_state=",".join(f"{k}={v}" for k, v in state.items()),
    )
    headers: dict[str, str] = {}
    W3C_ONLY.inject(ctx, headers)
    otel = trace.get_current_span(TRACECONTEXT.extract(headers)).get_span_context()
    assert otel.is_valid and otel.is_remote
    assert (otel.trace_id, otel.span_id, otel.trace_flags.sampled) == (trace_id, span_id, sampled)
    assert dict(otel.trace_state.items()) == state


def test_spec_example_both_ways() -> None:
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    otel = trace.get_current_span(TRACECONTEXT.extract({"traceparent": header}))
    ours = W3C_ONLY.extract({"traceparent": header})
    assert ours is not None
    assert otel.get_span_context().trace_id == int.from_bytes(ours.trace_id, "big")
    out: dict[str, str] = {}
    W3C_ONLY.inject(ours, out)
    assert out["traceparent"] == header


@given(st.dictionaries(bag_keys, bag_values.filter(lambda v: " " not in v), max_size=10))
def test_otel_baggage_to_ours(bag: dict[str, str]) -> None:
    context = Context()
    for key, value in bag.items():
        context = otel_baggage.set_baggage(key, value, context)
    headers: dict[str, str] = {}
    BAGGAGE.inject(headers, context=context)
    assert our_baggage.extract(headers) == bag


def test_otel_python_writes_spaces_as_plus() -> None:
    """The one divergence: OpenTelemetry Python form-encodes (`+` for a space), the spec and the
    Go, Java and JS SDKs percent-encode, and a `+` in a value is a plus. tracemesh follows the
    spec and writes `%20`, which OpenTelemetry Python reads back correctly."""
    headers: dict[str, str] = {}
    BAGGAGE.inject(headers, context=otel_baggage.set_baggage("k", "a b", Context()))
    assert headers == {"baggage": "k=a+b"}
    assert our_baggage.extract(headers) == {"k": "a+b"}


@given(st.dictionaries(bag_keys, bag_values, max_size=10))
def test_ours_baggage_to_otel(bag: dict[str, str]) -> None:
    headers: dict[str, str] = {}
    our_baggage.inject(bag, headers)
    assert dict(otel_baggage.get_all(BAGGAGE.extract(headers, context=Context()))) == bag


def test_spec_baggage_example_both_ways() -> None:
    header = {"baggage": "userId=alice,serverNode=DF%2028,isProduction=false"}
    expected = {"userId": "alice", "serverNode": "DF 28", "isProduction": "false"}
    assert dict(otel_baggage.get_all(BAGGAGE.extract(header, context=Context()))) == expected
    assert our_baggage.extract(header) == expected
