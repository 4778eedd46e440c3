"""`x-request-id`: keep a sane incoming value, else make a UUID4; read and set Envoy's trace bits.

A sane value is 1-200 printable ASCII characters without spaces or commas (a UUID is 36; Heroku
allows up to 200); anything else (empty, control characters, non-ASCII, longer) is dropped and
replaced, as Envoy replaces a missing one. The first of repeated headers is used.

Envoy packs its trace decision into the UUID's version digit (index 14) when the value is an
exact 36-character UUID: `4` none yet, `9` sampled, `a` forced by the service
(`x-envoy-force-trace`), `b` forced by the client (`x-client-trace-id`). Its sampling draw is the
first 8 hex digits modulo 10000. Both helpers are here so the sidecar can decide as Envoy does.
"""

from __future__ import annotations

import re
from enum import StrEnum
from random import getrandbits
from typing import Any

from tracemesh.propagation.carrier import HEADERS, Getter, Setter

REQUEST_ID = "x-request-id"
MAX_LENGTH = 200

_SANE = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,200}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class TraceReason(StrEnum):
    """Envoy's trace reason, the character at index 14 of a UUID request id."""

    NONE = "4"
    SAMPLED = "9"
    SERVICE_FORCED = "a"
    CLIENT_FORCED = "b"


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


_REASONS = {**{r.value: r for r in TraceReason}, **{r.value.upper(): r for r in TraceReason}}


def new_request_id() -> str:
    """A random UUID4 as text, as `str(uuid.uuid4())` gives, at a fraction of its cost (from
    `random.getrandbits`, like span ids: a request id must be unique, not unguessable)."""
    h = f"{getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def sanitize(value: str | None) -> str | None:
    """The value trimmed of optional whitespace when sane, else None."""
    if value is None or len(value) > MAX_LENGTH + 16:
        return None
    value = value.strip(" \t")
    return value if _SANE.fullmatch(value) else None


def extract(carrier: Any, getter: Getter[Any] = HEADERS) -> str | None:
    """The sane incoming request id, or None."""
    values = getter.get(carrier, REQUEST_ID)
    return sanitize(values[0]) if values else None


def ensure(carrier: Any, getter: Getter[Any] = HEADERS) -> str:
    """The incoming request id when sane, else a new UUID4 (the carrier is not changed)."""
    return extract(carrier, getter) or new_request_id()


def inject(request_id: str, carrier: Any, setter: Setter[Any] = HEADERS) -> None:
    setter.set(carrier, REQUEST_ID, request_id)


def trace_reason(request_id: str) -> TraceReason | None:
    """Envoy's trace reason in a UUID request id; None when not a UUID or not a known reason."""
    if len(request_id) != 36 or _UUID.fullmatch(request_id) is None:
        return None
    return _REASONS.get(request_id[14])


def with_trace_reason(request_id: str, reason: TraceReason) -> str:
    """The request id with its trace reason set; a non-UUID value is returned unchanged."""
    if len(request_id) != 36 or _UUID.fullmatch(request_id) is None:
        return request_id
    return request_id[:14] + reason.value + request_id[15:]


def sampling_draw(request_id: str) -> int | None:
    """Envoy's random number for sampling: the first 8 hex digits modulo 10000, or None."""
    head = request_id[:8]
    return int(head, 16) % 10000 if _HEX8.fullmatch(head) else None
