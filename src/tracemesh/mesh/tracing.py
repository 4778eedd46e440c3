"""The spans a proxy reports, built from a finished `Exchange` the way Envoy's HTTP tracer builds
them under Istio (sans-IO): SERVER for an inbound sidecar, CLIENT for an outbound sidecar, and for
the gateway a SERVER span with a CLIENT child for the call upstream (Istio 1.28's gateway; Envoy's
`spawn_upstream_span`), each with its own span id, Envoy's tag set, and an ERROR status on 5xx or
no response.

Names, as Istio's: the matched route's `name`, else `<service>:<port>/*` for a sidecar route and
`<service>:<port><prefix>*` for a gateway route. The caller's proxy sends its span name on in the
request header `x-envoy-decorator-operation` (Envoy's header for exactly this), and the callee's
inbound sidecar names its SERVER span after it and removes the header before the app sees it; so
both halves of a call share one name, as in Istio. The gateway's upstream span has the name
Envoy's router gives it, `router <cluster> egress`.

Service names: a proxy's spans belong to `<service>.<namespace>` (Istio's `<app>.<namespace>`,
e.g. `productpage.default`), never to the bare service name, so a proxy's spans and the spans an
instrumented app reports as `service.name=<service>` stay apart in the UI. The gateway's are
`<name>.<namespace>`, by default `ingress-gateway.default`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tracemesh.mesh.handler import Exchange
from tracemesh.mesh.mesh_config import PROPAGATION_FORMATS
from tracemesh.mesh.reporter import SpanSink
from tracemesh.mesh.sampler import Sampler
from tracemesh.model.attributes import Attributes
from tracemesh.model.span import Resource, Scope, Span, SpanKind, Status, StatusCode
from tracemesh.propagation.composite import (
    BAGGAGE_HEADERS,
    CONTEXT_HEADERS,
    DEFAULT_WRITE_BAGGAGE,
    Extraction,
    Propagator,
)
from tracemesh.propagation.context import SpanContext
from tracemesh.propagation.request_id import REQUEST_ID, with_trace_reason

DECORATOR = b"x-envoy-decorator-operation"
FORCE_TRACE = b"x-envoy-force-trace"
CLIENT_TRACE_ID = b"x-client-trace-id"
MAX_PATH_TAG = 256  # Envoy's max_path_tag_length
SCOPE = Scope(name="tracemesh.mesh", version="0.1.0")
_PROTOCOL = {b"1.1": "HTTP/1.1", b"1.0": "HTTP/1.0", b"2.0": "HTTP/2"}
# Request headers the span reads, besides Host: looked up in one pass over the headers.
_WANTED = frozenset((b"user-agent", b"x-forwarded-proto", b"x-envoy-downstream-service-cluster"))
_NAMES = {name: name.encode() for name in (*CONTEXT_HEADERS, *BAGGAGE_HEADERS, REQUEST_ID)}
"""Header names a propagator writes, encoded once."""


@dataclass(frozen=True, slots=True)
class ProxyIdentity:
    """Who reports: the service a sidecar stands in front of (or the gateway's name), its
    namespace and labels (`version` is the canonical revision), and Envoy's node id."""

    service: str
    namespace: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    proxy_type: str = "sidecar"  # Istio's node types: sidecar, router (a gateway)
    ip: str = "127.0.0.1"
    resource: Resource = field(init=False, compare=False)
    node_id: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        name = f"{self.service}.{self.namespace}" if self.namespace else self.service
        workload = f"{self.service}-{self.version}" if self.version != "latest" else self.service
        ns = self.namespace or "default"
        node = f"{self.proxy_type}~{self.ip}~{workload}-{os.getpid()}.{ns}~{ns}.svc.cluster.local"
        attributes: Attributes = {"service.name": name, "service.namespace": ns}
        if self.version != "latest":
            attributes["service.version"] = self.version
        object.__setattr__(self, "node_id", node)
        object.__setattr__(self, "resource", Resource(attributes))

    @property
    def service_name(self) -> str:
        name = self.resource.attributes["service.name"]
        assert isinstance(name, str)
        return name

    @property
    def version(self) -> str:
        return self.labels.get("version", "latest")


def default_operation(service: str, port: int, path: str = "/") -> str:
    """Istio's name for a route without one: `<service>:<port>/*`, or with a prefix `<p>*`."""
    return f"{service}:{port}{path}*"


def header_values(
    headers: list[tuple[bytes, bytes]], names: frozenset[bytes]
) -> dict[bytes, bytes]:
    """The first value of each of `names` present (names lower-case, as the parser gives them)."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in names and name not in found:
            found[name] = value
    return found


def build_span(
    exchange: Exchange,
    context: SpanContext,
    kind: SpanKind,
    name: str,
    identity: ProxyIdentity,
    *,
    debug_id: str = "",
) -> Span:
    """The span for one exchange. `context` is the span's own (from `Extraction.start()`: its
    span id and parent), already carrying the request id."""
    request = exchange.request
    seen = header_values(request.headers, _WANTED)
    path = request.target.decode("latin-1")
    scheme = seen.get(b"x-forwarded-proto", b"http").decode("latin-1")
    status = exchange.status
    forward = exchange.forward
    cluster = forward.cluster if forward is not None and forward.cluster else "-"
    attributes: Attributes = {
        "component": "proxy",
        "node_id": identity.node_id,
        "guid:x-request-id": context.request_id,
        "http.url": f"{scheme}://{request.host.decode('latin-1')}{path[:MAX_PATH_TAG]}",
        "http.method": request.method.decode("latin-1"),
        "http.protocol": _PROTOCOL.get(request.version, "-"),
        "downstream_cluster": seen.get(b"x-envoy-downstream-service-cluster", b"-").decode(
            "latin-1"
        ),
        "user_agent": seen.get(b"user-agent", b"-").decode("latin-1"),
        "peer.address": exchange.client[0],
        "request_size": str(exchange.request_bytes),
        "response_size": str(exchange.response_bytes),
        "upstream_cluster": cluster,
        "upstream_cluster.name": cluster,
        "http.status_code": str(status),
        "response_flags": exchange.flags,
        "istio.canonical_service": identity.service,
        "istio.canonical_revision": identity.version,
        "istio.namespace": identity.namespace or "default",
    }
    if exchange.upstream is not None:
        attributes["upstream_address"] = f"{exchange.upstream[0]}:{exchange.upstream[1]}"
    if exchange.attempts > 1:
        attributes["retry.count"] = str(exchange.attempts - 1)
    if debug_id:
        attributes["jaeger-debug-id"] = debug_id
    error = status == 0 or status >= 500
    return Span(
        trace_id=context.trace_id,
        span_id=context.span_id,
        parent_span_id=context.parent_span_id or b"",
        name=name,
        start_ns=exchange.start_ns,
        end_ns=exchange.start_ns + max(int((exchange.end - exchange.start) * 1e9), 0),
        kind=kind,
        attributes=attributes,
        status=Status(StatusCode.ERROR) if error else Status(),
        trace_state=context.trace_state,
        flags=1,  # W3C sampled: only sampled spans are built
        resource=identity.resource,
        scope=SCOPE,
    )


def build_upstream_span(
    exchange: Exchange,
    context: SpanContext,
    identity: ProxyIdentity,
    upstream_start: float,
) -> Span:
    """The span of the call to the upstream, a child of the downstream span, as Envoy's router
    spawns it when `spawn_upstream_span` is on (Istio 1.28's gateway): named `router <cluster>
    egress`, from the first try's start (`upstream_start`, monotonic) to the response's end,
    with the tags of Envoy's `finalizeUpstreamSpan` (`peer.address` is the upstream's)."""
    forward = exchange.forward
    cluster = forward.cluster if forward is not None and forward.cluster else "-"
    status = exchange.status
    attributes: Attributes = {
        "component": "proxy",
        "node_id": identity.node_id,
        "http.protocol": _PROTOCOL.get(exchange.request.version, "-"),
        "upstream_cluster": cluster,
        "upstream_cluster.name": cluster,
        "http.status_code": str(status),
        "response_flags": exchange.flags,
        "istio.canonical_service": identity.service,
        "istio.canonical_revision": identity.version,
        "istio.namespace": identity.namespace or "default",
    }
    if exchange.upstream is not None:
        host, port = exchange.upstream
        attributes["upstream_address"] = f"{host}:{port}"
        attributes["peer.address"] = host
    if exchange.attempts > 1:
        attributes["retry.count"] = str(exchange.attempts - 1)
    start_ns = exchange.start_ns + max(round((upstream_start - exchange.start) * 1e9), 0)
    end_ns = exchange.start_ns + max(int((exchange.end - exchange.start) * 1e9), 0)
    return Span(
        trace_id=context.trace_id,
        span_id=context.span_id,
        parent_span_id=context.parent_span_id or b"",
        name=f"router {cluster} egress",
        start_ns=start_ns,
        end_ns=max(end_ns, start_ns),
        kind=SpanKind.CLIENT,
        attributes=attributes,
        status=Status(StatusCode.ERROR) if status == 0 or status >= 500 else Status(),
        trace_state=context.trace_state,
        flags=1,
        resource=identity.resource,
        scope=SCOPE,
    )


class Tracer:
    """One proxy's tracing, per request: read what arrived, decide, write what leaves, and
    report the span at the end. No I/O: `sink.report` only buffers."""

    def __init__(
        self, identity: ProxyIdentity, propagator: Propagator, sampler: Sampler, sink: SpanSink
    ) -> None:
        self.identity = identity
        self.propagator = propagator
        self.sampler = sampler
        self.sink = sink

    def extract(self, headers: list[tuple[bytes, bytes]]) -> Extraction:
        return self.propagator.extract_request(headers)

    def start(
        self, extraction: Extraction, operation: str, found: Mapping[bytes, bytes]
    ) -> SpanContext:
        """The context of this hop's span: the incoming one's child (or a new root), sampled as
        the sampler decides, its request id carrying the decision's trace reason."""
        request_id = extraction.request_id
        decision = self.sampler.decide(
            extraction, request_id, operation,
            force=FORCE_TRACE in found, client_force=CLIENT_TRACE_ID in found,
        )  # fmt: skip
        if decision.reason is not None:
            request_id = with_trace_reason(request_id, decision.reason)
        return extraction.start_with(decision.sampled, request_id)

    def inject(self, context: SpanContext) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        """(headers to set, headers to remove) that carry `context` to the next hop."""
        set_headers: list[tuple[bytes, bytes]] = []
        remove: list[bytes] = []
        for name, value in self.propagator.changes(context).items():
            raw = _NAMES.get(name) or name.encode("latin-1")
            if value is None:
                remove.append(raw)
            else:
                set_headers.append((raw, value.encode("latin-1", "replace")))
        return set_headers, remove

    def finish(
        self,
        exchange: Exchange,
        context: SpanContext,
        kind: SpanKind,
        name: str,
        debug_id: str = "",
    ) -> None:
        """Report the exchange's span if its trace is sampled."""
        if context.sampled:
            self.sink.report(build_span(exchange, context, kind, name, self.identity,
                                        debug_id=debug_id))  # fmt: skip

    def finish_upstream(
        self, exchange: Exchange, context: SpanContext, upstream_start: float
    ) -> None:
        """Report the upstream span (`build_upstream_span`) if its trace is sampled."""
        if context.sampled:
            self.sink.report(build_upstream_span(exchange, context, self.identity, upstream_start))


class NullSink:
    """Reports nowhere (tracing off: headers still propagate, as Envoy does unsampled)."""

    def report(self, span: Span) -> None:
        return None


def propagator_for(formats: Sequence[str]) -> Propagator:
    """The propagator for the mesh file's `tracing.propagation` list: every format is read
    (reading costs little and joins whatever a client sent), the listed ones are written, and
    `baggage` writes baggage as W3C `baggage` and Jaeger `uberctx-*` headers."""
    unknown = set(formats) - set(PROPAGATION_FORMATS)
    if unknown:
        raise ValueError(f"unknown propagation formats {sorted(unknown)}; "
                         f"known: {', '.join(PROPAGATION_FORMATS)}")  # fmt: skip
    write = [name for name in formats if name != "baggage"]
    forms = DEFAULT_WRITE_BAGGAGE if "baggage" in formats else ()
    return Propagator(write=write, write_baggage=forms)
