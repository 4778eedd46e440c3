"""Spans <-> Jaeger's Elasticsearch span documents (Jaeger v2.20's `dbmodel.Span`).

Writing follows Jaeger v2.20's `ToDBModel` field by field and in its order: 32-digit hex trace
ids, `parentSpanID`, `flags` (omitted when 0), µs `startTime` and `duration`, `startTimeMillis`,
typed tag values (`binary` as hex, arrays and maps as Go JSON text), the scope as
`otel.scope.name`/`version` tags, the kind as `span.kind`, status OK as `otel.status_code`, status
ERROR as `error: true`, the parent also as the first CHILD_OF reference, an event's name as its
log field `event`, the resource as the process, empty lists as `null`. With tags-as-fields the
chosen tags move to the `tag` object with `.` replaced (Jaeger's `splitElevatedTags`).
What Jaeger's document has no value for goes where Jaeger's template maps it: scope attributes
in `scopeTags`, link attributes, flags and trace state in `references[].tags/flags/traceState`.

Reading takes a document tracemesh wrote from its `otlp` field (exact); any other document is
read with Jaeger's meaning (`jaeger_read`).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import DecodeError as ProtoDecodeError
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from tracemesh.codecs.jaeger_json import go_json_text
from tracemesh.codecs.otlp_proto import (
    attributes_to_pb,
    resource_from_pb,
    scope_from_pb,
    span_from_pb,
)
from tracemesh.codecs.protowire import length_delimited
from tracemesh.model.attributes import AttrValue, float_to_text
from tracemesh.model.span import REF_TYPE_KEY, Resource, Scope, Span, SpanKind, StatusCode
from tracemesh.storage.elasticsearch.fidelity import nanos
from tracemesh.storage.elasticsearch.jaeger_read import NO_SERVICE_NAME, JaegerDocuments

JSON = dict[str, Any]


class TagFields:
    """Which tags go to the `tag` object (`--es.tags-as-fields.*`), with `.` replaced."""

    def __init__(self, every: bool = False, keys: Iterable[str] = (), dot: str = "@") -> None:
        self.every = every
        self.keys = frozenset(keys)
        self.dot = dot

    @property
    def active(self) -> bool:
        return self.every or bool(self.keys)

    def field(self, key: str) -> str:
        return key.replace(".", self.dot)

    def key(self, field: str) -> str:
        return field.replace(self.dot, ".")

    def split(self, tags: list[JSON]) -> tuple[list[JSON], JSON | None]:
        if not self.active:
            return tags, None
        nested: list[JSON] = []
        fields: JSON = {}
        for kv in tags:
            if kv["type"] != "binary" and (self.every or kv["key"] in self.keys):
                fields[self.field(kv["key"])] = kv["value"]
            else:
                nested.append(kv)
        return nested, fields or None


# ---- span -> document --------------------------------------------------------------------------


def key_value(key: str, value: AttrValue) -> JSON:
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    if isinstance(value, bool):  # before int: a bool is an int in Python
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        shown: object = value
        if not math.isfinite(value):
            shown = float_to_text(value)  # JSON has no NaN or infinities
        elif value == int(value) and abs(value) < 1e21:
            shown = int(value)  # Go writes 3.0 as 3: the indexed keyword is "3"
        return {"key": key, "type": "float64", "value": shown}
    if isinstance(value, bytes):
        return {"key": key, "type": "binary", "value": value.hex()}
    if value is None:
        return {"key": key, "type": "string", "value": ""}
    return {"key": key, "type": "string", "value": go_json_text(value)}


def span_tags(span: Span) -> list[JSON]:
    tags: list[JSON] = []
    if span.scope.name:
        tags.append(key_value("otel.scope.name", span.scope.name))
    if span.scope.version:
        tags.append(key_value("otel.scope.version", span.scope.version))
    tags.extend(key_value(k, v) for k, v in span.attributes.items())
    if span.kind is not SpanKind.UNSPECIFIED:
        tags.append(key_value("span.kind", span.kind.jaeger_name))
    if span.status.code is StatusCode.OK:
        tags.append(key_value("otel.status_code", "OK"))
    elif span.status.code is StatusCode.ERROR:
        tags.append(key_value("error", True))
    if span.status.message:
        tags.append(key_value("otel.status_description", span.status.message))
    if span.trace_state:
        tags.append(key_value("w3c.tracestate", span.trace_state))
    return tags


def references(span: Span, trace_hex: str, parent: str) -> list[JSON]:
    """The parent first as CHILD_OF (a link to that same parent only changes its type), then
    the links; a link's attributes, flags and trace state go where Jaeger's template maps them
    (`tags`, `flags`, `traceState`), which Jaeger's own writer leaves empty."""
    refs: list[JSON] = []
    if parent:
        refs.append({"refType": "CHILD_OF", "traceID": trace_hex, "spanID": parent})
    for link in span.links:
        ref_type = "CHILD_OF" if link.attributes.get(REF_TYPE_KEY) == "child_of" else "FOLLOWS_FROM"
        link_trace, link_span = _hex(link.trace_id, 16), _hex(link.span_id, 8)
        if parent and (link_trace, link_span) == (trace_hex, parent):
            refs[0]["refType"] = ref_type
            ref = refs[0]
        else:
            ref = {"refType": ref_type, "traceID": link_trace, "spanID": link_span}
            refs.append(ref)
        if link.trace_state:
            ref["traceState"] = link.trace_state
        if link.flags:
            ref["flags"] = link.flags
        tags = [key_value(k, v) for k, v in link.attributes.items() if k != REF_TYPE_KEY]
        if tags:
            ref["tags"] = tags
    return refs


