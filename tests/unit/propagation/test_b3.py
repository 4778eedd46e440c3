"""B3 multi-header and single-header: the spec's examples, sampling-only forms, round trips."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemesh.propagation import b3
from tracemesh.propagation.context import SamplingFlags, SpanContext

from .strategies import contexts

TRACE = "463ac35c9f6413ad48485a3953bb6124"
SPAN = "a2fb4a1d1a96d312"
PARENT = "0020000000000001"


def _ctx(value: object) -> SpanContext:
    assert isinstance(value, SpanContext), value
    return value


def test_multi_header_spec_example() -> None:
    ctx = _ctx(
        b3.extract(
            {
                "x-b3-traceid": TRACE,
                "x-b3-spanid": SPAN,
                "x-b3-parentspanid": PARENT,
                "x-b3-sampled": "1",
            }
        )
    )
    assert ctx.trace_id.hex() == TRACE and ctx.span_id.hex() == SPAN
    assert ctx.parent_span_id is not None and ctx.parent_span_id.hex() == PARENT
    assert ctx.sampled is True and not ctx.debug and not ctx.trace_id_64bit


def test_single_header_spec_examples() -> None:
    ctx = _ctx(b3.parse_single(f"{TRACE}-{SPAN}-1-{PARENT}"))
    assert (ctx.trace_id.hex(), ctx.span_id.hex(), ctx.sampled) == (TRACE, SPAN, True)
    assert ctx.parent_span_id == bytes.fromhex(PARENT)
    short = _ctx(b3.parse_single("48485a3953bb6124-a2fb4a1d1a96d312-1"))
    assert short.trace_id == bytes(8) + bytes.fromhex("48485a3953bb6124")
    assert short.trace_id_64bit and short.parent_span_id is None
    assert b3.format_single(short) == "48485a3953bb6124-a2fb4a1d1a96d312-1"
    assert b3.format_single(ctx) == f"{TRACE}-{SPAN}-1-{PARENT}"


@pytest.mark.parametrize(
    ("value", "sampled", "debug"),
    [("0", False, False), ("1", True, False), ("d", True, True)],
)
def test_sampling_only_single_header(value: str, sampled: bool, debug: bool) -> None:
    assert b3.parse_single(value) == SamplingFlags(sampled=sampled, debug=debug)
    assert b3.extract({"b3": value}) == SamplingFlags(sampled=sampled, debug=debug)


def test_single_header_states_and_ids_only() -> None:
    assert _ctx(b3.parse_single(f"{TRACE}-{SPAN}")).sampled is None
    assert _ctx(b3.parse_single(f"{TRACE}-{SPAN}-0")).sampled is False
    debug = _ctx(b3.parse_single(f"{TRACE}-{SPAN}-d"))
    assert debug.debug and debug.sampled is True
    assert b3.format_single(debug) == f"{TRACE}-{SPAN}-d"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "2",
        "true",
        f"{TRACE}",
        f"{TRACE}-",
        f"{TRACE}-{SPAN}-",
        f"{TRACE}-{SPAN}-2",
        f"{TRACE}-{SPAN}-1-",
        f"{TRACE}-{SPAN}-1-{PARENT}-x",
        f"{TRACE}-{SPAN}-{PARENT}",  # parent without a sampling state
        f"{TRACE[:-1]}-{SPAN}-1",  # 31 digits
        f"{TRACE}0-{SPAN}-1",
        f"{TRACE}-{SPAN[:-1]}-1",
        f"{TRACE}-{SPAN}-1-{PARENT[:-1]}",
        f"{'0' * 32}-{SPAN}-1",
        f"{TRACE}-{'0' * 16}-1",
        f"{TRACE}_{SPAN}-1",
        f"{TRACE}-{SPAN}-1-{PARENT}" + "0" * 100,
        f"{TRACE[:-1]}g-{SPAN}",
    ],
)
def test_malformed_single_header(value: str) -> None:
    assert b3.parse_single(value) is None


def test_single_wins_over_multi_and_malformed_single_falls_back() -> None:
    multi = {"x-b3-traceid": "1" * 32, "x-b3-spanid": "2" * 16, "x-b3-sampled": "0"}
    ctx = _ctx(b3.extract({**multi, "b3": f"{TRACE}-{SPAN}-1"}))
    assert ctx.trace_id.hex() == TRACE and ctx.sampled is True
    fallback = _ctx(b3.extract({**multi, "b3": "garbage"}))
    assert fallback.trace_id.hex() == "1" * 32 and fallback.sampled is False


@pytest.mark.parametrize(
    ("value", "sampled"),
    [("1", True), ("0", False), ("true", True), ("false", False), ("True", True), ("yes", None)],
)
def test_multi_sampled_values(value: str, sampled: bool | None) -> None:
    ctx = _ctx(b3.extract({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": value}))
    assert ctx.sampled is sampled


def test_multi_flags_debug_and_sampling_only_headers() -> None:
    base = {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN}
    assert _ctx(b3.extract({**base, "x-b3-flags": "1"})).debug
    assert not _ctx(b3.extract({**base, "x-b3-flags": "2"})).debug
    assert b3.extract({"x-b3-sampled": "0"}) == SamplingFlags(sampled=False)
    assert b3.extract({"X-B3-Flags": "1"}) == SamplingFlags(sampled=True, debug=True)
    assert b3.extract({"x-b3-flags": "0"}) is None
    assert b3.extract({}) is None


def test_multi_lenient_lengths_and_case() -> None:
    ctx = _ctx(b3.extract({"X-B3-TraceId": "abc", "X-B3-SpanId": "DEF"}))
    assert ctx.trace_id == bytes(13) + bytes.fromhex("000abc")
    assert ctx.trace_id_64bit and ctx.span_id == bytes(6) + bytes.fromhex("0def")
    long = _ctx(b3.extract({"x-b3-traceid": "1" * 20, "x-b3-spanid": SPAN}))
    assert not long.trace_id_64bit and long.trace_id.hex() == "0" * 12 + "1" * 20


@pytest.mark.parametrize(
    "headers",
    [
        {"x-b3-traceid": TRACE},
        {"x-b3-spanid": SPAN},
        {"x-b3-traceid": "0" * 32, "x-b3-spanid": SPAN},
        {"x-b3-traceid": TRACE, "x-b3-spanid": "0" * 16},
        {"x-b3-traceid": TRACE + "0", "x-b3-spanid": SPAN},
        {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN + "0"},
        {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-parentspanid": "-"},
        {"x-b3-traceid": "", "x-b3-spanid": SPAN},
        {"x-b3-traceid": "0x1", "x-b3-spanid": SPAN},
        {"x-b3-traceid": TRACE, "x-b3-spanid": "12 34"},
    ],
)
def test_malformed_multi_headers(headers: dict[str, str]) -> None:
    assert b3.extract(headers) is None


def test_zero_parent_is_root_and_first_value_wins() -> None:
    ctx = _ctx(
        b3.extract({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-parentspanid": "0" * 16})
    )
    assert ctx.parent_span_id is None
    pairs = [("X-B3-TraceId", TRACE), ("x-b3-traceid", "1" * 32), ("x-b3-spanid", SPAN)]
    assert _ctx(b3.extract(pairs)).trace_id.hex() == TRACE


def test_inject_multi_writes_and_clears() -> None:
    ctx = _ctx(b3.parse_single(f"{TRACE}-{SPAN}-d-{PARENT}"))
    headers: dict[str, str] = {"X-B3-Sampled": "0"}
    b3.inject_multi(ctx, headers)
    assert headers == {
        "x-b3-traceid": TRACE,
        "x-b3-spanid": SPAN,
        "x-b3-parentspanid": PARENT,
        "x-b3-sampled": "1",  # alongside Flags, for Envoy, which ignores X-B3-Flags
        "x-b3-flags": "1",
    }
    b3.inject_multi(replace(ctx, debug=False, sampled=None, parent_span_id=None), headers)
    assert headers == {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN}


@given(contexts())
def test_multi_round_trip(ctx: SpanContext) -> None:
    headers: dict[str, str] = {}
    b3.inject_multi(ctx, headers)
    expected = SpanContext(
        trace_id=ctx.trace_id,
        span_id=ctx.span_id,
        parent_span_id=ctx.parent_span_id,
        sampled=ctx.sampled,
        debug=ctx.debug,
        trace_id_64bit=ctx.trace_id_64bit,
    )
    assert b3.extract(headers) == expected


@given(contexts())
def test_single_round_trip(ctx: SpanContext) -> None:
    headers: list[tuple[str, str]] = []
    b3.inject_single(ctx, headers)
    expected = SpanContext(
        trace_id=ctx.trace_id,
        span_id=ctx.span_id,
        parent_span_id=ctx.parent_span_id if ctx.sampled is not None else None,
        sampled=ctx.sampled,
        debug=ctx.debug,
        trace_id_64bit=ctx.trace_id_64bit,
    )
    assert b3.extract(headers) == expected


@given(st.text(), st.text(), st.text(), st.text(), st.text())
def test_arbitrary_text_never_raises(a: str, b: str, c: str, d: str, e: str) -> None:
    b3.parse_single(a)
    b3.extract({"b3": a, "x-b3-traceid": b, "x-b3-spanid": c, "x-b3-sampled": d, "x-b3-flags": e})
    b3.extract({"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-parentspanid": b})
