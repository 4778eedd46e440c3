"""Trace search over stored spans with Jaeger's rule: one span must meet every filter at once.

Spans are tested cheapest first — origin (service, resource and scope tags, answered once per
origin and query), then the columns kept beside the raw bytes, then substring tests of the raw
OTLP bytes for each tag's key and value. Only spans passing all that are decoded.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Iterable, Iterator, Sequence

from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from tracemesh.codecs.otlp_proto import value_from_pb
from tracemesh.codecs.protowire import encode_varint
from tracemesh.model.attributes import AttrValue, float_to_text, value_to_text
from tracemesh.model.query import TraceQuery
from tracemesh.model.span import SpanKind, StatusCode
from tracemesh.storage.memory.store import Origin, TraceEntry

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ERROR_KEY = b"error"
_ERROR = int(StatusCode.ERROR)
_KIND_NAMES = {int(kind): kind.jaeger_name for kind in SpanKind}
_STATUS_NAMES = {int(code): code.name for code in StatusCode}
_TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # Go's strconv.ParseBool
_FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class TagTest:
    """`key=value` against the attributes of the span, its events, its links, its resource and its
    scope, every value compared in its text form (`value_to_text`)."""

    def __init__(self, key: str, value: str) -> None:
        self.key = key
        self.value = value
        # What a matching attribute must leave in `raw`, however its client encoded it: the key's
        # UTF-8 bytes, and the payload of one of the AnyValue forms whose text is `value`.
        self.key_bytes = key.encode()
        self.value_bytes = value_encodings(value)

    def on_origin(self, origin: Origin) -> bool | None:
        """True when the resource or scope settles it; None when the span itself must be looked at;
        False when no span of this origin can match."""
        if origin.resource_text().get(self.key) == self.value:
            return True
        if origin.scope_text().get(self.key) == self.value:
            return True
        return None

    def on_span(self, raw: bytes, kind: int, status: int) -> bool | None:
        """From the stored columns and raw bytes: False rules the span out, None means decode."""
        values = self.value_bytes
        if values is not None:
            for payload in values:  # usually the more selective test, so first
                if payload in raw:
                    break
            else:
                return False
        return None if self.key_bytes in raw else False

    def on_pb(self, span: PbSpan) -> bool:
        if _has(span.attributes, self.key, self.value):
            return True
        if any(_has(event.attributes, self.key, self.value) for event in span.events):
            return True
        return any(_has(link.attributes, self.key, self.value) for link in span.links)


class ResourceTagTest(TagTest):
    """`resource.<key>=value`: only the resource's attributes (Jaeger v2's memory store)."""

    def on_origin(self, origin: Origin) -> bool | None:
        return origin.resource_text().get(self.key) == self.value


class ErrorTest(TagTest):
    """`error=true|false` means `Span.is_error`: status ERROR, or an `error` span attribute that is
    true or "true"."""

    def __init__(self, wanted: bool) -> None:
        super().__init__("error", "true")
        self.wanted = wanted

    def on_origin(self, origin: Origin) -> bool | None:
        return None

    def on_span(self, raw: bytes, kind: int, status: int) -> bool | None:
        if status == _ERROR:
            return self.wanted
        if _ERROR_KEY not in raw:
            return not self.wanted
        return None

    def on_pb(self, span: PbSpan) -> bool:
        flagged = any(
            kv.key == "error" and _truthy(value_from_pb(kv.value)) for kv in span.attributes
        )
        return flagged == self.wanted


class KindTest(TagTest):
    """`span.kind=server`: the span's kind by its Jaeger name, or a literal attribute."""

    def on_span(self, raw: bytes, kind: int, status: int) -> bool | None:
        if self.value and _KIND_NAMES.get(kind) == self.value.lower():
            return True
        return super().on_span(raw, kind, status)


class StatusTest(TagTest):
    """`otel.status_code=ERROR` (or `span.status`): the status by name, or a literal attribute."""

    def on_span(self, raw: bytes, kind: int, status: int) -> bool | None:
        if _STATUS_NAMES.get(status) == self.value.upper():
            return True
        return super().on_span(raw, kind, status)


class ScopeFieldTest(TagTest):
    """`scope.name` / `scope.version` (and the `otel.scope.*` tags Jaeger shows), or a literal
    attribute."""

    def __init__(self, key: str, value: str, version: bool) -> None:
        super().__init__(key, value)
        self.version = version

    def on_origin(self, origin: Origin) -> bool | None:
        field = origin.scope.version if self.version else origin.scope.name
        return True if field == self.value else super().on_origin(origin)


def tag_test(key: str, value: str) -> TagTest:
    if key.startswith("resource."):
        return ResourceTagTest(key.removeprefix("resource."), value)
    if key == "error" and value in _TRUE_WORDS:
        return ErrorTest(True)
    if key == "error" and value in _FALSE_WORDS:
        return ErrorTest(False)
    if key == "span.kind":
        return KindTest(key, value)
    if key in ("otel.status_code", "span.status"):
        return StatusTest(key, value)
    if key in ("scope.name", "otel.scope.name", "otel.library.name"):
        return ScopeFieldTest(key, value, version=False)
    if key in ("scope.version", "otel.scope.version", "otel.library.version"):
        return ScopeFieldTest(key, value, version=True)
    return TagTest(key, value)


