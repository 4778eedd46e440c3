"""Interop with the real jaeger-client package: its TextCodec (uber-trace-id, uberctx-*,
jaeger-baggage, jaeger-debug-id, in both its plain and URL-encoding modes) and its B3Codec."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st
from jaeger_client.codecs import B3Codec, TextCodec
from jaeger_client.span_context import SpanContext as JaegerContext

from tracemesh.propagation import Propagator, SpanContext, b3

JAEGER_ONLY = Propagator(
    read=["jaeger"], write=["jaeger"], read_baggage=["jaeger"], write_baggage=["jaeger"]
)
HTTP_HEADERS = TextCodec(url_encoding=True)  # what jaeger-client uses for HTTP headers
TEXT_MAP = TextCodec(url_encoding=False)

trace_ids = st.integers(min_value=1, max_value=2**64 - 1) | st.integers(
    min_value=1, max_value=2**128 - 1
)
span_ids = st.integers(min_value=1, max_value=2**64 - 1)
parents = st.none() | span_ids
flags = st.sampled_from([0, 1, 3, 8, 9, 11])
keys = st.text(string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=12)
values = st.text(max_size=20)


def _ints(ctx: SpanContext) -> tuple[int, int, int | None]:
    parent = ctx.parent_span_id
    return (
        int.from_bytes(ctx.trace_id, "big"),
        int.from_bytes(ctx.span_id, "big"),
        int.from_bytes(parent, "big") if parent is not None else None,
    )


def _flags(ctx: SpanContext) -> int:
    return (1 if ctx.sampled else 0) | (2 if ctx.debug else 0) | (8 if ctx.firehose else 0)


@given(trace_ids, span_ids, parents, flags, st.dictionaries(keys, values, max_size=6))
def test_jaeger_client_to_ours(
    trace_id: int, span_id: int, parent: int | None, flag: int, bag: dict[str, str]
) -> None:
    theirs = JaegerContext(trace_id, span_id, parent, flag, baggage=bag)
    headers: dict[str, str] = {}
    HTTP_HEADERS.inject(theirs, headers)
    ctx = JAEGER_ONLY.extract(headers)
    assert ctx is not None
    assert _ints(ctx) == (trace_id, span_id, parent)
    assert _flags(ctx) == (flag | 1 if flag & 2 else flag)
    assert ctx.trace_id_64bit is (trace_id < 2**64)
    assert ctx.baggage == bag


@given(trace_ids, span_ids, parents, flags, st.dictionaries(keys, values, max_size=6))
def test_ours_to_jaeger_client(
    trace_id: int, span_id: int, parent: int | None, flag: int, bag: dict[str, str]
) -> None:
    ctx = SpanContext(
        trace_id=trace_id.to_bytes(16, "big"),
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else None,
        sampled=bool(flag & 1),
        debug=bool(flag & 2),
        firehose=bool(flag & 8),
        trace_id_64bit=trace_id < 2**64,
        baggage=bag,
    )
    headers: dict[str, str] = {}
    JAEGER_ONLY.inject(ctx, headers)
    theirs = HTTP_HEADERS.extract(headers)
    assert (theirs.trace_id, theirs.span_id, theirs.parent_id) == (trace_id, span_id, parent)
    assert theirs.flags == flag
    assert dict(theirs.baggage) == bag


def test_plain_text_map_mode_and_java_style_ids() -> None:
    headers: dict[str, str] = {}
    TEXT_MAP.inject(
        JaegerContext(0x48485A3953BB6124, 0xA2FB4A1D1A96D312, 0x20000000000001, 1), headers
    )
    assert headers == {"uber-trace-id": "48485a3953bb6124:a2fb4a1d1a96d312:20000000000001:1"}
    ctx = JAEGER_ONLY.extract(headers)
    assert ctx is not None and _ints(ctx) == (
        0x48485A3953BB6124,
        0xA2FB4A1D1A96D312,
        0x20000000000001,
    )


def test_url_encoded_trace_id_both_ways() -> None:
    encoded = {"uber-trace-id": "48485a3953bb6124%3Aa2fb4a1d1a96d312%3A20000000000001%3A1"}
    theirs = HTTP_HEADERS.extract(encoded)
    ours = JAEGER_ONLY.extract(encoded)
    assert ours is not None
    assert _ints(ours) == (theirs.trace_id, theirs.span_id, theirs.parent_id)


def test_jaeger_baggage_header_reads_the_same() -> None:
    headers = {"jaeger-baggage": "k1=v1, k2=v2, broken,k3=v%203"}
    theirs = HTTP_HEADERS.extract(headers)
    extraction = JAEGER_ONLY.extract_request(headers)
    assert extraction.context is None and theirs.trace_id is None
    assert dict(extraction.baggage) == dict(theirs.baggage) == {"k1": "v1", "k2": "v2", "k3": "v 3"}
    # Spaces around `=` are trimmed here as the reference says; the Python client keeps them.
    spaced = JAEGER_ONLY.extract_request({"jaeger-baggage": "k = v"})
    assert dict(spaced.baggage) == {"k": "v"}


def test_uberctx_example_reads_the_same() -> None:
    headers = {"uber-trace-id": "1:2:0:1", "uberctx-key1": "value%201%20%2F%20blah"}
    theirs = HTTP_HEADERS.extract(headers)
    ours = JAEGER_ONLY.extract(headers)
    assert ours is not None and dict(ours.baggage) == dict(theirs.baggage)
    assert dict(theirs.baggage) == {"key1": "value 1 / blah"}


def test_debug_id_starts_a_debug_trace_in_both() -> None:
    headers = {"jaeger-debug-id": "find-me-42"}
    theirs = HTTP_HEADERS.extract(headers)
    assert theirs.debug_id == "find-me-42" and theirs.is_debug_id_container_only
    extraction = JAEGER_ONLY.extract_request(headers)
    assert extraction.context is None and extraction.debug_id == "find-me-42"
    root = extraction.start()
    assert root.debug and root.sampled is True


@given(trace_ids, span_ids, parents, flags)
def test_jaeger_client_b3_to_ours(
    trace_id: int, span_id: int, parent: int | None, flag: int
) -> None:
    headers: dict[str, str] = {}
    B3Codec().inject(JaegerContext(trace_id, span_id, parent, flag), headers)
    ctx = b3.extract(headers)
    assert isinstance(ctx, SpanContext)
    assert _ints(ctx) == (trace_id, span_id, parent)
    assert ctx.debug is bool(flag & 2)
    assert ctx.sampled is (True if flag & 3 else None)  # jaeger-client never writes Sampled: 0
    assert ctx.trace_id_64bit is (trace_id < 2**64)


@given(trace_ids, span_ids, parents, st.sampled_from([None, True, False]), st.booleans())
def test_ours_b3_to_jaeger_client(
    trace_id: int, span_id: int, parent: int | None, sampled: bool | None, debug: bool
) -> None:
    ctx = SpanContext(
        trace_id=trace_id.to_bytes(16, "big"),
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else None,
        sampled=sampled,
        debug=debug,
        trace_id_64bit=trace_id < 2**64,
    )
    headers: dict[str, str] = {}
    b3.inject_multi(ctx, headers)
    theirs = B3Codec().extract(headers)
    assert (theirs.trace_id, theirs.span_id, theirs.parent_id) == (trace_id, span_id, parent)
    assert theirs.flags == (3 if debug else (1 if sampled else 0))
