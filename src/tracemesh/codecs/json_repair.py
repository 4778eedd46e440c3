"""JSON bodies with text that is not UTF-8 (or lone surrogate escapes), repaired span by span.

Run only after the strict parser refused a body: it is read again leniently (bad bytes kept as
surrogates), every bad string is replaced as Jaeger does (a span name by `INVALID_NAME`, an
attribute key by a generated name, an OTLP string value by the same bytes as `bytesValue`, any
other text with U+FFFD), each span gets what was changed as warnings, and the document is handed
back for the strict decoder to read as usual.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from tracemesh.codecs import DecodeError
from tracemesh.codecs.utf8_repair import INVALID_NAME, KEY_PREFIX
from tracemesh.model.span_warnings import WARNINGS_ATTRIBUTE

Warn = Callable[[dict[str, Any], list[str]], None]


def lenient_load(data: bytes) -> Any:
    """The document with invalid UTF-8 bytes as surrogates; DecodeError if it is not JSON."""
    try:
        return json.loads(data.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None


def is_bad(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def raw_bytes(text: str) -> bytes:
    """The client's bytes back: surrogateescape'd bytes as they came, lone escapes as U+FFFD."""
    return text.encode("utf-8", "surrogateescape") if _escaped_only(text) else _fixed(text).encode()


def _escaped_only(text: str) -> bool:
    return all(not "\ud800" <= c <= "\udc7f" and not "\udd00" <= c <= "\udfff" for c in text)


def _fixed(text: str) -> str:
    return text.encode("utf-8", "surrogateescape" if _escaped_only(text) else "replace").decode(
        "utf-8", "replace"
    )


class Cleaner:
    """Cleans one document; `keys` numbers generated attribute keys across it."""

    def __init__(self) -> None:
        self.keys = 0
        self.spans = 0  # spans that got warnings

    def key(self) -> str:
        self.keys += 1
        return f"{KEY_PREFIX}{self.keys}"

    def clean(self, value: Any, warnings: list[str]) -> Any:
        """`value` with every bad string replaced (attribute-aware), warnings appended."""
        if isinstance(value, str):
            if is_bad(value):
                warnings.append("a string was not valid UTF-8; invalid bytes replaced by U+FFFD")
                return _fixed(value)
            return value
        if isinstance(value, list):
            return [self.clean(item, warnings) for item in value]
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for name, item in value.items():
            if is_bad(name):  # a Zipkin v2 tag name (elsewhere an unknown field, ignored)
                key = self.key()
                out[key] = self.clean(item, warnings)
                warnings.append(f"an attribute key was not valid UTF-8; renamed {key!r}")
            elif name == "key" and isinstance(item, str) and is_bad(item):
                key = out[name] = self.key()
                warnings.append(f"an attribute key was not valid UTF-8; renamed {key!r}")
            elif name in ("stringValue", "string_value") and isinstance(item, str) and is_bad(item):
                out["bytesValue"] = base64.b64encode(raw_bytes(item)).decode("ascii")
                warnings.append("an attribute value was not valid UTF-8; stored as bytes")
            else:
                out[name] = self.clean(item, warnings)
        return out

    def span(self, doc: Any, inherited: list[str], warn: Warn, name_key: str = "name") -> Any:
        """A span object cleaned, its bad name replaced, its warnings written by `warn`."""
        if not isinstance(doc, dict):
            return doc
        warnings = list(inherited)
        name = doc.get(name_key)
        if isinstance(name, str) and is_bad(name):
            doc = {**doc, name_key: INVALID_NAME}
            warnings.append(f"the span name was not valid UTF-8; replaced by {INVALID_NAME!r}")
        doc = self.clean(doc, warnings)
        if warnings:
            self.spans += 1
            warn(doc, warnings)
        return doc


def otlp_warn(span: dict[str, Any], warnings: list[str]) -> None:
    values = [{"stringValue": text} for text in warnings]
    attribute = {"key": WARNINGS_ATTRIBUTE, "value": {"arrayValue": {"values": values}}}
    span["attributes"] = [*(span.get("attributes") or []), attribute]


def repair_otlp(doc: Any) -> tuple[Any, int]:
    """An OTLP/JSON request cleaned; (document, spans that carry warnings)."""
    cleaner = Cleaner()
    if not isinstance(doc, dict):
        return doc, 0
    out = cleaner.clean({k: v for k, v in doc.items() if k not in _SPANS_KEYS}, [])
    for key in _SPANS_KEYS & doc.keys():
        groups = doc[key]
        out[key] = (
            [_resource_spans(item, cleaner) for item in groups]
            if isinstance(groups, list)
            else groups
        )
    return out, cleaner.spans


_SPANS_KEYS = frozenset({"resourceSpans", "resource_spans"})


def _resource_spans(doc: Any, cleaner: Cleaner) -> Any:
    if not isinstance(doc, dict):
        return doc
    found: list[str] = []
    scope_keys = {"scopeSpans", "scope_spans"}
    out = cleaner.clean({k: v for k, v in doc.items() if k not in scope_keys}, found)
    found = [f"resource: {text}" for text in found]
    for key in scope_keys & doc.keys():
        groups = doc[key]
        out[key] = (
            [_scope_spans(item, found, cleaner) for item in groups]
            if isinstance(groups, list)
            else groups
        )
    return out


def _scope_spans(doc: Any, inherited: list[str], cleaner: Cleaner) -> Any:
    if not isinstance(doc, dict):
        return doc
    found: list[str] = []
    out = cleaner.clean({k: v for k, v in doc.items() if k != "spans"}, found)
    found = inherited + [f"scope: {text}" for text in found]
    spans = doc.get("spans")
    if isinstance(spans, list):
        out["spans"] = [cleaner.span(span, found, otlp_warn) for span in spans]
    elif "spans" in doc:
        out["spans"] = spans
    return out


def jaeger_warn(span: dict[str, Any], warnings: list[str]) -> None:
    span["warnings"] = [*(span.get("warnings") or []), *warnings]


def repair_jaeger(doc: Any) -> tuple[Any, int]:
    """One Jaeger api_v2 JSON span cleaned; (document, 1 if it carries warnings)."""
    cleaner = Cleaner()
    return cleaner.span(doc, [], jaeger_warn, "operationName"), cleaner.spans


def zipkin_warn(span: dict[str, Any], warnings: list[str]) -> None:
    """Zipkin tags are strings: the warnings as one tag, a line each (see `pop_warnings`)."""
    if "binaryAnnotations" in span and "tags" not in span:  # v1
        note = {"key": WARNINGS_ATTRIBUTE, "value": "\n".join(warnings)}
        span["binaryAnnotations"] = [*(span.get("binaryAnnotations") or []), note]
        return
    tags = span.get("tags")
    span["tags"] = {
        **(tags if isinstance(tags, dict) else {}),
        WARNINGS_ATTRIBUTE: "\n".join(warnings),
    }


def repair_zipkin(doc: Any) -> tuple[Any, int]:
    """A Zipkin v1 or v2 JSON list cleaned; (document, spans that carry warnings)."""
    cleaner = Cleaner()
    if not isinstance(doc, list):
        return cleaner.clean(doc, []), 0
    return [cleaner.span(span, [], zipkin_warn) for span in doc], cleaner.spans
