"""Span documents without tracemesh's `otlp` field, read with the meaning Jaeger v2 gives them.

The rules are those of Jaeger v2's Elasticsearch reader (`FromDBModel`), which differ from
OpenTelemetry's Jaeger translator in places that show in the UI:

* status: an `error` tag that is the boolean true (removed), else `otel.status_code` (removed),
  else the new `http.response.status_code` (4xx is an error except on server spans, 5xx always);
  `http.status_code` alone is an ordinary tag and makes no error;
* the kind comes from the `span.kind` tag (removed); the scope from `otel.scope.name` /
  `otel.scope.version` tags holding strings (removed; the version only with a name);
* the parent is `parentSpanID`, else the first CHILD_OF reference in the span's own trace, else
  the first FOLLOWS_FROM one there; every other reference becomes a link with
  `opentracing.ref_type`;
* `tag` / `process.tag` object fields join the nested tags, typed by their JSON type.

Fields Jaeger's template maps but its v2.20 writer leaves empty (`scopeTags`/`scopeTag`, and on
references `tags`, `flags`, `traceState`) are read too: tracemesh writes scope and link
attributes there.
"""

from __future__ import annotations

from typing import Any

from tracemesh.codecs import DecodeError
from tracemesh.model.attributes import AttrValue
from tracemesh.model.span import (
    REF_TYPE_KEY,
    Event,
    Link,
    Resource,
    Scope,
    Span,
    SpanKind,
    Status,
    StatusCode,
)

JSON = dict[str, Any]
NO_SERVICE_NAME = "OTLPResourceNoServiceName"
_INT64 = range(-(2**63), 2**63)
_MAX_US = (2**64 - 1) // 1000  # OTLP times are fixed64 nanoseconds
_KINDS = {"client": SpanKind.CLIENT, "server": SpanKind.SERVER, "producer": SpanKind.PRODUCER,
          "consumer": SpanKind.CONSUMER, "internal": SpanKind.INTERNAL}  # fmt: skip
_TRUE_WORDS = {"1", "t", "T", "TRUE", "true", "True"}  # Go's strconv.ParseBool
_FALSE_WORDS = {"0", "f", "F", "FALSE", "false", "False"}


def tag_value(kv: JSON) -> AttrValue:
    """One nested `{key, type, value}` tag as an attribute value, as Jaeger converts it: a
    value it cannot convert becomes a string saying why."""
    kind = kv.get("type")
    value = kv.get("value")
    key = kv.get("key")
    if not isinstance(value, str):
        if kind == "int64" and isinstance(value, int | float) and not isinstance(value, bool):
            return int(value) if int(value) in _INT64 else f"invalid int64 type in {value}"
        if kind == "float64" and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind == "bool" and isinstance(value, bool):
            return value
        return f"invalid {kind or ''} type in {value}"
    try:
        if kind == "string":
            return value
        if kind == "bool":
            if value in _TRUE_WORDS:
                return True
            if value in _FALSE_WORDS:
                return False
            raise ValueError(f'parsing "{value}": invalid syntax')
        if kind == "int64":
            number = int(value, 10)
            if number not in _INT64:
                raise ValueError(f'parsing "{value}": value out of range')
            return number
        if kind == "float64":
            return float(value)
        if kind == "binary":
            return bytes.fromhex(value)
    except ValueError as exc:
        return f"Can't convert the type {kind} for the key {key}: {exc}"
    return f'<Unknown Jaeger TagType "{kind or ""}">'


def field_value(value: object) -> AttrValue:
    """A `tag` object field: its JSON type is its tag type."""
    if isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        return value if value in _INT64 else float(value)
    return f"invalid tag type in {value}"


def merged_tags(nested: object, fields: object, dot: str) -> list[tuple[str, AttrValue]]:
    """Nested tags, then the `tag` object's fields (`dot` turned back into `.`)."""
    out: list[tuple[str, AttrValue]] = []
    if isinstance(nested, list):
        for kv in nested:
            if isinstance(kv, dict):
                out.append((str(kv.get("key", "")), tag_value(kv)))
    if isinstance(fields, dict):
        for name, value in fields.items():
            out.append((str(name).replace(dot, "."), field_value(value)))
    return out


def _status(attrs: dict[str, AttrValue], kind: SpanKind) -> Status:
    code: StatusCode | None = None
    message = ""
    if attrs.get("error") is True:
        del attrs["error"]
        code = StatusCode.ERROR
        if "otel.status_description" in attrs:
            message = _text(attrs.pop("otel.status_description"))
        else:
            message = _text(attrs.get("http.status_message", ""))
    if "otel.status_code" in attrs:
        word = _text(attrs.pop("otel.status_code")).upper()
        if code is None:
            code = {"OK": StatusCode.OK, "ERROR": StatusCode.ERROR}.get(word, StatusCode.UNSET)
            if "otel.status_description" in attrs:
                message = _text(attrs.pop("otel.status_description"))
    elif code is None and "http.response.status_code" in attrs:
        http = _http_code(attrs["http.response.status_code"])
        if http is not None:
            if 400 <= http < 500:
                http_status = StatusCode.UNSET if kind is SpanKind.SERVER else StatusCode.ERROR
            else:
                http_status = StatusCode.UNSET if 100 <= http < 399 else StatusCode.ERROR
            if http_status is not StatusCode.UNSET:
                code = http_status
            message = _text(attrs.get("http.status_message", ""))
    if code is None:
        return Status()
    return Status(code, message)


