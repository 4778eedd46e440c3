"""Hypothesis strategies for canonical spans with every field populated."""

from __future__ import annotations

from hypothesis import strategies as st

from tracemesh.model.attributes import AttrValue
from tracemesh.model.span import Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode

scalars = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=20),
)
values: st.SearchStrategy[AttrValue] = st.recursive(
    scalars | st.none(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
attributes = st.dictionaries(st.text(max_size=12), values, max_size=5)
ids16 = st.binary(min_size=16, max_size=16).filter(any)
ids8 = st.binary(min_size=8, max_size=8).filter(any)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
u64 = st.integers(min_value=1, max_value=2**64 - 1)


@st.composite
def spans(draw: st.DrawFn) -> Span:
    start = draw(u64)
    resource = Resource(draw(attributes), draw(u32), draw(st.text(max_size=10)))
    scope = Scope(
        draw(st.text(max_size=10)),
        draw(st.text(max_size=5)),
        draw(attributes),
        draw(u32),
        draw(st.text(max_size=5)),
    )
    return Span(
        trace_id=draw(ids16),
        span_id=draw(ids8),
        name=draw(st.text(max_size=30)),
        start_ns=start,
        end_ns=draw(st.integers(min_value=start, max_value=2**64 - 1)),
        parent_span_id=draw(st.just(b"") | ids8),
        kind=draw(st.sampled_from(SpanKind)),
        attributes=draw(attributes),
        events=draw(
            st.lists(st.builds(Event, u64, st.text(max_size=10), attributes, u32), max_size=3)
        ),
        links=draw(
            st.lists(
                st.builds(Link, ids16, ids8, st.text(max_size=10), attributes, u32, u32), max_size=3
            )
        ),
        status=draw(st.builds(Status, st.sampled_from(StatusCode), st.text(max_size=10))),
        trace_state=draw(st.text(max_size=10)),
        flags=draw(u32),
        resource=resource,
        scope=scope,
        dropped_attributes_count=draw(u32),
        dropped_events_count=draw(u32),
        dropped_links_count=draw(u32),
    )
