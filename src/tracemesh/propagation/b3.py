"""Zipkin B3: the multi-header `X-B3-*` form and the single `b3` header, read and written.

Reading follows `openzipkin/b3-propagation`, leniently where real clients need it:

- `b3` wins over `X-B3-*` when it parses; a malformed `b3` falls back to the multi headers.
  Its grammar is `{trace:16|32}-{span:16}[-{state}[-{parent:16}]]` with state `1`, `0` or `d`
  (debug), or the state alone (`b3: 0`, `b3: 1`, `b3: d`) to carry only a sampling decision.
- `X-B3-TraceId` takes 1-32 hex digits and `X-B3-SpanId`/`X-B3-ParentSpanId` 1-16, any case
  (jaeger-client writes unpadded ids); 16 digits or fewer is a 64-bit trace id. The first value
  of a repeated header wins. An all-zero trace or span id, or junk in any id header, invalidates
  the whole context; an all-zero parent is read as no parent.
- `X-B3-Sampled`: `1`/`true` accept, `0`/`false` deny (any case), anything else is ignored
  (deferred). `X-B3-Flags: 1` is debug; other values are ignored.
- `X-B3-Sampled` or `X-B3-Flags` without ids is a sampling decision only (`SamplingFlags`).

Writing: 32 hex digits for the trace id unless it was read as 64-bit, the parent when known,
`X-B3-Sampled` when decided. A debug context gets `X-B3-Flags: 1` *and* `X-B3-Sampled: 1`: the
spec says Flags alone suffices, but Envoy's Zipkin tracer never reads `X-B3-Flags` and would
otherwise make its own decision for a trace someone asked to debug. The single form writes the
parent only after a sampling state, as its grammar requires, so a deferred context loses it.
"""

from __future__ import annotations

import re
from typing import Any

from tracemesh.propagation.carrier import HEADERS, Getter, Setter
from tracemesh.propagation.context import SamplingFlags, SpanContext

B3 = "b3"
TRACE_ID = "x-b3-traceid"
SPAN_ID = "x-b3-spanid"
PARENT_SPAN_ID = "x-b3-parentspanid"
SAMPLED = "x-b3-sampled"
FLAGS = "x-b3-flags"
MULTI_HEADER_NAMES = (TRACE_ID, SPAN_ID, PARENT_SPAN_ID, SAMPLED, FLAGS)
HEADER_NAMES = (B3, *MULTI_HEADER_NAMES)

MAX_SINGLE_LENGTH = 68  # 32 + 16 + state + 16 and three dashes, as Envoy caps it
_OWS = " \t"
_SINGLE = re.compile(
    r"([0-9a-fA-F]{32}|[0-9a-fA-F]{16})-([0-9a-fA-F]{16})(?:-([01dD])(?:-([0-9a-fA-F]{16}))?)?"
)
_TRACE_HEX = re.compile(r"[0-9a-fA-F]{1,32}")
_SPAN_HEX = re.compile(r"[0-9a-fA-F]{1,16}")
_STATES = {"1": (True, False), "0": (False, False), "d": (True, True), "D": (True, True)}

B3Result = SpanContext | SamplingFlags
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


def _trace_id(text: str) -> tuple[bytes, bool] | None:
    text = text.strip(_OWS) if len(text) <= 64 else text
    if _TRACE_HEX.fullmatch(text) is None:
        return None
    raw = bytes.fromhex(text.rjust(32, "0"))
    return (raw, len(text) <= 16) if raw != _ZERO_TRACE else None


def _span_id(text: str) -> bytes | None:
    text = text.strip(_OWS) if len(text) <= 64 else text
    if _SPAN_HEX.fullmatch(text) is None:
        return None
    return bytes.fromhex(text.rjust(16, "0"))