def _http_code(value: AttrValue) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 10)
        except ValueError:
            return None
    return None


def _text(value: AttrValue) -> str:
    """pcommon's Str(): the string, or empty for any other type."""
    return value if isinstance(value, str) else ""


def _id(text: object, size: int) -> bytes:
    """A hex id of up to `size` bytes, left-padded: Jaeger v1 wrote 64-bit trace ids in 16
    digits (and before 1.16 without leading zeros)."""
    if not isinstance(text, str) or not text or len(text) > size * 2:
        raise ValueError(f"bad id {text!r}")
    return bytes.fromhex(text.rjust(size * 2, "0"))


def _parent(doc: JSON, trace_text: str) -> str:
    parent = doc.get("parentSpanID")
    if isinstance(parent, str) and parent:
        return parent
    follows = ""
    for ref in doc.get("references") or ():
        if ref.get("traceID") != trace_text:
            continue
        if ref.get("refType") == "CHILD_OF":
            return str(ref.get("spanID") or "")
        if not follows and ref.get("refType") == "FOLLOWS_FROM":
            follows = str(ref.get("spanID") or "")
    return follows


class JaegerDocuments:
    """Decodes Jaeger-shaped span documents; equal processes become one shared Resource."""

    def __init__(self, dot: str = "@") -> None:
        self.dot = dot
        self._resources: dict[tuple[object, ...], Resource] = {}

    def span(self, doc: JSON) -> Span:
        try:
            return self._span(doc)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise DecodeError(f"not a Jaeger span document: {exc!r}") from None

    def _span(self, doc: JSON) -> Span:
        trace_text = doc["traceID"]
        trace_id = _id(trace_text, 16)
        start_us = int(doc["startTime"])
        duration_us = int(doc.get("duration") or 0)
        span_id = _id(doc["spanID"], 8)
        # what no model span can hold is refused, as the Jaeger decoders refuse it
        if not any(trace_id) or not any(span_id):
            raise ValueError("an all-zero trace or span id")
        if start_us <= 0 or duration_us < 0 or start_us + duration_us > _MAX_US:
            raise ValueError(f"times out of range: start {start_us} µs, duration {duration_us} µs")
        attrs = dict(merged_tags(doc.get("tags"), doc.get("tag"), self.dot))
        scope = self._scope(doc, attrs)
        kind = SpanKind.UNSPECIFIED
        if "span.kind" in attrs:
            kind = _KINDS.get(_text(attrs.pop("span.kind")), SpanKind.UNSPECIFIED)
        status = _status(attrs, kind)
        trace_state = _text(attrs.pop("w3c.tracestate", ""))
        parent = _parent(doc, trace_text)
        return Span(
            trace_id=trace_id,
            span_id=span_id,
            name=str(doc.get("operationName") or ""),
            start_ns=start_us * 1000,
            end_ns=(start_us + duration_us) * 1000,
            parent_span_id=_id(parent, 8) if parent else b"",
            kind=kind,
            attributes=attrs,
            events=[self._event(log) for log in doc.get("logs") or ()],
            links=self._links(doc.get("references") or (), parent),
            status=status,
            trace_state=trace_state,
            flags=int(doc.get("flags") or 0),
            resource=self._resource(doc.get("process") or {}),
            scope=scope,
        )

    def _scope(self, doc: JSON, attrs: dict[str, AttrValue]) -> Scope:
        name = attrs.get("otel.scope.name")
        version = attrs.get("otel.scope.version")
        scope = Scope()
        if isinstance(name, str):
            del attrs["otel.scope.name"]
            scope.name = name
            if isinstance(version, str):
                del attrs["otel.scope.version"]
                scope.version = version
        scope.attributes = dict(merged_tags(doc.get("scopeTags"), doc.get("scopeTag"), self.dot))
        return scope

    def _event(self, log: JSON) -> Event:
        attrs = dict(merged_tags(log.get("fields"), None, self.dot))
        name = attrs.get("event")
        if isinstance(name, str):
            del attrs["event"]
        time_us = int(log.get("timestamp") or 0)
        if not 0 <= time_us <= _MAX_US:
            raise ValueError(f"log timestamp out of range: {time_us} µs")
        return Event(time_us * 1000, name if isinstance(name, str) else "", attrs)

    def _links(self, refs: Any, parent: str) -> list[Link]:
        links: list[Link] = []
        for ref in refs:
            child_of = ref.get("refType") == "CHILD_OF"
            if child_of and ref.get("spanID") == parent:
                continue
            attrs = dict(merged_tags(ref.get("tags"), None, self.dot))
            attrs[REF_TYPE_KEY] = "child_of" if child_of else "follows_from"
            links.append(Link(
                _id(ref["traceID"], 16), _id(ref["spanID"], 8),
                str(ref.get("traceState") or ""), attrs, flags=int(ref.get("flags") or 0),
            ))  # fmt: skip
        return links

    def _resource(self, proc: JSON) -> Resource:
        name = proc.get("serviceName") or ""
        tags = merged_tags(proc.get("tags"), proc.get("tag"), self.dot)
        key = (name, *(f"{k}\0{v!r}" for k, v in tags))
        resource = self._resources.get(key)
        if resource is None:
            attrs: dict[str, AttrValue] = {}
            if isinstance(name, str) and name and name != NO_SERVICE_NAME:
                attrs["service.name"] = name
            attrs.update(tags)
            resource = self._resources[key] = Resource(attrs)
        return resource
