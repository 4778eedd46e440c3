from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemesh.model.ids import (
    InvalidIDError,
    parse_span_id,
    parse_trace_id,
    parse_trace_id_hex_or_base64,
    span_id_from_int,
    trace_id_from_ints,
    trace_id_to_hex,
)

nonzero16 = st.binary(min_size=16, max_size=16).filter(any)


@given(nonzero16)
def test_trace_id_hex_round_trip(trace_id: bytes) -> None:
    text = trace_id_to_hex(trace_id)
    assert len(text) == (16 if trace_id[:8] == bytes(8) else 32)
    assert parse_trace_id(text) == trace_id
    assert parse_trace_id(text.upper()) == trace_id


@given(st.integers(min_value=1, max_value=2**64 - 1))
def test_64_bit_ids_show_as_16_hex(low: int) -> None:
    trace_id = trace_id_from_ints(0, low)
    assert trace_id_to_hex(trace_id) == f"{low:016x}"
    assert parse_trace_id(f"{low:x}") == trace_id  # leading zeros optional


def test_signed_thrift_halves_are_unsigned_bits() -> None:
    assert trace_id_from_ints(-1, -2).hex() == "ff" * 8 + "ff" * 7 + "fe"
    assert span_id_from_int(-1) == b"\xff" * 8


@pytest.mark.parametrize("bad", ["", "0", "0" * 32, "xyz", "1" * 33, "12 34", "０１"])
def test_invalid_trace_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidIDError):
        parse_trace_id(bad)


@pytest.mark.parametrize("bad", ["", "0000000000000000", "1" * 17, "g"])
def test_invalid_span_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidIDError):
        parse_span_id(bad)


@given(st.text(max_size=64))
def test_parsing_never_fails_other_than_invalid_id(text: str) -> None:
    for parse in (parse_trace_id, parse_span_id, parse_trace_id_hex_or_base64):
        with contextlib.suppress(InvalidIDError):
            parse(text)


@given(nonzero16)
def test_base64_trace_ids_for_api_v3(trace_id: bytes) -> None:
    encoded = base64.b64encode(trace_id).decode()
    assert parse_trace_id_hex_or_base64(encoded) == trace_id
