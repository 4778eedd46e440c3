"""Zipkin v2 spans -> storage rows, mapped as the OpenTelemetry Collector's Zipkin translator does;
the JSON (v1 and v2) and proto3 codecs parse their wire format and call in here.

Zipkin -> model (`RowBuilder`), after contrib `pkg/translator/zipkin/zipkinv2/to_translator.go`:

- `localEndpoint.serviceName` is the resource's `service.name` (no service: an empty resource);
  tags named like OpenTelemetry resource attributes (`host.name`, `telemetry.sdk.*`...) move to
  the resource, `otel.library.*` / `otel.scope.*` tags become the instrumentation scope.
- kind CLIENT/SERVER/PRODUCER/CONSUMER maps one to one; no kind with tag `span.kind=internal` is
  INTERNAL. A `parentId` equal to the span's own id means no parent.
- `otel.status_code` (`Ok`/`Error`, `OK`/`ERROR`, `STATUS_CODE_*`) with `otel.status_description`
  sets the status; any `error` tag makes it ERROR (a value other than `true` stays as a tag and
  becomes the message when none was given). `w3c.tracestate` is the trace state, `otlp.link.N`
  tags are links.
- Endpoint addresses become `net.host.ip` / `net.host.port` and `peer.service` / `net.peer.ip` /
  `net.peer.port`; every other tag is a string attribute.
- Annotations are events. Besides a plain name, three value shapes carry attributes: the
  Collector's `name|{json}|dropped`, OpenTelemetry Python's `{"name": {attributes}}`, and Jaeger
  clients' flat `{"event": "name", "key": "value"}`.
- No timestamp: the span starts at 0 with `otel.zipkin.absentField.startTime=true`.
- `debug` and `shared` are not kept, as in the Collector.

Shared span ids (B3's design, Envoy's default `shared_span_context`): the client and server
halves of one RPC arrive with one span id. They are stored as sent, and the query service's first
adjuster (`query.adjusters.uniquify_client_server_span_ids`, Jaeger's) gives the SERVER half a
fresh id, makes it a child of the CLIENT half and re-parents the server's children onto it. That
happens at read time on purpose: the two halves come from different proxies in different requests
(often to different collectors), and the server half's children (the app's spans, whose parent is
the shared id) can arrive in yet other requests, so no single ingest request could re-parent them;
storing what was sent also keeps `raw=true` truthful and means the fix-up is never applied twice.

Rows are built without model objects (ADR 0001): each span's OTLP bytes are written directly
(`codecs.otlp_bytes`), with the encoded attributes and annotations that repeat between the spans
of a request (Envoy's `component=proxy`, `upstream_cluster`...) encoded once. That is about twice
as fast as building model spans and serializing them through upb (bench/zipkin_json.py);
`RowBuilder.spans()` decodes the rows back into canonical spans for callers that want them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, NamedTuple

import orjson

from tracemesh.codecs import DecodeError, otlp_bytes
from tracemesh.codecs.otlp_proto import span_from_row
from tracemesh.model.attributes import Attributes, AttrValue
from tracemesh.model.batch import ResourceGroup, SpanBatch, SpanRow
from tracemesh.model.ids import (
    SPAN_ID_SIZE,
    TRACE_ID_SIZE,
    ZERO_SPAN_ID,
    ZERO_TRACE_ID,
    InvalidIDError,
    parse_span_id,
    parse_trace_id,
)
from tracemesh.model.span import Event, Link, Resource, Scope, Span, SpanKind, StatusCode

START_TIME_ABSENT = "otel.zipkin.absentField.startTime"
SERVICE_NAME_SOURCE = "otlp.service.name.source"
TRACE_STATE = "w3c.tracestate"
STATUS_CODE = "otel.status_code"
STATUS_DESCRIPTION = "otel.status_description"
LIBRARY_NAME, LIBRARY_VERSION = "otel.library.name", "otel.library.version"
SCOPE_NAME, SCOPE_VERSION = "otel.scope.name", "otel.scope.version"
LINK_PREFIX = "otlp.link."
MAX_LINKS = 128
MAX_TIME_NS = 2**64 - 1  # OTLP's fixed64 nanoseconds

KINDS = {
    "CLIENT": SpanKind.CLIENT,
    "SERVER": SpanKind.SERVER,
    "PRODUCER": SpanKind.PRODUCER,
    "CONSUMER": SpanKind.CONSUMER,
}
KIND_NAMES = {kind: name for name, kind in KINDS.items()}
_STATUS_CODES = {
    "STATUS_CODE_UNSET": StatusCode.UNSET,
    "STATUS_CODE_OK": StatusCode.OK,
    "STATUS_CODE_ERROR": StatusCode.ERROR,
    "UNSET": StatusCode.UNSET,
    "OK": StatusCode.OK,
    "ERROR": StatusCode.ERROR,
}
_STATUS_NAMES = {StatusCode.OK: "Ok", StatusCode.ERROR: "Error"}

# Semantic-convention resource attributes (semconv 1.6.1, the set the Collector's translator uses)
# plus the OpenCensus process keys it also keeps off spans.
RESOURCE_KEYS = frozenset(
    """
    cloud.provider cloud.account.id cloud.region cloud.availability_zone cloud.platform
    aws.ecs.container.arn aws.ecs.cluster.arn aws.ecs.launchtype aws.ecs.task.arn
    aws.ecs.task.family aws.ecs.task.revision aws.eks.cluster.arn aws.log.group.names
    aws.log.group.arns aws.log.stream.names aws.log.stream.arns
    container.name container.id container.runtime container.image.name container.image.tag
    deployment.environment device.id device.model.identifier device.model.name
    faas.name faas.id faas.version faas.instance faas.max_memory
    host.id host.name host.type host.arch host.image.name host.image.id host.image.version
    k8s.cluster.name k8s.node.name k8s.node.uid k8s.namespace.name k8s.pod.uid k8s.pod.name
    k8s.container.name k8s.replicaset.uid k8s.replicaset.name k8s.deployment.uid
    k8s.deployment.name k8s.statefulset.uid k8s.statefulset.name k8s.daemonset.uid
    k8s.daemonset.name k8s.job.uid k8s.job.name k8s.cronjob.uid k8s.cronjob.name
    os.type os.description os.name os.version
    process.pid process.executable.name process.executable.path process.command
    process.command_line process.command_args process.owner process.runtime.name
    process.runtime.version process.runtime.description
    service.name service.namespace service.instance.id service.version
    telemetry.sdk.name telemetry.sdk.language telemetry.sdk.version telemetry.auto.version
    webengine.name webengine.version webengine.description
    opencensus.starttime opencensus.exporterversion opencensus.resourcetype
    """.split()  # noqa: SIM905 - a word list reads better than 85 quoted strings
)
_SCOPE_KEYS = frozenset({LIBRARY_NAME, LIBRARY_VERSION, SCOPE_NAME, SCOPE_VERSION})
_ENDPOINT_KEYS = frozenset(
    {"net.host.ip", "net.host.port", "peer.service", "net.peer.ip", "net.peer.port"}
)
# Every tag that is not simply copied to an attribute: one set intersection finds them all.
_SPECIAL_KEYS = (
    RESOURCE_KEYS
    | _SCOPE_KEYS
    | _ENDPOINT_KEYS
    | {
        SERVICE_NAME_SOURCE,
        TRACE_STATE,
        STATUS_CODE,
        STATUS_DESCRIPTION,
        "error",
        "span.kind",
        LINK_PREFIX + "0",
    }
)


class Endpoint(NamedTuple):
    """A Zipkin endpoint with its address in text form (`ipv4` dotted, `ipv6` canonical)."""

    service_name: str = ""
    ipv4: str = ""
    ipv6: str = ""
    port: int = 0


def checked_ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise DecodeError(f"invalid ipv4 address {text[:60]!r}") from None


def checked_ipv6(text: str) -> str:
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise DecodeError(f"invalid ipv6 address {text[:60]!r}") from None


def checked_port(port: int) -> int:
    if not 0 <= port <= 0xFFFF:
        raise DecodeError(f"port {port} is out of range 0-65535")
    return port


def parse_ids(trace_id: str, span_id: str, parent_id: str) -> tuple[bytes, bytes, bytes]:
    """Hex ids as Zipkin sends them (1-32 and 1-16 digits); a zero parent means none."""
    trace = _full_hex(trace_id, TRACE_ID_SIZE, ZERO_TRACE_ID)
    span = _full_hex(span_id, SPAN_ID_SIZE, ZERO_SPAN_ID)
    parent = _full_hex(parent_id, SPAN_ID_SIZE, ZERO_SPAN_ID) if parent_id else b""
    if trace and span and (parent or not parent_id):
        return trace, span, parent
    try:  # short ids, or errors: the general parser pads and explains
        trace = trace or parse_trace_id(trace_id)
        span = span or parse_span_id(span_id)
        if parent_id and not parent and parent_id.strip("0"):
            parent = parse_span_id(parent_id)
    except InvalidIDError as exc:
        raise DecodeError(str(exc)) from None
    return trace, span, parent


def _full_hex(text: str, size: int, zero: bytes) -> bytes:
    """The id when `text` is exactly `size` bytes of hex and not zero, else b"" (fast path)."""
    if len(text) != size * 2:
        return b""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return b""
    # fromhex skips whitespace between bytes, which then shows as a short result
    return raw if len(raw) == size and raw != zero else b""


class RowBuilder:
    """Collects Zipkin v2 spans as a `SpanBatch`: one `Resource` per service (and resource tags),
    one `Scope` per library, each span's row appended to its group as it comes."""

    def __init__(self) -> None:
        self._resources: dict[tuple[object, ...], Resource] = {}
        self._scopes: dict[tuple[str, str], Scope] = {}
        self._groups: dict[tuple[int, int], ResourceGroup] = {}
        self._attributes: dict[tuple[str, str], bytes] = {}  # encoded string attributes
        self._events: dict[str, bytes] = {}  # encoded event bodies by annotation value
        self._endpoints: dict[tuple[Endpoint | None, Endpoint | None], bytes] = {}
        self._order: list[tuple[ResourceGroup, SpanRow]] = []
        self.repaired = 0  # spans whose text was not UTF-8 (repaired before they got here)

    def batch(self) -> SpanBatch:
        return SpanBatch(list(self._groups.values()), self.repaired)

    def spans(self) -> list[Span]:
        """Every span added, decoded from its row, in the order added."""
        return [span_from_row(row.raw, g.resource, g.scope) for g, row in self._order]

    def add(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_id: bytes,
        name: str,
        kind: SpanKind,
        timestamp_us: int,
        duration_us: int,
        local: Endpoint | None,
        remote: Endpoint | None,
        annotations: Iterable[tuple[int, str]],
        tags: dict[str, Any],
    ) -> None:
        """Add one span; ids already checked, `tags` (string values) is consumed."""
        start = timestamp_us * 1000
        end = start + duration_us * 1000
        if end > MAX_TIME_NS:
            raise DecodeError(f"timestamp {timestamp_us} + duration {duration_us} is out of range")
        if parent_id == span_id:
            parent_id = b""
        service = local.service_name if local is not None else ""
        if tags and (special := tags.keys() & _SPECIAL_KEYS):
            resource = self._resource(service, tags, special)
            scope = self._scope(tags, special)
            fields = _SpecialFields(kind)
            fields.take(tags, special)
            kind = fields.kind
            if not _ENDPOINT_KEYS.isdisjoint(special):  # endpoint values replace those tags
                _put_endpoints(tags, local, remote)
                local = remote = None
        else:
            resource = self._resources.get((service,)) or self._resource(service, tags, ())
            scope = self._scopes.get(("", "")) or self._scope_for("", "")
            fields = _NO_SPECIAL_FIELDS
        try:
            raw = self._encode(
                (trace_id, span_id, parent_id, fields.trace_state, name, kind, start, end),
                tags, local, remote, timestamp_us, annotations, fields,
            )  # fmt: skip
        except UnicodeEncodeError as exc:
            raise DecodeError(f"text is not valid UTF-8: {exc.reason}") from None
        group = self._groups.get((id(resource), id(scope)))
        if group is None:
            group = self._groups[(id(resource), id(scope))] = ResourceGroup(resource, scope)
        row = _new_row(SpanRow, (trace_id, span_id, parent_id, name, int(kind), start, end,
                                 int(fields.status_code), raw))  # fmt: skip
        group.rows.append(row)
        self._order.append((group, row))

    def _encode(
        self,
        head: tuple[bytes, bytes, bytes, str, str, int, int, int],
        tags: dict[str, Any],
        local: Endpoint | None,
        remote: Endpoint | None,
        timestamp_us: int,
        annotations: Iterable[tuple[int, str]],
        fields: _SpecialFields,
    ) -> bytes:
        """The span's OTLP bytes; attributes, endpoints and event bodies come from the request's
        caches. Attributes are in the order `_put_endpoints` would give them."""
        encoded_attributes = self._attributes
        # One C-level pass finds the cached attributes; only the misses are encoded in Python.
        # (Only string-valued items are cached, so an int never matches a bool or vice versa.)
        parts: list[bytes | None] = [
            otlp_bytes.head(*head),
            *map(encoded_attributes.get, tags.items()),
        ]
        if None in parts:
            for i, item in enumerate(tags.items(), 1):
                if parts[i] is None:
                    parts[i] = encoded = otlp_bytes.attribute(*item)
                    if type(item[1]) is str:
                        encoded_attributes[item] = encoded
        append = parts.append
        if local is not None or remote is not None:
            endpoints = self._endpoints.get((local, remote))
            if endpoints is None:
                pairs: dict[str, Any] = {}
                _put_endpoints(pairs, local, remote)
                endpoints = b"".join(otlp_bytes.attribute(k, v) for k, v in pairs.items())
                self._endpoints[(local, remote)] = endpoints
            append(endpoints)
        if not timestamp_us:
            append(_START_TIME_ABSENT_BYTES)
        event_bodies = self._events
        for time_us, value in annotations:
            body = event_bodies.get(value)
            if body is None:
                body = event_bodies[value] = otlp_bytes.event_body(event_from_annotation(0, value))
            append(otlp_bytes.event(time_us * 1000, body))
        for link in fields.links:
            append(otlp_bytes.link(link))
        if fields.status_code or fields.status_message:
            append(otlp_bytes.status(fields.status_code, fields.status_message))
        return b"".join(parts)  # type: ignore[arg-type]  # no None left

    def _resource(self, service: str, tags: dict[str, Any], special: Iterable[str]) -> Resource:
        moved = sorted((k, tags.pop(k)) for k in special if k in RESOURCE_KEYS)
        source = tags.pop(SERVICE_NAME_SOURCE, "") if SERVICE_NAME_SOURCE in special else ""
        key = (service, source, *moved) if source or moved else (service,)
        resource = self._resources.get(key)
        if resource is None:
            attributes: Attributes = {}
            if service:
                attributes[source or "service.name"] = service
                attributes.update(moved)
            resource = self._resources[key] = Resource(attributes)
        return resource

    def _scope(self, tags: dict[str, Any], special: Iterable[str]) -> Scope:
        name = version = ""
        for key in _SCOPE_KEYS.intersection(special):
            value = tags.pop(key)
            if key in (LIBRARY_NAME, SCOPE_NAME):
                name = name or value
            else:
                version = version or value
        return self._scope_for(name, version)

    def _scope_for(self, name: str, version: str) -> Scope:
        scope = self._scopes.get((name, version))
        if scope is None:
            scope = self._scopes[(name, version)] = Scope(name, version)
        return scope


