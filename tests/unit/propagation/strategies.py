"""Hypothesis strategies for span contexts and the baggage each header form can carry."""

from __future__ import annotations

import string

from hypothesis import strategies as st

from tracemesh.propagation.context import SpanContext

span_ids = st.binary(min_size=8, max_size=8).filter(any)
trace_ids_128 = st.binary(min_size=16, max_size=16).filter(any)
sampled_states = st.sampled_from([True, False, None])

TCHARS = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
tokens = st.text(alphabet=TCHARS, min_size=1, max_size=20)
lower_tokens = st.text(alphabet=TCHARS.replace(string.ascii_uppercase, ""), min_size=1, max_size=20)
printable_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30
)
"""Any text a form that encodes its values can carry: every code point but lone surrogates."""
unicode_values = st.text(max_size=30)


@st.composite
def trace_ids(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A trace id and whether it is 64-bit (zero high half, remembered as such)."""
    if draw(st.booleans()):
        return bytes(8) + draw(span_ids), True
    return draw(trace_ids_128), False


@st.composite
def contexts(
    draw: st.DrawFn,
    baggage: st.SearchStrategy[dict[str, str]] | None = None,
    trace_state: st.SearchStrategy[str] | None = None,
) -> SpanContext:
    trace_id, is_64bit = draw(trace_ids())
    return SpanContext(
        trace_id=trace_id,
        span_id=draw(span_ids),
        parent_span_id=draw(st.none() | span_ids),
        sampled=draw(sampled_states),
        debug=draw(st.booleans()),
        trace_id_64bit=is_64bit,
        random_trace_id=draw(st.booleans()),
        firehose=draw(st.booleans()),
        trace_state=draw(trace_state) if trace_state is not None else "",
        baggage=draw(baggage) if baggage is not None else {},
        request_id=draw(st.sampled_from(["", "3d2e6d1c-9f0b-4c1a-8a7e-2b4c6d8e0f12"])),
    )


TS_KEY_FIRST = string.ascii_lowercase + string.digits
TS_KEY_REST = TS_KEY_FIRST + "_-*/@"
TS_VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")


@st.composite
def tracestate_members(draw: st.DrawFn) -> tuple[str, str]:
    key = draw(st.text(TS_KEY_FIRST, min_size=1, max_size=1)) + draw(
        st.text(TS_KEY_REST, max_size=20)
    )
    value = draw(st.text(TS_VALUE_CHARS, max_size=20)) + draw(
        st.text(TS_VALUE_CHARS.replace(" ", ""), min_size=1, max_size=1)
    )
    return key, value


tracestates = st.lists(tracestate_members(), max_size=32, unique_by=lambda m: m[0]).map(
    lambda members: ",".join(f"{k}={v}" for k, v in members)
)
