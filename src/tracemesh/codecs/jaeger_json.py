"""Model spans -> the Jaeger UI's JSON trace model (`/api/traces` payloads), exactly as Jaeger
renders them.

Spans go through the same steps as in Jaeger v2: OpenTelemetry's `traces_to_jaegerproto`
translator (tags in the order scope name/version, attributes, `span.kind`, `otel.status_code`,
`error`, `otel.status_description`, `w3c.tracestate`; the parent as the first `CHILD_OF`
reference, then one reference per link; the event name as the log field `event`), then Jaeger's
`FromDomain` (µs times, hex ids, typed tag values with unsafe JavaScript integers as strings,
processes keyed `p1`, `p2`... in order of first appearance, `[]` rather than `null` for lists).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence
from typing import TypeAlias

import orjson

from tracemesh.model.attributes import AttrValue, float_to_text, to_json_compatible
from tracemesh.model.dependency import DependencyLink
from tracemesh.model.ids import span_id_to_hex, trace_id_to_hex
from tracemesh.model.span import Event, RefType, Span, SpanKind, StatusCode

JSON: TypeAlias = dict[str, object]
JS_MAX_SAFE_INTEGER = 2**53 - 1
SAMPLED_FLAG = 1  # Jaeger's flag bit; OTLP keeps the W3C sampled bit in the low bit of `flags`
_STATUS_TAG = {StatusCode.OK: "OK", StatusCode.ERROR: "ERROR"}
# Go's encoding/json escapes these inside strings; the translator renders arrays/maps with it.
_GO_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028"}
_GO_JSON_ESCAPES["\u2029"] = "\\u2029"
_GO_ESCAPE_TABLE = str.maketrans(_GO_JSON_ESCAPES)


def key_value(key: str, value: AttrValue) -> JSON:
    """One Jaeger tag: `{"key", "type", "value"}`."""
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    if isinstance(value, bool):  # before int: bool is an int in Python
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        safe = -JS_MAX_SAFE_INTEGER <= value <= JS_MAX_SAFE_INTEGER
        return {"key": key, "type": "int64", "value": value if safe else str(value)}
    if isinstance(value, float):
        # Go's JSON encoder cannot write NaN or infinities; show them as text instead of failing.
        shown: object = value if math.isfinite(value) else float_to_text(value)
        return {"key": key, "type": "float64", "value": shown}
    if isinstance(value, bytes):
        return {"key": key, "type": "binary", "value": base64.b64encode(value).decode("ascii")}
    if value is None:  # an empty AnyValue: the translator leaves the tag's value unset
        return {"key": key, "type": "string", "value": ""}
    return {"key": key, "type": "string", "value": go_json_text(value)}


def go_json_text(value: AttrValue) -> str:
    """Arrays and kvlists as the translator writes them: Go JSON, map keys sorted, HTML-escaped."""
    text = orjson.dumps(to_json_compatible(value), option=orjson.OPT_SORT_KEYS).decode()
    return text.translate(_GO_ESCAPE_TABLE)


def span_tags(span: Span) -> list[JSON]:
    tags: list[JSON] = []
    if span.scope.name:
        tags.append(key_value("otel.scope.name", span.scope.name))
    if span.scope.version:
        tags.append(key_value("otel.scope.version", span.scope.version))
    tags.extend(key_value(k, v) for k, v in span.attributes.items())
    if span.kind is not SpanKind.UNSPECIFIED:
        tags.append(key_value("span.kind", span.kind.jaeger_name))
    status = _STATUS_TAG.get(span.status.code)
    if status:
        tags.append(key_value("otel.status_code", status))
    if span.status.code is StatusCode.ERROR:
        tags.append(key_value("error", True))
    if span.status.message:
        tags.append(key_value("otel.status_description", span.status.message))
    if span.trace_state:
        tags.append(key_value("w3c.tracestate", span.trace_state))
    return tags


def span_references(span: Span) -> list[JSON]:
    """The parent first as CHILD_OF; a link to that same parent only changes its type."""
    refs: list[JSON] = []
    if span.parent_span_id:
        refs.append(_reference(RefType.CHILD_OF, span.trace_id, span.parent_span_id))
    for link in span.links:
        if span.parent_span_id and (link.trace_id, link.span_id) == (
            span.trace_id,
            span.parent_span_id,
        ):
            refs[0]["refType"] = link.ref_type.value
            continue
        refs.append(_reference(link.ref_type, link.trace_id, link.span_id))
    return refs


def _reference(ref_type: RefType, trace_id: bytes, span_id: bytes) -> JSON:
    return {
        "refType": ref_type.value,
        "traceID": _trace_hex(trace_id),
        "spanID": span_id_to_hex(span_id),
    }


def _trace_hex(trace_id: bytes) -> str:
    """Jaeger's TraceID.String(), tolerating malformed link ids (those are shown zero-padded)."""
    if len(trace_id) != 16:
        trace_id = trace_id[-16:].rjust(16, b"\0")
    return trace_id_to_hex(trace_id)