def _hex(raw: bytes, size: int) -> str:
    return (raw if len(raw) == size else raw[-size:].rjust(size, b"\0")).hex()


def process(resource: Resource) -> JSON:
    attributes = resource.attributes
    if not attributes:
        return {"serviceName": NO_SERVICE_NAME, "tags": None}  # Go's nil slice
    name = attributes.get("service.name")
    tags = [key_value(k, v) for k, v in attributes.items() if k != "service.name"]
    return {"serviceName": name if isinstance(name, str) else "", "tags": tags}


def logs(span: Span) -> list[JSON]:
    out: list[JSON] = []
    for event in span.events:
        fields: list[JSON] = []
        if event.name and "event" not in event.attributes:
            fields.append(key_value("event", event.name))
        fields.extend(key_value(k, v) for k, v in event.attributes.items())
        out.append({"timestamp": event.time_ns // 1000, "fields": fields})
    return out


def span_document(
    span: Span, process_doc: JSON, tag_fields: TagFields, otlp: bytes | None = None
) -> JSON:
    """The document for `span`, field by field and in the order Jaeger's `dbmodel.Span` writes
    (empty lists as `null`, as Go writes nil slices); `process_doc` is `process(span.resource)`
    (shared per group). tracemesh's additions follow: scope attributes in `scopeTags`/`scopeTag`
    (mapped by Jaeger's template) and the exact span in `otlp`."""
    start_us = span.start_ns // 1000
    trace_hex = _hex(span.trace_id, 16)
    doc: JSON = {"traceID": trace_hex, "spanID": span.span_id.hex()}
    parent = _hex(span.parent_span_id, 8) if span.parent_span_id else ""
    if parent:
        doc["parentSpanID"] = parent
    if span.flags:
        doc["flags"] = span.flags
    doc["operationName"] = span.name
    doc["references"] = references(span, trace_hex, parent) or None
    doc["startTime"] = start_us
    doc["startTimeMillis"] = start_us // 1000
    doc["duration"] = max(span.end_ns - span.start_ns, 0) // 1000
    tags, fields = tag_fields.split(span_tags(span))
    doc["tags"] = tags if tags or tag_fields.active else None
    if fields is not None:
        doc["tag"] = fields
    doc["logs"] = logs(span) or None
    doc["process"] = process_doc
    if span.scope.attributes:
        scope_tags, scope_fields = tag_fields.split(
            [key_value(k, v) for k, v in span.scope.attributes.items()]
        )
        if scope_tags:
            doc["scopeTags"] = scope_tags
        if scope_fields is not None:
            doc["scopeTag"] = scope_fields
    if otlp is not None:
        doc["otlp"] = base64.b64encode(otlp).decode("ascii")
    else:
        parts = nanos(span)
        if parts is not None:
            doc["ns"] = parts
    return doc


def split_process(process_doc: JSON, tag_fields: TagFields) -> JSON:
    if not tag_fields.active:
        return process_doc
    tags, fields = tag_fields.split(process_doc["tags"] or [])
    split: JSON = {"serviceName": process_doc["serviceName"], "tags": tags}
    if fields is not None:
        split["tag"] = fields
    return split


class OtlpEnvelope:
    """The `otlp` field: one `ResourceSpans` holding the resource, the scope and the span bytes
    exactly as received. The resource and scope parts are encoded once per group."""

    def __init__(self, resource: Resource, scope: Scope) -> None:
        pb_resource = PbResource(dropped_attributes_count=resource.dropped_attributes_count)
        attributes_to_pb(resource.attributes, pb_resource.attributes)
        pb_scope = common_pb2.InstrumentationScope(
            name=scope.name,
            version=scope.version,
            dropped_attributes_count=scope.dropped_attributes_count,
        )
        attributes_to_pb(scope.attributes, pb_scope.attributes)
        self._head = length_delimited(1, pb_resource.SerializeToString())
        self._tail = (
            length_delimited(3, resource.schema_url.encode()) if resource.schema_url else b""
        )
        self._scope = length_delimited(1, pb_scope.SerializeToString())
        if scope.schema_url:
            self._scope += length_delimited(3, scope.schema_url.encode())

    def wrap(self, raw_span: bytes) -> bytes:
        scope_spans = self._scope + length_delimited(2, raw_span)
        return self._head + length_delimited(2, scope_spans) + self._tail


# ---- document -> span --------------------------------------------------------------------------


class Reader:
    """Decodes documents; equal resources and scopes become shared objects."""

    def __init__(self, tag_fields: TagFields) -> None:
        self.tag_fields = tag_fields
        self._resources: dict[bytes, Resource] = {}
        self._scopes: dict[bytes, Scope] = {}
        self._jaeger = JaegerDocuments(tag_fields.dot)

    def span(self, doc: JSON) -> Span:
        otlp = doc.get("otlp")
        if isinstance(otlp, str):
            try:
                return self._from_otlp(base64.b64decode(otlp))
            except (binascii.Error, ProtoDecodeError, ValueError, IndexError, RuntimeError):
                pass  # damaged: fall back to Jaeger's fields
        return self.jaeger_span(doc)

    def _from_otlp(self, data: bytes) -> Span:
        envelope = ResourceSpans.FromString(data)
        key = envelope.resource.SerializeToString(deterministic=True) + envelope.schema_url.encode()
        resource = self._resources.get(key)
        if resource is None:
            resource = self._resources[key] = resource_from_pb(
                envelope.resource, envelope.schema_url
            )
        scope_spans = envelope.scope_spans[0]
        scope_key = (
            scope_spans.scope.SerializeToString(deterministic=True)
            + b"\0"
            + (scope_spans.schema_url.encode())
        )
        scope = self._scopes.get(scope_key)
        if scope is None:
            scope = self._scopes[scope_key] = scope_from_pb(
                scope_spans.scope, scope_spans.schema_url
            )
        return span_from_pb(scope_spans.spans[0], resource, scope)

    def jaeger_span(self, doc: JSON) -> Span:
        """A document in Jaeger's shape only, read with Jaeger's meaning (`jaeger_read`), and
        the nanoseconds of tracemesh's `ns` field where it has one."""
        span = self._jaeger.span(doc)
        parts = doc.get("ns")
        if isinstance(parts, list) and len(parts) == 2 + len(span.events):
            try:
                start, end, *events = (int(p) for p in parts)
            except (TypeError, ValueError):
                return span
            if all(0 <= p < 2000 for p in parts if isinstance(p, int)):
                span.start_ns += start
                span.end_ns += end
                for event, extra in zip(span.events, events, strict=True):
                    event.time_ns += extra
        return span
