"""Jaeger's uber-trace-id, uberctx-*, jaeger-baggage and jaeger-debug-id."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemesh.propagation import jaeger
from tracemesh.propagation.context import SpanContext

from .strategies import contexts, lower_tokens, unicode_values


def _parse(value: str) -> SpanContext:
    ctx = jaeger.parse_uber_trace_id(value)
    assert ctx is not None, value
    return ctx


def test_java_client_example_unpadded() -> None:
    ctx = _parse("48485a3953bb6124:a2fb4a1d1a96d312:20000000000001:1")
    assert ctx.trace_id == bytes(8) + bytes.fromhex("48485a3953bb6124")
    assert ctx.trace_id_64bit
    assert ctx.span_id.hex() == "a2fb4a1d1a96d312"
    assert ctx.parent_span_id == bytes.fromhex("0020000000000001")
    assert ctx.sampled is True and not ctx.debug
    assert jaeger.format_uber_trace_id(ctx) == (
        "48485a3953bb6124:a2fb4a1d1a96d312:0020000000000001:1"
    )


def test_url_encoded_example() -> None:
    encoded = _parse("48485a3953bb6124%3Aa2fb4a1d1a96d312%3A20000000000001%3A1")
    assert encoded == _parse("48485a3953bb6124:a2fb4a1d1a96d312:20000000000001:1")
    assert _parse("48485a3953bb6124%3aa2fb4a1d1a96d312%3a0%3a1").parent_span_id is None


def test_128bit_and_short_ids_are_left_padded() -> None:
    ctx = _parse("463ac35c9f6413ad48485a3953bb6124:a2fb4a1d1a96d312:0:0")
    assert ctx.trace_id.hex() == "463ac35c9f6413ad48485a3953bb6124" and not ctx.trace_id_64bit
    assert ctx.sampled is False and ctx.parent_span_id is None
    short = _parse("1:2:0:1")
    assert short.trace_id == bytes(15) + b"\x01" and short.span_id == bytes(7) + b"\x02"
    assert jaeger.format_uber_trace_id(short) == "0000000000000001:0000000000000002:0:1"
    assert _parse("ABC:DEF:0:1").span_id.hex() == "0000000000000def"


@pytest.mark.parametrize(
    ("flags", "sampled", "debug", "firehose"),
    [("0", False, False, False), ("1", True, False, False), ("3", True, True, False),
     ("2", True, True, False), ("9", True, False, True), ("09", True, False, True),
     ("b", True, True, True)],
)  # fmt: skip
def test_flag_bits(flags: str, sampled: bool, debug: bool, firehose: bool) -> None:
    ctx = _parse(f"1:2:0:{flags}")
    assert (ctx.sampled, ctx.debug, ctx.firehose) == (sampled, debug, firehose)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0:2:0:1",  # zero trace id
        "1:0:0:1",  # zero span id
        "1:2:0",
        "1:2:0:1:5",
        "1:2:3",
        ":2:0:1",
        "1::0:1",
        "1:2::1",
        "1:2:0:",
        "1:2:0:100",  # flags are one byte
        "1" * 33 + ":2:0:1",
        "1:" + "2" * 17 + ":0:1",
        "1:2:" + "3" * 17 + ":1",
        "0x1:2:0:1",
        "-1:2:0:1",
        "1:2:0:-1",
        "g:2:0:1",
        "1 :2:0:1",
        "1%3A2%3A0",
        "%zz:2:0:1",
        "1%FF:2:0:1",
        "1:2:0:1" + " " * 200,
    ],
)
def test_malformed_uber_trace_id(value: str) -> None:
    assert jaeger.parse_uber_trace_id(value) is None


def test_extract_takes_exactly_one_header() -> None:
    assert jaeger.extract({"Uber-Trace-Id": "1:2:0:1"}) is not None
    assert jaeger.extract([("uber-trace-id", "1:2:0:1"), ("uber-trace-id", "1:2:0:1")]) is None


def test_uberctx_example_and_form_decoding() -> None:
    headers = {
        "uberctx-key1": "value%201%20%2F%20blah",
        "UberCtx-Key2": "a+b",  # Go and Java form-encode: + is a space
        "uberctx-key3": "c%2Bd",
        "uberctx-": "no key",
        "uberctx-bad key": "x",
        "uberctx-ctl": "a\x01b",
        "other": "1",
    }
    assert jaeger.extract_uberctx(headers) == {
        "key1": "value 1 / blah",
        "key2": "a b",
        "key3": "c+d",
    }


def test_jaeger_baggage_header() -> None:
    assert jaeger.parse_jaeger_baggage(["k1=v1, k2=v2"]) == {"k1": "v1", "k2": "v2"}
    assert jaeger.parse_jaeger_baggage(["k1=v1", "k2 = v%202 ,bad, x=y=z,=empty"]) == {
        "k1": "v1",
        "k2": "v 2",
    }


def test_debug_id() -> None:
    assert jaeger.extract_debug_id({"jaeger-debug-id": " my-debug-42 "}) == "my-debug-42"
    assert jaeger.extract_debug_id({"jaeger-debug-id": "a%20b"}) == "a b"
    for bad in ("", "  ", "x" * 257, "a\x00b", "caf\u00e9"):
        assert jaeger.extract_debug_id({"jaeger-debug-id": bad}) is None
    assert jaeger.extract_debug_id({}) is None


def test_inject_uberctx_encodes_and_skips_unwritable_keys() -> None:
    headers: dict[str, str] = {}
    jaeger.inject_uberctx({"Key": "a b+c/é", "bad key": "x", "": "y"}, headers)
    assert headers == {"uberctx-key": "a%20b%2Bc%2F%C3%A9"}
    assert jaeger.extract_uberctx(headers) == {"key": "a b+c/é"}


@given(contexts())
def test_uber_trace_id_round_trip(ctx: SpanContext) -> None:
    headers: dict[str, str] = {}
    jaeger.inject(ctx, headers)
    expected = SpanContext(
        trace_id=ctx.trace_id,
        span_id=ctx.span_id,
        parent_span_id=ctx.parent_span_id,
        sampled=bool(ctx.sampled),  # Jaeger cannot defer
        debug=ctx.debug,
        firehose=ctx.firehose,
        trace_id_64bit=ctx.trace_id_64bit,
    )
    assert jaeger.extract(headers) == expected


@given(st.dictionaries(lower_tokens, unicode_values, max_size=10))
def test_uberctx_round_trip(baggage: dict[str, str]) -> None:
    headers: list[tuple[str, str]] = []
    jaeger.inject_uberctx(baggage, headers)
    assert jaeger.extract_uberctx(headers) == baggage


@given(st.text(), st.text(), st.text(), st.text())
def test_arbitrary_text_never_raises(a: str, b: str, c: str, d: str) -> None:
    jaeger.parse_uber_trace_id(a)
    jaeger.parse_jaeger_baggage([a, b])
    headers = {"uber-trace-id": a, "uberctx-" + b: c, "jaeger-debug-id": d, "jaeger-baggage": c}
    jaeger.extract(headers)
    jaeger.extract_uberctx(headers)
    jaeger.extract_debug_id(headers)
