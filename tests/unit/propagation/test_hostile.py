"""Hostile headers: 10 MB values, control characters, non-ASCII, floods of headers.

Nothing raises, nothing hostile becomes a context, and a huge value costs O(cap): `Huge` is a
str that fails the test if any whole-string operation (strip, split, lower, `in`, iteration,
encoding...) is applied to it, so each parser must look at its length and refuse, or slice it,
before doing anything else.
"""

from __future__ import annotations

import time
from typing import Any, NoReturn

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemesh.propagation import Propagator, baggage, limits
from tracemesh.propagation.composite import CONTEXT_HEADERS, Format

HEADER_NAMES = [
    *CONTEXT_HEADERS,
    "baggage",
    "jaeger-baggage",
    "jaeger-debug-id",
    "x-request-id",
    "uberctx-k",
    "baggage-k",
]
TEN_MB = 10 * 1024 * 1024


class Huge(str):
    """A long str whose O(n) methods must not be called."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(f"O(n) operation on a {len(self)}-character header value")

    strip = lstrip = rstrip = lower = upper = casefold = _refuse
    split = rsplit = partition = rpartition = splitlines = _refuse
    encode = replace = find = rfind = index = rindex = count = _refuse
    isascii = isprintable = isdigit = isalnum = _refuse
    __contains__ = __iter__ = _refuse


FILLS = ["a", "0", "f", "1:", "-", "k=v,", " ", "\t", "\x00", "\r\n", "%3A", "é", "\U0001f600", ","]


@pytest.mark.parametrize("fill", FILLS)
def test_ten_megabyte_values_cost_no_more_than_the_cap(fill: str) -> None:
    value = Huge((fill * (TEN_MB // len(fill) + 1))[:TEN_MB])
    headers = {name: value for name in HEADER_NAMES}
    started = time.perf_counter()
    extraction = Propagator().extract_request(headers)
    elapsed = time.perf_counter() - started
    assert extraction.context is None and not extraction.debug
    assert len(extraction.request_id) == 36  # the huge one was replaced
    assert all(len(k) + len(v) < limits.MAX_MEMBER_BYTES for k, v in extraction.baggage.items())
    assert elapsed < 2.0, elapsed  # O(cap): a few ms normally, generous for loaded machines


def test_ten_megabyte_bytes_values_are_decoded_only_up_to_the_cap() -> None:
    pairs = [(name.encode(), b"1" * TEN_MB) for name in HEADER_NAMES]
    pairs.append((b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
    started = time.perf_counter()
    assert Propagator(read=["b3", "jaeger"]).extract(pairs) is None
    assert time.perf_counter() - started < 2.0


def test_a_valid_value_padded_to_ten_megabytes_is_refused() -> None:
    padded = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" + " " * TEN_MB
    assert Propagator().extract({"traceparent": padded}) is None


def test_flood_of_baggage_headers_is_capped() -> None:
    headers = {f"uberctx-k{i}": "v" for i in range(10_000)}
    headers.update({f"baggage-p{i}": "v" for i in range(10_000)})
    headers["baggage"] = ",".join(f"w{i}=v" for i in range(10_000))
    merged = baggage.extract(headers)
    assert len(merged) == limits.MAX_MEMBERS
    assert sum(limits.utf8_size(k, v) + 1 for k, v in merged.items()) <= limits.MAX_BYTES + 1


def test_many_repeated_values() -> None:
    pairs = [("x-b3-traceid", "0" * 32)] * 5000 + [("tracestate", "a=1")] * 5000
    pairs += [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    ctx = Propagator().extract(pairs)
    assert ctx is not None and ctx.trace_state == ""  # over 32 members and 8192 characters


@pytest.mark.parametrize(
    "bad",
    ["\x00", "\x7f", "\r\n", "\u00e9", "\u202e", "\ud800", "\ufeff", "<script>", "%00", "%ZZ"],
)
def test_control_and_non_ascii_characters(bad: str) -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    headers = {
        "traceparent": f"00-{trace}-b7ad6b7169203331-01{bad}",
        "b3": f"{trace}-b7ad6b7169203331-1{bad}",
        "x-b3-traceid": f"{trace}{bad}",
        "x-b3-spanid": "b7ad6b7169203331",
        "uber-trace-id": f"{trace}:b7ad6b7169203331:0:1{bad}",
        "jaeger-debug-id": f"id{bad}",
        "x-request-id": f"rid{bad}",
    }
    extraction = Propagator().extract_request(headers)
    assert extraction.context is None
    if not bad.isprintable() or not bad.isascii():  # `<script>`, `%ZZ` are fine ids
        assert extraction.debug_id == "" and extraction.request_id != f"rid{bad}"


any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=80)


@given(st.lists(st.tuples(st.sampled_from(HEADER_NAMES) | any_text, any_text), max_size=20))
def test_arbitrary_pairs_never_raise_and_round_trip_what_they_yield(
    pairs: list[tuple[str, str]],
) -> None:
    propagator = Propagator(write=list(Format), write_baggage=list(baggage.BaggageForm))
    extraction = propagator.extract_request(pairs)
    ctx = extraction.start()
    out: list[tuple[str, str]] = []
    propagator.inject(ctx, out)
    back = propagator.extract(out)
    assert back is not None and back.trace_id == ctx.trace_id and back.span_id == ctx.span_id
    propagator.strip(pairs)
    assert propagator.extract(pairs) is None
