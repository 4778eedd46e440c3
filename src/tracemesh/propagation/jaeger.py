"""Jaeger's own headers: `uber-trace-id`, `uberctx-*`, `jaeger-baggage` and `jaeger-debug-id`.

`uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}`, also URL-encoded whole (`%3A` for
`:`) as jaeger-client does in its HTTP-headers mode. Ids are 1-32 (trace) and 1-16 (span, parent)
hex digits of any case, left-padded with zeros; 16 digits or fewer is a 64-bit trace id. A zero
trace or span id is invalid; a zero parent means a root. Flags are one byte in 1-2 hex digits:
0x01 sampled, 0x02 debug, 0x08 firehose. Exactly four parts, and exactly one header, or the
context is ignored. Writing pads ids to 16 or 32 digits as the spec asks (jaeger-client wrote them
unpadded; both read either) and the parent as `0` when there is none. Jaeger cannot defer a
sampling decision, so a deferred context is written with flags 0, i.e. not sampled.

Baggage: `uberctx-{key}: {value}` per item, keys lowercased (HTTP does not keep case), values
percent-decoded with `+` as space (Jaeger's Go and Java clients form-encode them; the Python
client percent-encodes and never sends a bare `+`). `jaeger-baggage: k1=v1, k2=v2` is the ad-hoc
form for curl, decoded the same way. When writing, values are percent-encoded without `+`, so
every client decodes them alike. `jaeger-debug-id: <any>` forces a debug trace; its value (1-256
printable characters) is kept so the hop can tag its span with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

from tracemesh.propagation import limits
from tracemesh.propagation.carrier import HEADERS, Getter, Setter, prefixed
from tracemesh.propagation.context import SpanContext

UBER_TRACE_ID = "uber-trace-id"
BAGGAGE_PREFIX = "uberctx-"
JAEGER_BAGGAGE = "jaeger-baggage"
DEBUG_ID = "jaeger-debug-id"

SAMPLED_FLAG = 0x01
DEBUG_FLAG = 0x02
FIREHOSE_FLAG = 0x08

MAX_UBER_TRACE_ID_LENGTH = 128  # 69 characters at most, 75 URL-encoded; the rest is slack
MAX_DEBUG_ID_LENGTH = 256
_OWS = " \t"
_TRACE_HEX = re.compile(r"[0-9a-fA-F]{1,32}")
_SPAN_HEX = re.compile(r"[0-9a-fA-F]{1,16}")
_FLAGS_HEX = re.compile(r"[0-9a-fA-F]{1,2}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def parse_uber_trace_id(value: str) -> SpanContext | None:
    """One `uber-trace-id` value, plain or URL-encoded; None when malformed."""
    if len(value) > MAX_UBER_TRACE_ID_LENGTH:
        return None
    if "%" in value:
        value = unquote(value, errors="replace")
    parts = value.strip(_OWS).split(":")
    if len(parts) != 4:
        return None
    trace_hex, span_hex, parent_hex, flags_hex = parts
    if (
        _TRACE_HEX.fullmatch(trace_hex) is None
        or _SPAN_HEX.fullmatch(span_hex) is None
        or _SPAN_HEX.fullmatch(parent_hex) is None
        or _FLAGS_HEX.fullmatch(flags_hex) is None
    ):
        return None
    trace_id = bytes.fromhex(trace_hex.rjust(32, "0"))
    span_id = bytes.fromhex(span_hex.rjust(16, "0"))
    if not any(trace_id) or not any(span_id):
        return None
    flags = int(flags_hex, 16)
    return SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=bytes.fromhex(parent_hex.rjust(16, "0")),
        sampled=bool(flags & (SAMPLED_FLAG | DEBUG_FLAG)),
        debug=bool(flags & DEBUG_FLAG),
        firehose=bool(flags & FIREHOSE_FLAG),
        trace_id_64bit=len(trace_hex) <= 16,
    )


def format_uber_trace_id(ctx: SpanContext) -> str:
    flags = (SAMPLED_FLAG if ctx.sampled else 0) | (DEBUG_FLAG if ctx.debug else 0)
    flags |= FIREHOSE_FLAG if ctx.firehose else 0
    parent = ctx.parent_span_id.hex() if ctx.parent_span_id is not None else "0"
    return f"{ctx.trace_id_hex}:{ctx.span_id.hex()}:{parent}:{flags:x}"


def extract(carrier: Any, getter: Getter[Any] = HEADERS) -> SpanContext | None:
    """The `uber-trace-id` context in a carrier; None when absent, repeated or malformed."""
    values = getter.get(carrier, UBER_TRACE_ID)
    return parse_uber_trace_id(values[0]) if len(values) == 1 else None


def inject(ctx: SpanContext, carrier: Any, setter: Setter[Any] = HEADERS) -> None:
    setter.set(carrier, UBER_TRACE_ID, format_uber_trace_id(ctx))


def _decode(text: str) -> str | None:
    """A form-encoded header value, or None when it is not printable ASCII."""
    if _PRINTABLE.fullmatch(text) is None:
        return None
    return unquote_plus(text, errors="replace") if ("%" in text or "+" in text) else text


def extract_uberctx(carrier: Any, getter: Getter[Any] = HEADERS) -> dict[str, str]:
    """Baggage from `uberctx-{key}` headers (first value of each), within the shared limits."""
    found: list[tuple[str, str]] = []
    for key, raw in prefixed(carrier, getter, BAGGAGE_PREFIX, limits.MAX_MEMBERS):
        if not key or _TOKEN.fullmatch(key) is None or len(raw) > limits.MAX_MEMBER_BYTES:
            continue
        value = _decode(raw.strip(_OWS))
        if value is not None:
            found.append((key, value))
    return dict(limits.bounded(found))


def parse_jaeger_baggage(values: list[str]) -> dict[str, str]:
    """Baggage from `jaeger-baggage: k1=v1, k2=v2` values; malformed items are skipped."""
    text = limits.head(values, limits.MAX_BYTES)
    found: list[tuple[str, str]] = []
    for item in text.split(","):
        parts = item.strip(_OWS).split("=")
        if len(parts) != 2:
            continue
        key = _decode(parts[0].strip(_OWS))
        value = _decode(parts[1].strip(_OWS))
        if key and value is not None:
            found.append((key, value))
    return dict(limits.bounded(found))


def extract_debug_id(carrier: Any, getter: Getter[Any] = HEADERS) -> str | None:
    """The `jaeger-debug-id` value when present and sane (first header wins)."""
    values = getter.get(carrier, DEBUG_ID)
    if not values or len(values[0]) > 3 * MAX_DEBUG_ID_LENGTH:
        return None
    value = _decode(values[0].strip(_OWS))
    if not value or len(value) > MAX_DEBUG_ID_LENGTH or _PRINTABLE.fullmatch(value) is None:
        return None
    return value


def _encoded_size(key: str, value: str) -> int:
    return len(BAGGAGE_PREFIX) + len(key) + 2 + len(_encode(value))


def _encode(value: str) -> str:
    return quote(value, safe="", errors="replace")


def inject_uberctx(baggage: Mapping[str, str], carrier: Any, setter: Setter[Any] = HEADERS) -> None:
    """Write one `uberctx-{key}` header per item whose key is a header-name token."""
    items = [(k.lower(), v) for k, v in baggage.items() if _TOKEN.fullmatch(k) is not None]
    for key, value in limits.bounded(items, _encoded_size, separator=0):
        setter.set(carrier, BAGGAGE_PREFIX + key, _encode(value))