_new_row = tuple.__new__  # skips NamedTuple's Python-level __new__, as otlp_proto does


class _SpecialFields:
    """What the special tags say: trace state, INTERNAL kind, status, links."""

    __slots__ = ("kind", "links", "status_code", "status_message", "trace_state")

    def __init__(self, kind: SpanKind) -> None:
        self.kind = kind
        self.trace_state = ""
        self.status_code = StatusCode.UNSET
        self.status_message = ""
        self.links: list[Link] = []

    def take(self, tags: dict[str, Any], special: set[str]) -> None:
        """Read (and remove) the special tags that are not resource or scope ones."""
        if TRACE_STATE in special:
            self.trace_state = tags.pop(TRACE_STATE)
        unspecified = self.kind is SpanKind.UNSPECIFIED
        if "span.kind" in special and unspecified and tags.pop("span.kind") == "internal":
            self.kind = SpanKind.INTERNAL
        if STATUS_CODE in special:
            self.status_code = _STATUS_CODES.get(tags.pop(STATUS_CODE).upper(), StatusCode.UNSET)
            if STATUS_DESCRIPTION in special:
                self.status_message = tags.pop(STATUS_DESCRIPTION)
        if "error" in special:
            self.status_code = StatusCode.ERROR
            value = tags["error"]
            if value == "true":
                del tags["error"]
            elif value and not self.status_message:
                self.status_message = value
        if LINK_PREFIX + "0" in special:
            self.links = _links(tags)


