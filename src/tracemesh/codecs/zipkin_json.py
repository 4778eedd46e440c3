"""Zipkin JSON <-> canonical spans: v2 (`/api/v2/spans`) both ways, v1 (`/api/v1/spans`) decoding.

Parsed with orjson and checked by hand as strictly as Zipkin's Go model (zipkin-go) reads it, so
that a request the OpenTelemetry Collector refuses is refused here too: ids must be hex (1-32
digits for a trace, 1-16 for a span, not all zero), times non-negative integers in µs, tags
strings, addresses valid IPs. Any bad span fails the whole request with a message naming it.
The v2 fields then map onto the model in `zipkin_model`.

v2 decoding has a C fast path (`tracemesh.accel._zipkin_json`, its per-span mapping ~10x faster):
it maps the parsed list straight to the rows `RowBuilder` would make, byte for byte, and declines
(returns None) any request it does not fully understand, which then takes the Python path below;
that path stays the reference, and the only one that reports errors.

v1 spans are first cut into v2 spans, the way Zipkin's own `V1SpanConverter` does: the core
annotations `cs`/`cr` make a CLIENT half, `sr`/`ss` a SERVER half (both, for an RPC one host
reported whole: two spans sharing the id, split at query time like any shared span), `ms`/`mr`
PRODUCER/CONSUMER; each half's local endpoint is that of its annotations. Binary annotations
`sa`/`ca`/`ma` are the remote endpoint of the client/server/messaging half, `lc` becomes the
`component` tag (and names the service of a local span); other binary annotations are string tags
and other annotations events, each on the half whose service reported it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from tracemesh.accel import load
from tracemesh.codecs import DecodeError
from tracemesh.codecs.json_repair import lenient_load, repair_zipkin
from tracemesh.codecs.otlp_proto import span_from_row
from tracemesh.codecs.zipkin_model import (
    _SPECIAL_KEYS,
    KIND_NAMES,
    KINDS,
    LIBRARY_NAME,
    LIBRARY_VERSION,
    LINK_PREFIX,
    MAX_TIME_NS,
    RESOURCE_KEYS,
    START_TIME_ABSENT,
    STATUS_CODE,
    STATUS_DESCRIPTION,
    TRACE_STATE,
    Endpoint,
    RowBuilder,
    checked_ipv4,
    checked_ipv6,
    checked_port,
    parse_ids,
)
from tracemesh.model.attributes import Attributes, float_to_text, to_json_compatible, value_to_text
from tracemesh.model.batch import ResourceGroup, SpanBatch, SpanRow
from tracemesh.model.ids import span_id_to_hex, trace_id_to_hex
from tracemesh.model.span import Event, Resource, Scope, Span, SpanKind, Status, StatusCode

_UINT64_MAX = 2**64 - 1
EndpointCache = dict[tuple[object, ...], Endpoint]
_NO_ENDPOINT = Endpoint()
_STATUS_NAMES = {StatusCode.OK: "Ok", StatusCode.ERROR: "Error"}
_fromhex = bytes.fromhex
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)


def encode_spans(spans: Sequence[Span]) -> bytes:
    """Spans as a Zipkin v2 JSON list (what an OpenTelemetry Zipkin exporter would send)."""
    return orjson.dumps([span_to_zipkin(span) for span in spans])


def batch_from_json_v2(data: bytes) -> SpanBatch:
    """Decode a Zipkin v2 JSON list of spans into storage rows; DecodeError names a bad span."""
    docs, repaired = _load_list(data)
    fast = _fast_v2(docs)
    if fast is not None:
        return SpanBatch(fast[0], repaired)
    return _build(docs, repaired, add=_add_v2).batch()


def spans_from_json_v2(data: bytes) -> list[Span]:
    docs, _ = _load_list(data)
    fast = _fast_v2(docs)
    if fast is None:
        return _build(docs, add=_add_v2).spans()
    groups, order = fast
    rows = [iter(group.rows) for group in groups]  # each group's rows are in input order
    return [span_from_row(next(rows[i]).raw, groups[i].resource, groups[i].scope) for i in order]


def batch_from_json_v1(data: bytes) -> SpanBatch:
    """Decode a Zipkin v1 JSON list (one v1 span may give a client and a server span)."""
    return _decode(data, _add_v1).batch()


def spans_from_json_v1(data: bytes) -> list[Span]:
    return _decode(data, _add_v1).spans()


_Adder = Callable[[object, RowBuilder, EndpointCache], None]


def _decode(data: bytes, add: _Adder) -> RowBuilder:
    return _build(*_load_list(data), add=add)


def _build(docs: list[Any], repaired: int = 0, *, add: _Adder) -> RowBuilder:
    builder = RowBuilder()
    builder.repaired = repaired
    endpoints: EndpointCache = {}
    for i, doc in enumerate(docs):
        try:
            add(doc, builder, endpoints)
        except DecodeError as exc:
            raise DecodeError(f"span {i}: {exc}") from None
    return builder


def _load_list(data: bytes) -> tuple[list[Any], int]:
    """The spans, and how many had text that was not UTF-8 (repaired: see `json_repair`)."""
    repaired = 0
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            doc, repaired = repair_zipkin(lenient_load(data))
        except DecodeError:
            raise DecodeError(f"invalid JSON: {exc}") from None
    if not isinstance(doc, list):
        raise DecodeError(f"expected a JSON list of spans, got {_type_name(doc)}")
    return doc, repaired


# ---- v2 fast path -----------------------------------------------------------------------------

_ACCEL = load("_zipkin_json")
_FastGroups = tuple[list[ResourceGroup], list[int]]


def _fast_v2(docs: list[Any]) -> _FastGroups | None:
    """The C accelerator's rows, grouped as `RowBuilder` groups them; None when it is not built or
    declines the request. It returns each group's `RowBuilder` resource and scope keys, from which
    the same (shared) `Resource` and `Scope` objects are made here, and each span's group index."""
    if _ACCEL is None:
        return None
    result: tuple[list[tuple[tuple[Any, ...], tuple[str, str], list[SpanRow]]], list[int]] | None
    result = _ACCEL.rows_from_v2(docs, SpanRow, _SPECIAL_KEYS, RESOURCE_KEYS)
    if result is None:
        return None
    keyed, order = result
    resources: dict[tuple[Any, ...], Resource] = {}
    scopes: dict[tuple[str, str], Scope] = {}
    groups = []
    for resource_key, scope_key, rows in keyed:
        resource = resources.get(resource_key)
        if resource is None:
            resource = resources[resource_key] = _resource_from_key(resource_key)
        scope = scopes.get(scope_key)
        if scope is None:
            scope = scopes[scope_key] = Scope(*scope_key)
        groups.append(ResourceGroup(resource, scope, rows))
    return groups, order