def parse_single(value: str) -> B3Result | None:
    """One `b3` header value: a context, a sampling decision only, or None when malformed."""
    if len(value) > MAX_SINGLE_LENGTH + 8:
        return None
    value = value.strip(_OWS)
    if len(value) == 1:
        state = _STATES.get(value)
        return None if state is None else SamplingFlags(sampled=state[0], debug=state[1])
    match = _SINGLE.fullmatch(value)
    if match is None:
        return None
    trace_hex, span_hex, state_char, parent_hex = match.groups()
    trace_id = bytes.fromhex(trace_hex.rjust(32, "0"))
    span_id = bytes.fromhex(span_hex)
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    sampled, debug = _STATES[state_char] if state_char else (None, False)
    return SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=bytes.fromhex(parent_hex) if parent_hex else None,
        sampled=sampled,
        debug=debug,
        trace_id_64bit=len(trace_hex) == 16,
    )


def format_single(ctx: SpanContext) -> str:
    """`{trace}-{span}[-{state}[-{parent}]]`."""
    text = f"{ctx.trace_id_hex}-{ctx.span_id.hex()}"
    if ctx.sampled is None:
        return text
    text += "-d" if ctx.debug else ("-1" if ctx.sampled else "-0")
    if ctx.parent_span_id is not None:
        text += f"-{ctx.parent_span_id.hex()}"
    return text


def _first(getter: Getter[Any], carrier: Any, name: str) -> str | None:
    values = getter.get(carrier, name)
    return values[0] if values else None


def _sampled(value: str | None) -> bool | None:
    if value is None or len(value) > 16:
        return None
    text = value.strip(_OWS).lower()
    if text in ("1", "true"):
        return True
    if text in ("0", "false"):
        return False
    return None


def extract_multi(carrier: Any, getter: Getter[Any] = HEADERS) -> B3Result | None:
    """The `X-B3-*` headers alone."""
    trace_text = _first(getter, carrier, TRACE_ID)
    span_text = _first(getter, carrier, SPAN_ID)
    sampled = _sampled(_first(getter, carrier, SAMPLED))
    flags = _first(getter, carrier, FLAGS)
    debug = flags is not None and len(flags) <= 16 and flags.strip(_OWS) == "1"
    if trace_text is None and span_text is None:
        if sampled is None and not debug:
            return None
        return SamplingFlags(sampled=True if debug else sampled, debug=debug)
    if trace_text is None or span_text is None:
        return None
    trace = _trace_id(trace_text)
    span_id = _span_id(span_text)
    if trace is None or span_id is None or span_id == _ZERO_SPAN:
        return None
    parent_text = _first(getter, carrier, PARENT_SPAN_ID)
    parent = None if parent_text is None else _span_id(parent_text)
    if parent_text is not None and parent is None:
        return None  # junk such as `X-B3-ParentSpanId: -` is malformed, says the spec
    return SpanContext(trace[0], span_id, parent, sampled, debug, trace[1])


def extract(carrier: Any, getter: Getter[Any] = HEADERS) -> B3Result | None:
    """The B3 context or sampling decision in a carrier: `b3` first, then `X-B3-*`."""
    single = _first(getter, carrier, B3)
    if single is not None:
        parsed = parse_single(single)
        if parsed is not None:
            return parsed
    return extract_multi(carrier, getter)


def inject_multi(ctx: SpanContext, carrier: Any, setter: Setter[Any] = HEADERS) -> None:
    """Write the `X-B3-*` headers, removing any of them this context does not carry."""
    setter.set(carrier, TRACE_ID, ctx.trace_id_hex)
    setter.set(carrier, SPAN_ID, ctx.span_id.hex())
    if ctx.parent_span_id is not None:
        setter.set(carrier, PARENT_SPAN_ID, ctx.parent_span_id.hex())
    else:
        setter.delete(carrier, PARENT_SPAN_ID)
    if ctx.sampled is None:
        setter.delete(carrier, SAMPLED)
    else:
        setter.set(carrier, SAMPLED, "1" if ctx.sampled else "0")
    if ctx.debug:
        setter.set(carrier, FLAGS, "1")
    else:
        setter.delete(carrier, FLAGS)


def inject_single(ctx: SpanContext, carrier: Any, setter: Setter[Any] = HEADERS) -> None:
    """Write the `b3` header."""
    setter.set(carrier, B3, format_single(ctx))