_NO_SPECIAL_FIELDS = _SpecialFields(SpanKind.UNSPECIFIED)
_START_TIME_ABSENT_BYTES = otlp_bytes.attribute(START_TIME_ABSENT, True)


def _put_endpoints(tags: dict[str, Any], local: Endpoint | None, remote: Endpoint | None) -> None:
    """The endpoints as the Collector's attributes (an IPv6 address wins over an IPv4 one)."""
    if local is not None:
        if local.ipv4 or local.ipv6:
            tags["net.host.ip"] = local.ipv6 or local.ipv4
        if local.port > 0:
            tags["net.host.port"] = local.port
    if remote is not None:
        if remote.service_name:
            tags["peer.service"] = remote.service_name
        if remote.ipv4 or remote.ipv6:
            tags["net.peer.ip"] = remote.ipv6 or remote.ipv4
        if remote.port > 0:
            tags["net.peer.port"] = remote.port


def _links(tags: dict[str, Any]) -> list[Link]:
    """`otlp.link.N` tags, N counting from 0: `traceid|spanid|tracestate|{json}|dropped`. A tag
    that does not parse stays an attribute rather than failing the whole request."""
    links = []
    for i in range(MAX_LINKS):
        key = f"{LINK_PREFIX}{i}"
        value = tags.get(key)
        if value is None:
            break
        parts = value.split("|")
        if len(parts) < 5:
            continue
        try:
            trace_id = bytes.fromhex(parts[0]) if parts[0] else b""
            span_id = bytes.fromhex(parts[1]) if parts[1] else b""
            dropped = int(parts[-1])
        except ValueError:
            continue
        doc = _json_object("|".join(parts[3:-1]))
        if doc is None or len(trace_id) not in (0, 16) or len(span_id) not in (0, 8):
            continue
        if not 0 <= dropped < 2**32:
            continue
        del tags[key]
        links.append(Link(trace_id, span_id, parts[2], _json_attributes(doc), dropped))
    return links


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _json_attributes(doc: dict[str, Any]) -> Attributes:
    """A JSON object's scalar and list-of-scalar members as attributes; other members are left
    out. Integral numbers become ints, as the Collector reads them."""
    out: Attributes = {}
    for key, value in doc.items():
        attribute = _json_scalar(value)
        if attribute is None and isinstance(value, list):
            items = [_json_scalar(v) for v in value]
            attribute = items if None not in items else None
        if attribute is not None:
            out[key] = attribute
    return out


def _json_scalar(value: object) -> AttrValue:
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**63 else value
    return None


def event_from_annotation(time_us: int, value: str) -> Event:
    """An annotation as an event; see the module docstring for the value shapes understood."""
    time_ns = time_us * 1000
    if value.startswith("{") and value.endswith("}"):
        doc = _json_object(value)
        if doc is not None:
            if len(doc) == 1:
                ((name, inner),) = doc.items()
                if isinstance(inner, dict):  # OpenTelemetry Python: {"name": {attributes}}
                    return Event(time_ns, name, _json_attributes(inner))
            if all(isinstance(v, str) for v in doc.values()):  # Jaeger: flat string fields
                name = doc.pop("event", "")
                return Event(time_ns, name, _json_attributes(doc))
    elif "|" in value:  # the Collector: name|{attributes}|dropped
        name, _, rest = value.partition("|")
        attributes_json, _, dropped = rest.rpartition("|")
        if dropped.isdigit() and int(dropped) < 2**32:
            doc = _json_object(attributes_json)
            if doc is not None:
                return Event(time_ns, name, _json_attributes(doc), int(dropped))
    return Event(time_ns, value)
