"""Spans <-> Jaeger's Elasticsearch span documents (Jaeger's `dbmodel.Span`).

Writing follows Jaeger v2's `ToDBModel`: 32-digit hex trace ids, µs `startTime` and `duration`,
`startTimeMillis`, typed tag values (`binary` as hex, arrays and maps as Go JSON text), the scope
as `otel.scope.name`/`version` tags, the kind as `span.kind`, status OK as `otel.status_code`,
status ERROR as `error: true`, the parent as the first CHILD_OF reference, an event's name as its
log field `event`, and the resource as the process. With tags-as-fields, the chosen tags move to
the `tag` object with `.` replaced (Jaeger's `splitElevatedTags`).

Reading takes a document tracemesh wrote from its `otlp` field (exact); any other document — one
Jaeger wrote, with 16- or 32-digit ids, string or typed values, nested or `tag` tags — is rebuilt
into Jaeger's api_v2 model and mapped the way OpenTelemetry's Jaeger translator maps it.
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

from tracemesh.codecs import DecodeError
from tracemesh.codecs.jaeger_json import go_json_text
from tracemesh.codecs.jaeger_proto import NO_SERVICE_NAME, spans_from_batch
from tracemesh.codecs.otlp_proto import (
    attributes_to_pb,
    resource_from_pb,
    scope_from_pb,
    span_from_pb,
)
from tracemesh.codecs.proto import jaeger_model_pb2 as pb
from tracemesh.codecs.protowire import length_delimited
from tracemesh.model.attributes import AttrValue, float_to_text
from tracemesh.model.span import REF_TYPE_KEY, Resource, Scope, Span, SpanKind, StatusCode

JSON = dict[str, Any]
_INT64 = range(-(2**63), 2**63)
_TYPES = {"string": pb.STRING, "bool": pb.BOOL, "int64": pb.INT64, "float64": pb.FLOAT64,
          "binary": pb.BINARY}  # fmt: skip


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


def references(span: Span) -> list[JSON]:
    """The parent first as CHILD_OF; a link to that same parent only changes its type."""
    trace_hex = _hex(span.trace_id, 16)
    refs: list[JSON] = []
    parent = _hex(span.parent_span_id, 8) if span.parent_span_id else ""
    if parent:
        refs.append({"refType": "CHILD_OF", "traceID": trace_hex, "spanID": parent})
    for link in span.links:
        ref_type = "CHILD_OF" if link.attributes.get(REF_TYPE_KEY) == "child_of" else "FOLLOWS_FROM"
        link_trace, link_span = _hex(link.trace_id, 16), _hex(link.span_id, 8)
        if parent and (link_trace, link_span) == (trace_hex, parent):
            refs[0]["refType"] = ref_type
            continue
        refs.append({"refType": ref_type, "traceID": link_trace, "spanID": link_span})
    return refs


def _hex(raw: bytes, size: int) -> str:
    return (raw if len(raw) == size else raw[-size:].rjust(size, b"\0")).hex()


def process(resource: Resource) -> JSON:
    attributes = resource.attributes
    if not attributes:
        return {"serviceName": NO_SERVICE_NAME, "tags": []}
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
    """The document for `span`; `process_doc` is `process(span.resource)` (shared per group)."""
    start_us = span.start_ns // 1000
    doc: JSON = {"traceID": span.trace_id.hex(), "spanID": span.span_id.hex()}
    if span.flags:
        doc["flags"] = span.flags
    doc["operationName"] = span.name
    doc["references"] = references(span)
    doc["startTime"] = start_us
    doc["startTimeMillis"] = start_us // 1000
    doc["duration"] = max(span.end_ns - span.start_ns, 0) // 1000
    tags, fields = tag_fields.split(span_tags(span))
    doc["tags"] = tags
    if fields is not None:
        doc["tag"] = fields
    doc["logs"] = logs(span)
    doc["process"] = process_doc
    extra = extra_tags(span)
    if extra:
        doc["extraTags"] = extra
    if otlp is not None:
        doc["otlp"] = base64.b64encode(otlp).decode("ascii")
    return doc


def extra_tags(span: Span) -> list[JSON]:
    """Scope and link attributes, which Jaeger's document has no place for: kept searchable in
    tracemesh's own `extraTags` field (Jaeger's readers ignore it)."""
    tags = [key_value(k, v) for k, v in span.scope.attributes.items()]
    for link in span.links:
        tags.extend(key_value(k, v) for k, v in link.attributes.items() if k != REF_TYPE_KEY)
    return tags


def split_process(process_doc: JSON, tag_fields: TagFields) -> JSON:
    tags, fields = tag_fields.split(process_doc["tags"])
    if fields is None:
        return process_doc
    return {"serviceName": process_doc["serviceName"], "tags": tags, "tag": fields}


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
        """A document in Jaeger's shape only, mapped as the Jaeger -> OTLP translator does."""
        try:
            jspan = pb.Span(
                trace_id=_id_bytes(doc["traceID"], 16),
                span_id=_id_bytes(doc["spanID"], 8),
                operation_name=str(doc.get("operationName") or ""),
            )
            jspan.start_time.FromMicroseconds(int(doc["startTime"]))
            jspan.duration.FromMicroseconds(int(doc.get("duration") or 0))
            for ref in doc.get("references") or ():
                jspan.references.append(pb.SpanRef(
                    trace_id=_id_bytes(ref["traceID"], 16),
                    span_id=_id_bytes(ref["spanID"], 8),
                    ref_type=pb.FOLLOWS_FROM if ref.get("refType") == "FOLLOWS_FROM"
                    else pb.CHILD_OF,
                ))  # fmt: skip
            parent = doc.get("parentSpanID")
            if parent and not jspan.references:  # Jaeger's deprecated field, on old documents
                jspan.references.append(pb.SpanRef(
                    trace_id=jspan.trace_id, span_id=_id_bytes(parent, 8), ref_type=pb.CHILD_OF
                ))  # fmt: skip
            jspan.tags.extend(self._tags(doc.get("tags"), doc.get("tag")))
            for log in doc.get("logs") or ():
                jlog = jspan.logs.add()
                jlog.timestamp.FromMicroseconds(int(log.get("timestamp") or 0))
                jlog.fields.extend(self._tags(log.get("fields"), None))
            proc = doc.get("process") or {}
            jspan.process.service_name = str(proc.get("serviceName") or "")
            jspan.process.tags.extend(self._tags(proc.get("tags"), proc.get("tag")))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise DecodeError(f"not a Jaeger span document: {exc!r}") from None
        decoded = spans_from_batch(pb.Batch(spans=[jspan]))
        if not decoded.spans:
            raise DecodeError(f"unusable Jaeger span document: {decoded.error}")
        span = decoded.spans[0]
        span.flags = int(doc.get("flags") or 0)
        return span

    def _tags(self, nested: object, fields: object) -> list[pb.KeyValue]:
        out = [_jaeger_tag(kv) for kv in nested or ()]  # type: ignore[attr-defined]
        if isinstance(fields, dict):
            out.extend(_field_tag(self.tag_fields.key(k), v) for k, v in fields.items())
        return out


