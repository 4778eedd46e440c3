"""Trace and span ids: 16- and 8-byte big-endian values, shown as lowercase hex as Jaeger does."""

from __future__ import annotations

import base64
import binascii

TRACE_ID_SIZE = 16
SPAN_ID_SIZE = 8
ZERO_TRACE_ID = bytes(TRACE_ID_SIZE)
ZERO_SPAN_ID = bytes(SPAN_ID_SIZE)
_HEX = frozenset("0123456789abcdefABCDEF")


class InvalidIDError(ValueError):
    """An id that is not 1-32 (trace) or 1-16 (span) hex digits, or that is all zeros."""


def trace_id_to_hex(trace_id: bytes) -> str:
    """16 hex digits when the high 64 bits are zero (a 64-bit id), else 32, as Jaeger shows them."""
    if trace_id[:8] == ZERO_SPAN_ID:
        return trace_id[8:].hex()
    return trace_id.hex()


def span_id_to_hex(span_id: bytes) -> str:
    return span_id.hex()


def _parse_hex(text: str, size: int, what: str) -> bytes:
    if not text or len(text) > size * 2 or not _HEX.issuperset(text):
        raise InvalidIDError(f"{what} must be 1 to {size * 2} hex digits, got {text[:80]!r}")
    value = bytes.fromhex(text.rjust(size * 2, "0"))
    if value == bytes(size):
        raise InvalidIDError(f"{what} must not be all zeros")
    return value


def parse_trace_id(text: str) -> bytes:
    """Parse a hex trace id; leading zeros are optional and a 64-bit id gets a zero high half."""
    return _parse_hex(text, TRACE_ID_SIZE, "trace id")


def parse_span_id(text: str) -> bytes:
    return _parse_hex(text, SPAN_ID_SIZE, "span id")


def parse_trace_id_hex_or_base64(text: str) -> bytes:
    """api_v3 accepts a hex id or the base64 form of its 16 bytes; hex is tried first."""
    try:
        return parse_trace_id(text)
    except InvalidIDError as hex_error:
        error = hex_error
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidIDError(f"trace id is neither hex nor base64: {text[:80]!r}") from None
    if not raw:
        raise error
    if len(raw) not in (SPAN_ID_SIZE, TRACE_ID_SIZE):
        raise InvalidIDError(f"base64 trace id must decode to 8 or 16 bytes, got {len(raw)}")
    return normalize_trace_id(raw)


def normalize_trace_id(raw: bytes) -> bytes:
    """Accept an 8-byte (64-bit) or 16-byte id; return 16 bytes. Raise on any other size or zero."""
    if len(raw) == SPAN_ID_SIZE:
        raw = ZERO_SPAN_ID + raw
    if len(raw) != TRACE_ID_SIZE:
        raise InvalidIDError(f"trace id must be 8 or 16 bytes, got {len(raw)}")
    if raw == ZERO_TRACE_ID:
        raise InvalidIDError("trace id must not be all zeros")
    return raw


def trace_id_from_ints(high: int, low: int) -> bytes:
    """Jaeger Thrift carries ids as signed i64 halves; they are unsigned bit patterns."""
    return (high & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big") + (low & 0xFFFFFFFFFFFFFFFF).to_bytes(
        8, "big"
    )


def span_id_from_int(value: int) -> bytes:
    return (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