def _resource_from_key(key: tuple[Any, ...]) -> Resource:
    """`RowBuilder._resource`'s resource for its key: (service,) or (service, source, *moved)."""
    service: str = key[0]
    attributes: Attributes = {}
    if service:
        source: str = key[1] if len(key) > 1 else ""
        attributes[source or "service.name"] = service
        attributes.update(key[2:])
    return Resource(attributes)


# ---- field readers: absent and null are the same, a wrong type is an error -----------------------


def _type_name(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "null")


def _object(value: object, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise DecodeError(f"{what} must be a JSON object, got {_type_name(value)}")
    return value


def _str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if type(value) is str:
        return value
    if value is None:
        return ""
    raise DecodeError(f"{key} must be a string, got {_type_name(value)}")


def _required_str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if type(value) is not str or not value:
        raise DecodeError(f"{key} is required: a hex string, got {_type_name(value)}")
    return value


def _uint(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if type(value) is int and 0 <= value <= _UINT64_MAX:
        return value
    if value is None:
        return 0
    raise DecodeError(f"{key} must be a non-negative integer (µs), got {str(value)[:40]}")


def _bool(doc: dict[str, Any], key: str) -> bool:
    value = doc.get(key)
    if value is None or type(value) is bool:
        return bool(value)
    raise DecodeError(f"{key} must be a boolean, got {_type_name(value)}")


def _endpoint(value: object, what: str, cache: EndpointCache) -> Endpoint | None:
    """A checked endpoint (None when absent or empty); a batch's few distinct ones are cached."""
    if value is None:
        return None
    doc = _object(value, what)
    port = doc.get("port")
    key = (doc.get("serviceName"), doc.get("ipv4"), doc.get("ipv6"), port, type(port))
    try:
        endpoint = cache.get(key)
    except TypeError:  # an unhashable (so wrong) type: the checks below say which field
        endpoint = None
    if endpoint is None:
        try:
            ipv4, ipv6 = _str(doc, "ipv4"), _str(doc, "ipv6")
            if port is not None and type(port) is not int:
                raise DecodeError(f"port must be an integer, got {_type_name(port)}")
            endpoint = Endpoint(
                _str(doc, "serviceName"),
                checked_ipv4(ipv4) if ipv4 else "",
                checked_ipv6(ipv6) if ipv6 else "",
                checked_port(port or 0),
            )
        except DecodeError as exc:
            raise DecodeError(f"{what}: {exc}") from None
        cache[key] = endpoint
    return None if endpoint == _NO_ENDPOINT else endpoint


def _annotation(value: object) -> tuple[int, str, dict[str, Any]]:
    doc = _object(value, "an annotation")
    text = doc.get("value")
    if type(text) is not str:
        raise DecodeError(f"annotation value must be a string, got {_type_name(text)}")
    timestamp = _uint(doc, "timestamp")
    if timestamp * 1000 > MAX_TIME_NS:  # OTLP keeps event times as fixed64 nanoseconds
        raise DecodeError(f"annotation timestamp {timestamp} is beyond the year 2554")
    return timestamp, text, doc


def _list(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if type(value) is not list:
        raise DecodeError(f"{key} must be a list, got {_type_name(value)}")
    return value


# ---- v2 ------------------------------------------------------------------------------------------


def _add_v2(value: object, builder: RowBuilder, endpoints: EndpointCache) -> None:
    """Check one v2 span and add it. Every field is read once with an inline check for the usual
    type; anything else goes through the field readers, which accept null or explain the error."""
    doc = _object(value, "a span")
    get = doc.get
    trace_hex, span_hex, parent_hex = get("traceId"), get("id"), get("parentId")
    if type(trace_hex) is not str or type(span_hex) is not str or type(parent_hex) is not str:
        trace_hex = _required_str(doc, "traceId")
        span_hex = _required_str(doc, "id")
        parent_hex = _str(doc, "parentId")
    # The usual case inline: full-length ids (exact hex lengths also rule out the whitespace
    # bytes.fromhex skips). Anything else, errors included, goes to `parse_ids`.
    try:
        trace_id, span_id = _fromhex(trace_hex), _fromhex(span_hex)
        parent_id = _fromhex(parent_hex) if parent_hex else b""
    except ValueError:
        trace_id = b""
    if not (
        len(trace_hex) == 32 and len(trace_id) == 16 and trace_id != _ZERO_TRACE
        and len(span_hex) == 16 and len(span_id) == 8 and span_id != _ZERO_SPAN
        and (not parent_hex or (len(parent_hex) == 16 and len(parent_id) == 8))
    ):  # fmt: skip
        trace_id, span_id, parent_id = parse_ids(trace_hex, span_hex, parent_hex)
    elif parent_id == _ZERO_SPAN:
        parent_id = b""
    name = get("name")
    if type(name) is not str:
        name = _str(doc, "name")
    kind_name = get("kind")
    kind = KINDS.get(kind_name) if type(kind_name) is str else None
    if kind is None:
        kind_name = _str(doc, "kind")
        kind = KINDS.get(kind_name.upper(), SpanKind.UNSPECIFIED)
    timestamp, duration = get("timestamp"), get("duration")
    if type(timestamp) is not int or not 0 <= timestamp <= _UINT64_MAX:
        timestamp = _uint(doc, "timestamp")
    if type(duration) is not int or not 0 <= duration <= _UINT64_MAX:
        duration = _uint(doc, "duration")
    local, remote = get("localEndpoint"), get("remoteEndpoint")
    if local is not None:
        local = _endpoint(local, "localEndpoint", endpoints)
    if remote is not None:
        remote = _endpoint(remote, "remoteEndpoint", endpoints)
    annotations = get("annotations")
    if annotations:
        annotations = [_annotation(item)[:2] for item in _list(doc, "annotations")]
    elif annotations is not None:
        _list(doc, "annotations")
    tags = get("tags")
    if tags is None:
        tags = {}
    else:
        for tag_value in _object(tags, "tags").values():
            if type(tag_value) is not str:
                raise DecodeError(f"tag values must be strings, got {_type_name(tag_value)}")
    debug, shared = get("debug"), get("shared")
    if (debug is not None and type(debug) is not bool) or (
        shared is not None and type(shared) is not bool
    ):
        _bool(doc, "debug")
        _bool(doc, "shared")
    builder.add(
        trace_id, span_id, parent_id, name, kind, timestamp, duration, local, remote,
        annotations or (), tags,
    )  # fmt: skip


# ---- v1 ------------------------------------------------------------------------------------------

_CORE_KINDS = {
    "cs": SpanKind.CLIENT,
    "cr": SpanKind.CLIENT,
    "sr": SpanKind.SERVER,
    "ss": SpanKind.SERVER,
    "ms": SpanKind.PRODUCER,
    "mr": SpanKind.CONSUMER,
}
_ADDRESS_KINDS = {
    "sa": (SpanKind.CLIENT,),
    "ca": (SpanKind.SERVER,),
    "ma": (SpanKind.PRODUCER, SpanKind.CONSUMER),
}


@dataclass(slots=True)
class _Half:
    """One v2 span cut out of a v1 span."""

    kind: SpanKind
    local: Endpoint | None
    timestamp: int = 0
    duration: int = 0
    remote: Endpoint | None = None
    annotations: list[tuple[int, str]] = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)


def _binary_value(doc: dict[str, Any]) -> str:
    value = doc.get("value")
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return float_to_text(value)
    raise DecodeError(f"binary annotation value must be a string, number or boolean, got "
                      f"{_type_name(value)}")  # fmt: skip


def _half(kind: SpanKind, first: dict[str, tuple[int, Endpoint | None]], begin: str,
          finish: str) -> _Half:  # fmt: skip
    start, start_endpoint = first.get(begin, (0, None))
    end, end_endpoint = first.get(finish, (0, None))
    half = _Half(kind, start_endpoint or end_endpoint, start)
    if start and end >= start:
        half.duration = end - start
    return half


def _halves(
    annotations: list[tuple[int, str, Endpoint | None]],
    binary: list[tuple[str, str, Endpoint | None]],
) -> list[_Half]:
    """The v2 spans of one v1 span, client first; always at least one."""
    first: dict[str, tuple[int, Endpoint | None]] = {}
    for timestamp, value, endpoint in annotations:
        if value in _CORE_KINDS and value not in first:
            first[value] = (timestamp, endpoint)
    halves = []
    if "cs" in first or "cr" in first:
        halves.append(_half(SpanKind.CLIENT, first, "cs", "cr"))
    if "sr" in first or "ss" in first:
        halves.append(_half(SpanKind.SERVER, first, "sr", "ss"))
    if not halves and ("ms" in first or "mr" in first):
        halves.append(_half(_CORE_KINDS["ms" if "ms" in first else "mr"], first, "ms", "mr"))
    if not halves:  # a local span: its service is that of `lc`, else of any annotation
        local = next((ep for key, _, ep in binary if key == "lc" and ep), None)
        local = local or next((ep for _, _, ep in annotations if ep), None)
        local = local or next((ep for _, _, ep in binary if ep and ep.service_name), None)
        halves.append(_Half(SpanKind.UNSPECIFIED, local))
    return halves


def _owner(halves: list[_Half], endpoint: Endpoint | None) -> _Half:
    """The half whose service reported an annotation: same service name, else the first half."""
    if endpoint is not None and len(halves) > 1:
        for half in halves:
            if half.local is not None and half.local.service_name == endpoint.service_name:
                return half
    return halves[0]


def _add_v1(value: object, builder: RowBuilder, endpoints: EndpointCache) -> None:
    doc = _object(value, "a span")
    trace_id, span_id, parent_id = parse_ids(
        _required_str(doc, "traceId"), _required_str(doc, "id"), _str(doc, "parentId")
    )
    name = _str(doc, "name")
    timestamp, duration = _uint(doc, "timestamp"), _uint(doc, "duration")
    _bool(doc, "debug")
    annotations = []
    for item in _list(doc, "annotations"):
        time_us, text, item_doc = _annotation(item)
        endpoint = _endpoint(item_doc.get("endpoint"), "annotation endpoint", endpoints)
        annotations.append((time_us, text, endpoint))
    binary = []
    for item in _list(doc, "binaryAnnotations"):
        item_doc = _object(item, "a binary annotation")
        key = _str(item_doc, "key")
        endpoint = _endpoint(item_doc.get("endpoint"), "binary annotation endpoint", endpoints)
        binary.append((key, _binary_value(item_doc), endpoint))
    halves = _halves(annotations, binary)
    if timestamp:  # the span's own times are authoritative, and are the client's when both
        halves[0].timestamp = timestamp
        halves[0].duration = duration or halves[0].duration
    for time_us, text, endpoint in annotations:
        if text and text not in _CORE_KINDS:
            _owner(halves, endpoint).annotations.append((time_us, text))
    for key, text, endpoint in binary:
        if key in _ADDRESS_KINDS:  # the peer of its side; of a local span, the only peer
            kinds = _ADDRESS_KINDS[key]
            local_span = halves[0].kind is SpanKind.UNSPECIFIED
            target = next((h for h in halves if h.kind in kinds or local_span), None)
            if target is not None:
                target.remote = target.remote or endpoint
        elif key:
            _owner(halves, endpoint).tags["component" if key == "lc" else key] = text
    for half in halves:
        builder.add(trace_id, span_id, parent_id, name, half.kind, half.timestamp, half.duration,
                    half.local, half.remote, half.annotations, half.tags)  # fmt: skip


# ---- model -> v2 -------------------------------------------------------------------------------

Json = dict[str, Any]


def _endpoint_json(service: str, ip: str, port: str) -> Json | None:
    out: Json = {}
    if service:
        out["serviceName"] = service
    if ip:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            address = None
        if address is not None:
            out["ipv6" if address.version == 6 else "ipv4"] = str(address)
    if port.isdigit() and 0 < int(port) <= 0xFFFF:
        out["port"] = int(port)
    return out or None


def span_to_zipkin(span: Span) -> Json:
    """A Zipkin v2 span (JSON shape: hex ids, µs times, string tags) for `span`."""
    tags = {k: value_to_text(v) for k, v in span.resource.attributes.items()}
    service = tags.pop("service.name", "")
    if span.scope.name:
        tags[LIBRARY_NAME] = span.scope.name
    if span.scope.version:
        tags[LIBRARY_VERSION] = span.scope.version
    tags.update((k, value_to_text(v)) for k, v in span.attributes.items())
    absent = tags.pop(START_TIME_ABSENT, "") == "true"
    out: Json = {"traceId": trace_id_to_hex(span.trace_id), "id": span_id_to_hex(span.span_id)}
    if span.parent_span_id:
        out["parentId"] = span_id_to_hex(span.parent_span_id)
    out["name"] = span.name
    if span.kind in KIND_NAMES:
        out["kind"] = KIND_NAMES[span.kind]
    elif span.kind is SpanKind.INTERNAL:
        tags["span.kind"] = "internal"
    if span.start_ns and not absent:
        out["timestamp"] = (span.start_ns + 500) // 1000
    if span.end_ns > span.start_ns:
        out["duration"] = max((span.end_ns - span.start_ns + 500) // 1000, 1)
    local = _endpoint_json(service, tags.pop("net.host.ip", ""), tags.pop("net.host.port", ""))
    remote = _endpoint_json(
        tags.pop("peer.service", ""), tags.pop("net.peer.ip", ""), tags.pop("net.peer.port", "")
    )
    if local:
        out["localEndpoint"] = local
    if remote:
        out["remoteEndpoint"] = remote
    if span.events:
        out["annotations"] = [_annotation_json(e) for e in span.events]
    _status_tags(span.status, tags)
    if span.trace_state:
        tags[TRACE_STATE] = span.trace_state
    for i, link in enumerate(span.links):
        attributes = orjson.dumps(to_json_compatible(link.attributes)).decode()
        tags[f"{LINK_PREFIX}{i}"] = (
            f"{link.trace_id.hex()}|{link.span_id.hex()}|{link.trace_state}|{attributes}|"
            f"{link.dropped_attributes_count}"
        )
    if tags:
        out["tags"] = tags
    return out


def _status_tags(status: Status, tags: dict[str, str]) -> None:
    """Status as the Collector's exporter writes it: `error=true` only for ERROR."""
    if status.code is StatusCode.ERROR:
        tags["error"] = "true"
    else:
        tags.pop("error", None)
    if status.code is not StatusCode.UNSET:
        tags[STATUS_CODE] = _STATUS_NAMES[status.code]
        if status.message:
            tags[STATUS_DESCRIPTION] = status.message


def _annotation_json(event: Event) -> Json:
    value = event.name
    if event.attributes or event.dropped_attributes_count:
        attributes = orjson.dumps(to_json_compatible(event.attributes)).decode()
        value = f"{event.name}|{attributes}|{event.dropped_attributes_count}"
    return {"timestamp": (event.time_ns + 500) // 1000, "value": value}
