"""Baggage in every form a request may carry it, merged into one `dict[str, str]`.

The forms, and their names in `BaggageForm`:

- `w3c`: the W3C `baggage` header, `key=value` members separated by commas, possibly over several
  headers. Keys are RFC 7230 tokens, kept as sent (case included); values are percent-decoded
  UTF-8, invalid UTF-8 becoming U+FFFD, and `+` stays a plus (the spec says percent-encoding;
  OpenTelemetry Python alone reads `+` as a space, so values are written with `+` as `%2B` and
  spaces as `%20`, which every reader agrees on). Optional whitespace is trimmed. Properties
  after `;` are dropped: a context holds plain string values, and nothing in the mesh reads
  baggage metadata (the spec leaves their meaning opaque and allows dropping). A member with a
  bad key, a bad character in its value or a stray `%` is dropped; the rest are kept. A repeated
  key keeps its last value.
- `jaeger`: `uberctx-{key}` headers, and the ad-hoc `jaeger-baggage: k=v, k2=v2` (see `jaeger`).
- `prefixed`: `baggage-{key}` headers, which Jaeger clients send under B3 propagation. They write
  values raw, so only printable ASCII values are read and written, unencoded.

Limits (`limits`): 180 members, 4096 bytes per member, 8192 bytes in all. Only the first 8192
characters of a form are read, so a huge header costs no more than that; members past a limit
are dropped whole, never cut.

Merging: the forms are read in the caller's order, which is their precedence; a key from an
earlier form wins. Within `jaeger`, `uberctx-*` wins over `jaeger-baggage`. The header-name forms
lose case on the wire (`uberctx-userid` for `userId`), so their keys match earlier keys ignoring
case; W3C keys are case-sensitive and match exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote

from tracemesh.propagation import jaeger, limits
from tracemesh.propagation.carrier import HEADERS, Getter, Setter, indexed, prefixed

BAGGAGE = "baggage"
PREFIX = "baggage-"


class BaggageForm(StrEnum):
    W3C = "w3c"
    JAEGER = "jaeger"
    PREFIXED = "prefixed"


DEFAULT_READ: tuple[BaggageForm, ...] = (BaggageForm.W3C, BaggageForm.JAEGER, BaggageForm.PREFIXED)
"""W3C first: it is what OpenTelemetry SDKs write, the newest writer on most requests."""

_OWS = " \t"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"(?:[\x21\x23-\x24\x26-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]|%[0-9A-Fa-f]{2})*")
_PRINTABLE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_SAFE = "!#$&'()*-./:<=>?@[]^_`{|}~"  # baggage-octets that need no escape, minus `%` and `+`


def parse_w3c(values: list[str]) -> dict[str, str]:
    """The members of `baggage` header values (several headers are one list)."""
    found: list[tuple[str, str]] = []
    for raw in limits.head(values, limits.MAX_BYTES).split(","):
        member, _, _properties = raw.partition(";")
        key, sep, value = member.partition("=")
        key = key.strip(_OWS)
        value = value.strip(_OWS)
        if not sep or _TOKEN.fullmatch(key) is None or _VALUE.fullmatch(value) is None:
            continue
        found.append((key, unquote(value, errors="replace") if "%" in value else value))
    return dict(limits.bounded(_last_wins(found)))


def _last_wins(members: list[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    merged: dict[str, str] = {}
    for key, value in members:
        merged.pop(key, None)
        merged[key] = value
    return merged.items()


def encode_value(value: str) -> str:
    """Percent-encode a value as a W3C baggage value."""
    return quote(value, safe=_SAFE, errors="replace")


def format_w3c(baggage: Mapping[str, str]) -> str:
    """One `baggage` header value; keys that are not tokens cannot be written and are skipped."""
    members = [(k, encode_value(v)) for k, v in baggage.items() if _TOKEN.fullmatch(k)]
    return ",".join(f"{k}={v}" for k, v in limits.bounded(members, _ascii_size))


def _ascii_size(key: str, value: str) -> int:
    return len(key) + 1 + len(value)


def extract_prefixed(carrier: Any, getter: Getter[Any] = HEADERS) -> dict[str, str]:
    """Baggage from `baggage-{key}` headers: lowercase keys, raw printable values."""
    found: list[tuple[str, str]] = []
    for key, raw in prefixed(carrier, getter, PREFIX, limits.MAX_MEMBERS):
        if not key or _TOKEN.fullmatch(key) is None or len(raw) > limits.MAX_MEMBER_BYTES:
            continue
        value = raw.strip(_OWS)
        if value == "" or _PRINTABLE.fullmatch(value) is not None:
            found.append((key, value))
    return dict(limits.bounded(found))


def extract(
    carrier: Any,
    getter: Getter[Any] = HEADERS,
    forms: Sequence[BaggageForm] = DEFAULT_READ,
) -> dict[str, str]:
    """Every form in `forms` merged, an earlier form winning a key, within the limits."""
    carrier, getter = indexed(carrier, getter)
    merged: dict[str, str] = {}
    folded: set[str] = set()
    for form in forms:
        if form is BaggageForm.W3C:
            w3c_values = getter.get(carrier, BAGGAGE)
            if w3c_values:
                _merge(merged, folded, parse_w3c(w3c_values), exact=True)
        elif form is BaggageForm.JAEGER:
            _merge(merged, folded, jaeger.extract_uberctx(carrier, getter))
            jaeger_baggage = getter.get(carrier, jaeger.JAEGER_BAGGAGE)
            if jaeger_baggage:
                _merge(merged, folded, jaeger.parse_jaeger_baggage(jaeger_baggage))
        elif form is BaggageForm.PREFIXED:
            _merge(merged, folded, extract_prefixed(carrier, getter))
    return dict(limits.bounded(merged.items())) if merged else merged


def _merge(
    merged: dict[str, str], folded: set[str], items: Mapping[str, str], *, exact: bool = False
) -> None:
    """Add the keys not yet present. Header-name forms lose case on the wire, so one of their
    keys is present when any earlier key matches it ignoring case; W3C keys compare exactly."""
    for key, value in items.items():
        if key in merged or (not exact and key.lower() in folded):
            continue
        merged[key] = value
        folded.add(key.lower())


def inject(
    baggage: Mapping[str, str],
    carrier: Any,
    setter: Setter[Any] = HEADERS,
    forms: Sequence[BaggageForm] = (BaggageForm.W3C,),
) -> None:
    """Write the baggage in each form; an empty baggage removes the `baggage` header."""
    if not baggage:  # the usual case, and only the W3C form has anything to say about it
        if BaggageForm.W3C in forms:
            setter.delete(carrier, BAGGAGE)
        return
    for form in forms:
        if form is BaggageForm.W3C:
            text = format_w3c(baggage)
            if text:
                setter.set(carrier, BAGGAGE, text)
            else:
                setter.delete(carrier, BAGGAGE)
        elif form is BaggageForm.JAEGER:
            jaeger.inject_uberctx(baggage, carrier, setter)
        elif form is BaggageForm.PREFIXED:
            inject_prefixed(baggage, carrier, setter)


def inject_prefixed(
    baggage: Mapping[str, str], carrier: Any, setter: Setter[Any] = HEADERS
) -> None:
    """`baggage-{key}` headers for items with token keys and printable ASCII values."""
    items = [
        (k.lower(), v)
        for k, v in baggage.items()
        if _TOKEN.fullmatch(k) and (v == "" or _PRINTABLE.fullmatch(v))
    ]
    for key, value in limits.bounded(items, _ascii_size, separator=0):
        setter.set(carrier, PREFIX + key, value)