def log_json(event: Event) -> JSON:
    """An event as a log; its name becomes the field `event` unless an attribute already is."""
    fields: list[JSON] = []
    if event.name and "event" not in event.attributes:
        fields.append(key_value("event", event.name))
    fields.extend(key_value(k, v) for k, v in event.attributes.items())
    return {"timestamp": event.time_ns // 1000, "fields": fields}


def process_json(span: Span) -> JSON:
    """The span's resource as a Jaeger process: `service.name` is the service, the rest tags."""
    attributes = span.resource.attributes
    tags = [key_value(k, v) for k, v in attributes.items() if k != "service.name"]
    return {"serviceName": span.service_name, "tags": tags}


def span_json(span: Span, process_id: str) -> JSON:
    out: JSON = {"traceID": _trace_hex(span.trace_id), "spanID": span_id_to_hex(span.span_id)}
    if span.flags & SAMPLED_FLAG:
        out["flags"] = SAMPLED_FLAG
    out["operationName"] = span.name
    out["references"] = span_references(span)
    out["startTime"] = span.start_ns // 1000
    out["duration"] = max(span.end_ns - span.start_ns, 0) // 1000
    out["tags"] = span_tags(span)
    out["logs"] = [log_json(event) for event in span.events]
    out["processID"] = process_id
    out["warnings"] = list(span.warnings) or None
    return out


def trace_json(spans: Sequence[Span], warnings: Sequence[str] = ()) -> JSON:
    """One trace (spans of one trace id, in the order given) as the UI's Trace object."""
    process_ids: dict[tuple[object, ...], str] = {}
    processes: JSON = {}
    out_spans: list[JSON] = []
    for span in spans:
        process = process_json(span)
        identity = _process_identity(process)
        process_id = process_ids.get(identity)
        if process_id is None:
            process_id = process_ids[identity] = f"p{len(process_ids) + 1}"
            processes[process_id] = process
        out_spans.append(span_json(span, process_id))
    return {
        "traceID": _trace_hex(spans[0].trace_id) if spans else "",
        "spans": out_spans,
        "processes": processes,
        "warnings": list(warnings) or None,
    }


def _process_identity(process: JSON) -> tuple[object, ...]:
    tags = process["tags"]
    assert isinstance(tags, list)
    return (process["serviceName"], *((t["key"], t["type"], repr(t["value"])) for t in tags))


def traces_json(traces: Iterable[Sequence[Span]]) -> list[JSON]:
    return [trace_json(spans) for spans in traces if spans]


def group_by_trace(spans: Iterable[Span]) -> list[list[Span]]:
    """Split spans into traces, in order of each trace's first span (as `/api/transform` does)."""
    traces: dict[bytes, list[Span]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    return list(traces.values())


def dependencies_json(links: Iterable[DependencyLink]) -> list[JSON]:
    return [{"parent": d.parent, "child": d.child, "callCount": d.call_count} for d in links]
