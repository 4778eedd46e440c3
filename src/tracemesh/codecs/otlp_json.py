"""OTLP JSON (the protobuf JSON mapping with hex ids) <-> OTLP protobuf and model.

Parsed with orjson and mapped by hand: protobuf's `json_format` is 30-100x slower. Per the OTLP
spec, ids are hex, enums are integers, 64-bit integers may be strings or numbers, and unknown
fields are ignored. Both lowerCamelCase and the original snake_case names are accepted.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tracemesh.codecs import DecodeError
from tracemesh.codecs.json_repair import lenient_load, repair_otlp
from tracemesh.codecs.otlp_proto import spans_from_request
from tracemesh.model.attributes import Attributes, AttrValue
from tracemesh.model.span import Span

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def request_from_json(data: bytes) -> ExportTraceServiceRequest:
    """Decode an OTLP/JSON `ExportTraceServiceRequest` (or `TracesData`, same shape)."""
    return decode_json(data)[0]


def decode_json(data: bytes) -> tuple[ExportTraceServiceRequest, int]:
    """The request, and how many spans had text that was not UTF-8 (repaired, with warnings:
    see `json_repair`) rather than refusing the whole request for it."""
    repaired = 0
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            doc, repaired = repair_otlp(lenient_load(data))
        except DecodeError:
            raise DecodeError(f"invalid JSON: {exc}") from None
    return _request(doc), repaired


def _request(doc: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for i, rs_doc in enumerate(_list(_obj(doc, "body"), "resourceSpans", "resource_spans")):
        where = f"resourceSpans[{i}]"
        rs_doc = _obj(rs_doc, where)
        rs = request.resource_spans.add()
        rs.schema_url = _str(rs_doc, "schemaUrl", "schema_url")
        resource = _get(rs_doc, "resource")
        if resource is not None:
            resource = _obj(resource, where + ".resource")
            rs.resource.SetInParent()
            _attributes(resource, rs.resource.attributes, where + ".resource")
            rs.resource.dropped_attributes_count = _uint(
                resource, 32, "droppedAttributesCount", "dropped_attributes_count"
            )
        for j, ss_doc in enumerate(_list(rs_doc, "scopeSpans", "scope_spans")):
            swhere = f"{where}.scopeSpans[{j}]"
            ss_doc = _obj(ss_doc, swhere)
            ss = rs.scope_spans.add()
            ss.schema_url = _str(ss_doc, "schemaUrl", "schema_url")
            scope = _get(ss_doc, "scope")
            if scope is not None:
                scope = _obj(scope, swhere + ".scope")
                ss.scope.SetInParent()
                ss.scope.name = _str(scope, "name")
                ss.scope.version = _str(scope, "version")
                _attributes(scope, ss.scope.attributes, swhere + ".scope")
                ss.scope.dropped_attributes_count = _uint(
                    scope, 32, "droppedAttributesCount", "dropped_attributes_count"
                )
            for k, span_doc in enumerate(_list(ss_doc, "spans")):
                _span(
                    _obj(span_doc, f"{swhere}.spans[{k}]"), ss.spans.add(), f"{swhere}.spans[{k}]"
                )
    return request


def spans_from_json(data: bytes) -> list[Span]:
    return spans_from_request(request_from_json(data))


def _span(doc: dict[str, Any], span: trace_pb2.Span, where: str) -> None:
    span.trace_id = _hex_id(doc, where, "traceId", "trace_id")
    span.span_id = _hex_id(doc, where, "spanId", "span_id")
    span.parent_span_id = _hex_id(doc, where, "parentSpanId", "parent_span_id")
    span.trace_state = _str(doc, "traceState", "trace_state")
    span.flags = _uint(doc, 32, "flags")
    span.name = _str(doc, "name")
    span.kind = _enum(doc, trace_pb2.Span.SpanKind, "kind")  # type: ignore[assignment]
    span.start_time_unix_nano = _uint(doc, 64, "startTimeUnixNano", "start_time_unix_nano")
    span.end_time_unix_nano = _uint(doc, 64, "endTimeUnixNano", "end_time_unix_nano")
    _attributes(doc, span.attributes, where)
    span.dropped_attributes_count = _uint(
        doc, 32, "droppedAttributesCount", "dropped_attributes_count"
    )
    for i, ev_doc in enumerate(_list(doc, "events")):
        ev_doc = _obj(ev_doc, f"{where}.events[{i}]")
        event = span.events.add()
        event.time_unix_nano = _uint(ev_doc, 64, "timeUnixNano", "time_unix_nano")
        event.name = _str(ev_doc, "name")
        _attributes(ev_doc, event.attributes, f"{where}.events[{i}]")
        event.dropped_attributes_count = _uint(
            ev_doc, 32, "droppedAttributesCount", "dropped_attributes_count"
        )
    span.dropped_events_count = _uint(doc, 32, "droppedEventsCount", "dropped_events_count")
    for i, lk_doc in enumerate(_list(doc, "links")):
        lwhere = f"{where}.links[{i}]"
        lk_doc = _obj(lk_doc, lwhere)
        link = span.links.add()
        link.trace_id = _hex_id(lk_doc, lwhere, "traceId", "trace_id")
        link.span_id = _hex_id(lk_doc, lwhere, "spanId", "span_id")
        link.trace_state = _str(lk_doc, "traceState", "trace_state")
        _attributes(lk_doc, link.attributes, lwhere)
        link.dropped_attributes_count = _uint(
            lk_doc, 32, "droppedAttributesCount", "dropped_attributes_count"
        )
        link.flags = _uint(lk_doc, 32, "flags")
    span.dropped_links_count = _uint(doc, 32, "droppedLinksCount", "dropped_links_count")
    status = _get(doc, "status")
    if status is not None:
        status = _obj(status, where + ".status")
        span.status.message = _str(status, "message")
        span.status.code = _enum(status, trace_pb2.Status.StatusCode, "code")  # type: ignore[assignment]


# ---- field readers: each raises DecodeError naming the field --------------------------------


def _get(doc: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in doc:
            return doc[name]
    return None


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DecodeError(f"{where} must be a JSON object")
    return value


def _list(doc: dict[str, Any], *names: str) -> list[Any]:
    value = _get(doc, *names)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"{names[0]} must be a JSON array")
    return value


def _str(doc: dict[str, Any], *names: str) -> str:
    value = _get(doc, *names)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DecodeError(f"{names[0]} must be a string")
    return value


def _int_value(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise DecodeError(f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise DecodeError(f"{name} must be an integer, got {str(value)[:40]!r}")


def _uint(doc: dict[str, Any], bits: int, *names: str) -> int:
    value = _get(doc, *names)
    if value is None:
        return 0
    number = _int_value(value, names[0])
    if not 0 <= number < 2**bits:
        raise DecodeError(f"{names[0]} out of range: {number}")
    return number


def _enum(doc: dict[str, Any], enum: Any, name: str) -> int:
    value = _get(doc, name)
    if value is None:
        return 0
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        try:
            return int(enum.Value(value))
        except ValueError:
            raise DecodeError(f"{name} has an unknown value {value[:40]!r}") from None
    number = _int_value(value, name)
    if not -(2**31) <= number < 2**31:
        raise DecodeError(f"{name} out of range: {number}")
    return number


def _hex_id(doc: dict[str, Any], where: str, *names: str) -> bytes:
    value = _str(doc, *names)
    if not value:
        return b""
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise DecodeError(f"{where}.{names[0]} must be hex, got {value[:40]!r}") from None


def _attributes(doc: dict[str, Any], out: Any, where: str) -> None:
    for i, kv in enumerate(_list(doc, "attributes", "values")):
        kv = _obj(kv, f"{where}.attributes[{i}]")
        item = out.add()
        item.key = _str(kv, "key")
        value = _get(kv, "value")
        if value is not None:
            _any_value(_obj(value, f"{where}.attributes[{i}].value"), item.value, where)


def _any_value(doc: dict[str, Any], out: common_pb2.AnyValue, where: str) -> None:
    if "stringValue" in doc or "string_value" in doc:
        out.string_value = _str(doc, "stringValue", "string_value")
    elif "boolValue" in doc or "bool_value" in doc:
        value = _get(doc, "boolValue", "bool_value")
        if not isinstance(value, bool):
            raise DecodeError(f"{where}: boolValue must be true or false")
        out.bool_value = value
    elif "intValue" in doc or "int_value" in doc:
        number = _int_value(_get(doc, "intValue", "int_value"), "intValue")
        if not _INT64_MIN <= number < 2**63:
            raise DecodeError(f"{where}: intValue out of int64 range")
        out.int_value = number
    elif "doubleValue" in doc or "double_value" in doc:
        value = _get(doc, "doubleValue", "double_value")
        if isinstance(value, str) and value in _FLOAT_WORDS:
            out.double_value = _FLOAT_WORDS[value]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.double_value = float(value)
        else:
            raise DecodeError(f"{where}: doubleValue must be a number")
    elif "bytesValue" in doc or "bytes_value" in doc:
        try:
            out.bytes_value = base64.b64decode(
                _str(doc, "bytesValue", "bytes_value"), validate=True
            )
        except (binascii.Error, ValueError):
            raise DecodeError(f"{where}: bytesValue must be base64") from None
    elif "arrayValue" in doc or "array_value" in doc:
        array = _obj(_get(doc, "arrayValue", "array_value"), where + ".arrayValue")
        out.array_value.SetInParent()
        for item in _list(array, "values"):
            _any_value(_obj(item, where), out.array_value.values.add(), where)
    elif "kvlistValue" in doc or "kvlist_value" in doc:
        kvlist = _obj(_get(doc, "kvlistValue", "kvlist_value"), where + ".kvlistValue")
        out.kvlist_value.SetInParent()
        _attributes(kvlist, out.kvlist_value.values, where)


# ---- model -> OTLP JSON ------------------------------------------------------------------------


def value_json(value: AttrValue) -> dict[str, object]:
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {
            "doubleValue": "NaN"
            if math.isnan(value)
            else ("Infinity" if value > 0 else "-Infinity")
        }
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return {"arrayValue": {"values": [value_json(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": attributes_json(value)}}
    return {}


def attributes_json(attributes: Attributes) -> list[dict[str, object]]:
    return [{"key": k, "value": value_json(v)} for k, v in attributes.items()]


def _put(out: dict[str, object], key: str, value: object) -> None:
    """protojson omits fields at their default value; so do we."""
    if value:
        out[key] = value


def span_json(span: Span) -> dict[str, object]:
    out: dict[str, object] = {"traceId": span.trace_id.hex(), "spanId": span.span_id.hex()}
    _put(out, "traceState", span.trace_state)
    _put(out, "parentSpanId", span.parent_span_id.hex())
    _put(out, "flags", span.flags)
    out["name"] = span.name
    _put(out, "kind", int(span.kind))
    out["startTimeUnixNano"] = str(span.start_ns)
    out["endTimeUnixNano"] = str(span.end_ns)
    _put(out, "attributes", attributes_json(span.attributes))
    _put(out, "droppedAttributesCount", span.dropped_attributes_count)
    events = []
    for ev in span.events:
        e: dict[str, object] = {"timeUnixNano": str(ev.time_ns)}
        _put(e, "name", ev.name)
        _put(e, "attributes", attributes_json(ev.attributes))
        _put(e, "droppedAttributesCount", ev.dropped_attributes_count)
        events.append(e)
    _put(out, "events", events)
    _put(out, "droppedEventsCount", span.dropped_events_count)
    links = []
    for lk in span.links:
        link: dict[str, object] = {"traceId": lk.trace_id.hex(), "spanId": lk.span_id.hex()}
        _put(link, "traceState", lk.trace_state)
        _put(link, "attributes", attributes_json(lk.attributes))
        _put(link, "droppedAttributesCount", lk.dropped_attributes_count)
        _put(link, "flags", lk.flags)
        links.append(link)
    _put(out, "links", links)
    _put(out, "droppedLinksCount", span.dropped_links_count)
    status: dict[str, object] = {}
    _put(status, "message", span.status.message)
    _put(status, "code", int(span.status.code))
    out["status"] = status
    return out


def traces_data_json(spans: Sequence[Span]) -> dict[str, object]:
    """`TracesData` JSON: a resourceSpans entry per distinct resource, a scopeSpans per scope."""
    resource_spans: list[dict[str, object]] = []
    by_resource: dict[int, dict[str, object]] = {}
    by_scope: dict[tuple[int, int], list[dict[str, object]]] = {}
    for span in spans:
        rs = by_resource.get(id(span.resource))
        if rs is None:
            resource: dict[str, object] = {"attributes": attributes_json(span.resource.attributes)}
            _put(resource, "droppedAttributesCount", span.resource.dropped_attributes_count)
            rs = by_resource[id(span.resource)] = {"resource": resource, "scopeSpans": []}
            _put(rs, "schemaUrl", span.resource.schema_url)
            resource_spans.append(rs)
        key = (id(span.resource), id(span.scope))
        span_list = by_scope.get(key)
        if span_list is None:
            scope: dict[str, object] = {}
            _put(scope, "name", span.scope.name)
            _put(scope, "version", span.scope.version)
            _put(scope, "attributes", attributes_json(span.scope.attributes))
            _put(scope, "droppedAttributesCount", span.scope.dropped_attributes_count)
            span_list = by_scope[key] = []
            ss: dict[str, object] = {"scope": scope, "spans": span_list}
            _put(ss, "schemaUrl", span.scope.schema_url)
            scope_spans = rs["scopeSpans"]
            assert isinstance(scope_spans, list)
            scope_spans.append(ss)
        span_list.append(span_json(span))
    return {"resourceSpans": resource_spans}