class TraceFilter:
    """A compiled `TraceQuery`; `matching` yields the entries of which one span meets it all."""

    def __init__(self, query: TraceQuery) -> None:
        self.query = query
        self.tests = [tag_test(key, value) for key, value in query.tags.items()]

    def matching(
        self, entries: Iterable[TraceEntry], origins: Sequence[Origin | None]
    ) -> Iterator[TraceEntry]:
        """Must run to its end (or be dropped) without the event loop turning in between, because
        origin numbers are only stable that long."""
        q = self.query
        service, operation = q.service, q.operation
        kind_wanted = None if q.span_kind is None else int(q.span_kind)
        start_min, start_max = q.start_min_ns, q.start_max_ns
        dur_min, dur_max = q.duration_min_ns, q.duration_max_ns
        # Per origin number: None when no span of it can match, else the tag tests left open.
        plans: dict[int, tuple[TagTest, ...] | None] = {}
        for entry in entries:
            if service and service not in entry.services:
                continue
            if start_min is not None and entry.max_start < start_min:
                continue
            if start_max is not None and entry.min_start > start_max:
                continue
            for raw, start, end, name, kind, status, number, _, _ in entry.spans:
                if number in plans:
                    plan = plans[number]
                else:
                    plan = plans[number] = self.plan(origins[number])
                if plan is None:
                    continue
                if operation and name != operation:
                    continue
                if kind_wanted is not None and kind != kind_wanted:
                    continue
                if start_min is not None and start < start_min:
                    continue
                if start_max is not None and start > start_max:
                    continue
                if dur_min is not None and end - start < dur_min:
                    continue
                if dur_max is not None and end - start > dur_max:
                    continue
                if not plan or tags_match(plan, raw, kind, status):
                    yield entry
                    break

    def plan(self, origin: Origin | None) -> tuple[TagTest, ...] | None:
        if origin is None:  # cannot happen for a stored span; be safe rather than crash a search
            return None
        if self.query.service and origin.service != self.query.service:
            return None
        open_tests: list[TagTest] = []
        for test in self.tests:
            verdict = test.on_origin(origin)
            if verdict is False:
                return None
            if verdict is None:
                open_tests.append(test)
        return tuple(open_tests)


def tags_match(tests: tuple[TagTest, ...], raw: bytes, kind: int, status: int) -> bool:
    undecided: list[TagTest] = []
    for test in tests:
        verdict = test.on_span(raw, kind, status)
        if verdict is False:
            return False
        if verdict is None:
            undecided.append(test)
    if not undecided:
        return True
    span = PbSpan.FromString(raw)
    return all(test.on_pb(span) for test in undecided)


def _truthy(flag: AttrValue) -> bool:
    return flag is True or flag == "true"  # as Span.is_error: an int 1 is not an error flag


def _has(pairs: Iterable[KeyValue], key: str, value: str) -> bool:
    return any(kv.key == key and value_to_text(value_from_pb(kv.value)) == value for kv in pairs)


# ---- the bytes a matching attribute value must leave in a serialized span ----------------------


def value_encodings(text: str) -> tuple[bytes, ...] | None:
    """Byte strings of which a serialized span holds at least one when it has an attribute whose
    text form is `text`: the string's UTF-8, a bool's, an int64's varint or a double's 8 bytes
    (each after its AnyValue field tag), the bytes behind canonical base64. None when no such set
    exists (arrays, kvlists, empty values, NaN).

    Only payloads and one-byte field tags are used, never length prefixes or field order, so any
    protobuf encoder's output qualifies (`raw` is a slice of what the client sent); the one
    assumption is that tags and integers are written as minimal varints, as every encoder does.
    """
    if not text or text[0] in "[{" or text in ("NaN", "+Inf", "-Inf"):
        return None
    encodings = [text.encode()]  # string_value
    if text in ("true", "false"):
        encodings.append(b"\x10\x01" if text == "true" else b"\x10\x00")  # bool_value
    integer = _parse_int(text)
    if integer is not None and _INT64_MIN <= integer <= _INT64_MAX:
        encodings.append(b"\x18" + encode_varint(integer & 0xFFFFFFFFFFFFFFFF))  # int_value
    number = _parse_float(text)
    if number is not None:
        encodings.append(b"\x21" + struct.pack("<d", number))  # double_value
        if number == 0:  # -0.0 prints as "0" too
            encodings.append(b"\x21" + struct.pack("<d", -number))
    decoded = _parse_base64(text)
    if decoded:
        encodings.append(decoded)  # bytes_value
    return tuple(encodings)


def _parse_int(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if str(value) == text else None  # int() also takes "+1", " 1", "1_0"


def _parse_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and float_to_text(value) == text else None


def _parse_base64(text: str) -> bytes | None:
    if len(text) % 4:
        return None
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if base64.b64encode(decoded).decode("ascii") == text else None
