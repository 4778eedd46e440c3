"""W3C traceparent and tracestate: the spec's examples, its test-suite cases, round trips."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemesh.propagation import w3c
from tracemesh.propagation.context import SpanContext

from .strategies import contexts, tracestates

TID = "12345678901234567890123456789012"
SID = "1234567890123456"


def test_spec_example_parses() -> None:
    ctx = w3c.parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert ctx is not None
    assert ctx.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert ctx.span_id.hex() == "b7ad6b7169203331"
    assert ctx.sampled is True
    assert ctx.parent_span_id is None and not ctx.debug and not ctx.trace_id_64bit


def test_reference_example_and_not_sampled() -> None:
    ctx = w3c.parse_traceparent("00-463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-01")
    assert ctx is not None and ctx.span_id.hex() == "a2fb4a1d1a96d312"
    unsampled = w3c.parse_traceparent(f"00-{TID}-{SID}-00")
    assert unsampled is not None and unsampled.sampled is False


@pytest.mark.parametrize(
    ("flags", "sampled", "random"),
    [("00", False, False), ("01", True, False), ("02", False, True), ("03", True, True),
     ("ff", True, True), ("04", False, False)],
)  # fmt: skip
def test_flags_are_tested_bitwise(flags: str, sampled: bool, random: bool) -> None:
    ctx = w3c.parse_traceparent(f"00-{TID}-{SID}-{flags}")
    assert ctx is not None
    assert (ctx.sampled, ctx.random_trace_id) == (sampled, random)


@pytest.mark.parametrize(
    "value",
    [
        f"ff-{TID}-{SID}-01",  # version ff is invalid
        f"00-{'0' * 32}-{SID}-01",  # all-zero trace id
        f"00-{TID}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TID.upper().replace('1', 'A')}-{SID}-01",  # uppercase hex
        f"00-{TID}-{SID.replace('1', 'A')}-01",
        f"00-{TID}-{SID}-0A",
        f"0A-{TID}-{SID}-01",
        f"00-{TID}-{SID}-01.",  # anything after the flags in version 00
        f"00-{TID}-{SID}-01-what-the-future-will-be-like",
        f"cc-{TID}-{SID}-01.what-the-future-will-be-like",  # future version, no `-` after flags
        f".0-{TID}-{SID}-01",
        f"0.-{TID}-{SID}-01",
        f"000-{TID}-{SID}-01",
        f"0-{TID}-{SID}-01",
        f"00-.{TID[1:]}-{SID}-01",
        f"00-{TID}3-{SID}-01",  # trace id too long
        f"00-{TID[:-1]}-{SID}-01",  # too short
        f"00-{TID}-{SID}7-01",
        f"00-{TID}-{SID[:-1]}-01",
        f"00-{TID}-{SID}-.0",
        f"00-{TID}-{SID}-001",
        f"00-{TID}-{SID}-1",
        f"00_{TID}-{SID}-01",  # `-` in the wrong places
        f"00-{TID}_{SID}-01",
        f"00-{TID}-{SID}_01",
        f"00{TID}-{SID}-01-",
        f"00--{TID}-{SID}-01",
        f"cc-{TID}-{SID}",  # future version shorter than 55 characters
        "",
        "00",
        f"00-{TID}-{SID}-01\x00",
    ],
)
def test_invalid_traceparent_is_ignored(value: str) -> None:
    assert w3c.parse_traceparent(value) is None
    assert w3c.extract({"traceparent": value, "tracestate": "foo=1"}) is None


def test_future_versions_are_read_leniently() -> None:
    for value in (f"cc-{TID}-{SID}-01", f"cc-{TID}-{SID}-01-what-the-future-will-be-like"):
        ctx = w3c.parse_traceparent(value)
        assert ctx is not None and ctx.trace_id.hex() == TID and ctx.sampled is True
        assert w3c.format_traceparent(ctx) == f"00-{TID}-{SID}-01"  # downgraded to 00


@pytest.mark.parametrize("ows", [" ", "\t", " \t"])
def test_optional_whitespace_around_traceparent(ows: str) -> None:
    ctx = w3c.parse_traceparent(f"{ows}00-{TID}-{SID}-01{ows}")
    assert ctx is not None and ctx.trace_id.hex() == TID


def test_header_name_is_case_insensitive_and_duplicates_restart() -> None:
    for name in ("TraceParent", "TRACEPARENT", "TrAcEpArEnT"):
        ctx = w3c.extract({name: f"00-{TID}-{SID}-01"})
        assert ctx is not None and ctx.trace_id.hex() == TID
    for name in ("trace-parent", "trace.parent"):
        assert w3c.extract({name: f"00-{TID}-{SID}-01"}) is None
    pairs = [("traceparent", f"00-{TID[:-1]}1-{SID}-01"), ("traceparent", f"00-{TID}-{SID}-01")]
    assert w3c.extract(pairs) is None


def _state(*headers: str) -> str:
    pairs = [("traceparent", f"00-{TID}-{SID}-00"), *(("tracestate", h) for h in headers)]
    ctx = w3c.extract(pairs)
    assert ctx is not None and ctx.trace_id.hex() == TID  # tracestate never affects traceparent
    return ctx.trace_state


def test_tracestate_examples() -> None:
    assert _state("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE") == (
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    )
    assert _state("congo=BleGNlZWRzIHRohbCBwbGVhc3VyZS4") == "congo=BleGNlZWRzIHRohbCBwbGVhc3VyZS4"
    rojo = "rojo=00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
    assert _state(f"{rojo},congo=BleGNlZWRzIHRohbCBwbGVhc3VyZS4").startswith(rojo + ",")


def test_tracestate_combines_headers_tolerates_empties_and_ows() -> None:
    assert _state("foo=1,bar=2", "rojo=1,congo=2", "baz=3") == "foo=1,bar=2,rojo=1,congo=2,baz=3"
    assert _state("") == ""
    assert _state("foo=1", "") == "foo=1"
    assert _state("", "foo=1") == "foo=1"
    assert _state("foo=1 \t , \t bar=2, \t baz=3") == "foo=1,bar=2,baz=3"
    assert _state("\t foo=1 \t") == "foo=1"
    assert _state(",,foo=1, ,") == "foo=1"


def test_tracestate_all_allowed_characters() -> None:
    key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
    value = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")
    assert _state(f"{key}={value}") == f"{key}={value}"
    assert _state(f"{key}@a-z0-9_-*/={value}") == f"{key}@a-z0-9_-*/={value}"
    assert _state("0tenant@vendor=x") == "0tenant@vendor=x"
    assert _state("k= leading-space-kept") == "k= leading-space-kept"


@pytest.mark.parametrize(
    "headers",
    [
        ("foo=1,foo=1",),  # duplicated keys
        ("foo=1,foo=2",),
        ("foo=1", "foo=2"),
        ("foo =1",),  # illegal keys
        ("FOO=1",),
        ("foo.bar=1",),
        ("@foo=1,bar=2",),
        ("foo=1", "z" * 257 + "=1"),  # key longer than 256
        ("foo=bar=baz",),  # illegal values
        ("foo=,bar=3",),
        ("foo=1", "v=" + "x" * 257),  # value longer than 256
        ("foo=a\tb",),
        ("foo=\u00e9",),
        ("novalue",),
        ("=1",),
        (",".join(f"bar{i:02}={i:02}" for i in range(1, 34)),),  # 33 members
    ],
)
def test_invalid_tracestate_is_discarded_whole(headers: tuple[str, ...]) -> None:
    assert _state(*headers) == ""


def test_tracestate_limits() -> None:
    members = [f"bar{i:02}={i:02}" for i in range(1, 33)]
    header = ",".join(members)
    assert _state(*(",".join(members[i : i + 10]) for i in range(0, 32, 10))) == header
    assert _state("foo=1", "z" * 256 + "=1") == "foo=1," + "z" * 256 + "=1"
    assert _state("k=" + "x" * 256) == "k=" + "x" * 256
    assert _state("k=" + "x" * 9000) == ""  # over MAX_TRACESTATE_LENGTH


def test_tracestate_without_traceparent_is_ignored() -> None:
    assert w3c.extract({"tracestate": "foo=1"}) is None


def test_inject_writes_both_and_removes_stale_tracestate() -> None:
    ctx = SpanContext(trace_id=bytes.fromhex(TID), span_id=bytes.fromhex(SID), sampled=True)
    headers = {"TraceState": "old=1"}
    w3c.inject(ctx, headers)
    assert headers == {"traceparent": f"00-{TID}-{SID}-01"}
    w3c.inject(replace(ctx, trace_state="rojo=1"), headers)
    assert headers["tracestate"] == "rojo=1"


def test_64bit_trace_id_is_written_zero_extended() -> None:
    ctx = SpanContext(
        trace_id=bytes(8) + bytes.fromhex(SID), span_id=bytes.fromhex(SID), trace_id_64bit=True
    )
    assert w3c.format_traceparent(ctx) == f"00-0000000000000000{SID}-{SID}-00"


@given(contexts(trace_state=tracestates))
def test_round_trip(ctx: SpanContext) -> None:
    headers: dict[str, str] = {}
    w3c.inject(ctx, headers)
    back = w3c.extract(headers)
    # W3C carries no parent, no debug, no 64-bit memory, no deferral and no firehose.
    assert back == SpanContext(
        trace_id=ctx.trace_id,
        span_id=ctx.span_id,
        sampled=bool(ctx.sampled),
        random_trace_id=ctx.random_trace_id,
        trace_state=ctx.trace_state,
    )


@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    w3c.parse_traceparent(text)
    w3c.parse_tracestate([text])
    w3c.extract({"traceparent": text, "tracestate": text})
    w3c.extract({"traceparent": f"00-{TID}-{SID}-01", "tracestate": text})
