"""W3C Trace Context: the `traceparent` and `tracestate` headers, read and written.

`traceparent` is `{version}-{trace-id:32}-{parent-id:16}-{flags:2}`, lowercase hex only. Version
`00` must be exactly 55 characters; `ff` is invalid; a higher version is read leniently (at least
55 characters, the known fields, then end of value or `-`) and written back as `00`. All-zero ids,
uppercase or non-hex digits, and more than one `traceparent` header make the header invalid: it
is ignored, as is `tracestate` with it, so the caller starts a new trace. Flags: 0x01 sampled,
0x02 random trace id (Level 2, kept); other bits are dropped on the way out as the spec asks.
W3C has no deferred sampling and no debug: a deferred context is written with the sampled bit
clear, a debug one with it set.

`tracestate` is read only next to a valid `traceparent`. Its values, possibly split over several
headers, are joined with commas; empty members and whitespace around members are tolerated. Keys
follow the current (Level 2) grammar, which accepts every Level 1 key too: a lowercase letter or
digit, then up to 255 of `a-z 0-9 _ - * / @`. Values are up to 256 printable ASCII characters
other than `,` and `=`, not ending in a space. A header with a bad member, a repeated key, more
than 32 members, or more than `MAX_TRACESTATE_LENGTH` characters in all is discarded whole, the
choice the spec allows ("MAY discard the entire header") and its test suite checks for: keeping a
half-parsed list would forward entries nobody wrote.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from tracemesh.propagation.carrier import HEADERS, Getter, Setter
from tracemesh.propagation.context import SpanContext

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
HEADER_NAMES = (TRACEPARENT, TRACESTATE)

MAX_TRACEPARENT_LENGTH = 512
"""A future version may append fields; longer than this is not a header anyone means."""
MAX_TRACESTATE_MEMBERS = 32
MAX_TRACESTATE_LENGTH = 8192
"""Combined `tracestate` characters read; the spec asks to propagate at least 512."""

SAMPLED_FLAG = 0x01
RANDOM_FLAG = 0x02

_OWS = " \t"
_TRACEPARENT_HEAD = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_KEY = re.compile(r"[a-z0-9][a-z0-9_\-*/@]{0,255}")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse_traceparent(value: str) -> SpanContext | None:
    """The context in one `traceparent` value, or None when it is invalid."""
    if len(value) > MAX_TRACEPARENT_LENGTH:
        return None
    value = value.strip(_OWS)
    match = _TRACEPARENT_HEAD.match(value)
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex = match.groups()
    if version == "ff":
        return None
    if version == "00" and len(value) != 55:
        return None
    if len(value) > 55 and value[55] != "-":
        return None
    if trace_hex == _ZERO_TRACE or span_hex == _ZERO_SPAN:
        return None
    flags = int(flags_hex, 16)
    return SpanContext(
        trace_id=bytes.fromhex(trace_hex),
        span_id=bytes.fromhex(span_hex),
        sampled=bool(flags & SAMPLED_FLAG),
        random_trace_id=bool(flags & RANDOM_FLAG),
    )


def format_traceparent(ctx: SpanContext) -> str:
    """Version 00, always a 32-digit trace id (a 64-bit id is zero-extended)."""
    flags = (SAMPLED_FLAG if ctx.sampled else 0) | (RANDOM_FLAG if ctx.random_trace_id else 0)
    return f"00-{ctx.trace_id.hex()}-{ctx.span_id.hex()}-{flags:02x}"


def parse_tracestate(values: list[str]) -> str:
    """The validated, normalized `tracestate` (members joined by `,`), or "" when discarded."""
    total = sum(len(v) for v in values) + max(len(values) - 1, 0)
    if total > MAX_TRACESTATE_LENGTH:
        return ""
    members: list[str] = []
    keys: set[str] = set()
    for raw in ",".join(values).split(","):
        member = raw.strip(_OWS)
        if not member:
            continue
        key, sep, val = member.partition("=")
        if not sep or _KEY.fullmatch(key) is None or _VALUE.fullmatch(val) is None:
            return ""
        if key in keys or len(members) == MAX_TRACESTATE_MEMBERS:
            return ""
        keys.add(key)
        members.append(member)
    return ",".join(members)


def extract(carrier: Any, getter: Getter[Any] = HEADERS) -> SpanContext | None:
    """The W3C context in a carrier, `tracestate` included; None when absent or invalid."""
    parents = getter.get(carrier, TRACEPARENT)
    if len(parents) != 1:
        return None  # absent, or repeated: the test suite expects a repeated one to restart
    ctx = parse_traceparent(parents[0])
    if ctx is None:
        return None
    state = parse_tracestate(getter.get(carrier, TRACESTATE))
    return replace(ctx, trace_state=state) if state else ctx


def inject(ctx: SpanContext, carrier: Any, setter: Setter[Any] = HEADERS) -> None:
    """Write `traceparent`, and `tracestate` when the context has one (else remove it)."""
    setter.set(carrier, TRACEPARENT, format_traceparent(ctx))
    if ctx.trace_state:
        setter.set(carrier, TRACESTATE, ctx.trace_state)
    else:
        setter.delete(carrier, TRACESTATE)