def _id_bytes(text: object, size: int) -> bytes:
    """A hex id of up to `size` bytes, left-padded: Jaeger v1 wrote 64-bit trace ids in 16 digits
    (and before 1.16 without leading zeros)."""
    if not isinstance(text, str) or not text or len(text) > size * 2:
        raise ValueError(f"bad id {text!r}")
    return bytes.fromhex(text.rjust(size * 2, "0"))


def _jaeger_tag(kv: JSON) -> pb.KeyValue:
    key = str(kv.get("key", ""))
    kind = kv.get("type") or "string"
    value = kv.get("value")
    tag = pb.KeyValue(key=key)
    v_type = _TYPES.get(kind)
    try:
        if v_type == pb.BOOL:
            tag.v_bool = (
                value if isinstance(value, bool) else str(value).lower() in ("true", "1", "t")
            )
        elif v_type == pb.INT64:
            tag.v_int64 = int(value)  # type: ignore[arg-type]
        elif v_type == pb.FLOAT64:
            tag.v_float64 = float(value)  # type: ignore[arg-type]
        elif v_type == pb.BINARY:
            tag.v_binary = bytes.fromhex(str(value))
        elif v_type == pb.STRING:
            tag.v_str = value if isinstance(value, str) else "" if value is None else str(value)
        else:
            tag.v_str = f'<Unknown Jaeger TagType "{kind}">'
            v_type = pb.STRING
    except (TypeError, ValueError, OverflowError) as exc:  # Jaeger shows what it could not read
        tag.v_str = f"Can't convert the type {kind} for the key {key}: {exc}"
        v_type = pb.STRING
    tag.v_type = v_type if v_type is not None else pb.STRING
    return tag


def _field_tag(key: str, value: object) -> pb.KeyValue:
    """A `tag` object field: its JSON type is its tag type (Jaeger's `convertTagField`)."""
    if isinstance(value, bool):
        return pb.KeyValue(key=key, v_type=pb.BOOL, v_bool=value)
    if isinstance(value, int) and value in _INT64:
        return pb.KeyValue(key=key, v_type=pb.INT64, v_int64=value)
    if isinstance(value, float):
        return pb.KeyValue(key=key, v_type=pb.FLOAT64, v_float64=value)
    if isinstance(value, str):
        return pb.KeyValue(key=key, v_type=pb.STRING, v_str=value)
    return pb.KeyValue(key=key, v_type=pb.STRING, v_str=f"invalid tag type in {value!r}")
