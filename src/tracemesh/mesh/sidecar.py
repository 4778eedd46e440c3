"""The sidecar's two `Handler`s: inbound (the mesh -> the local app: a SERVER span per request,
its context injected into the request the app gets) and outbound (the app -> other services:
routing, retries, timeouts and faults, a CLIENT span per call, sent to an inbound sidecar of the
chosen destination).

Outbound, the app calls `http://localhost:<outbound-port>/path` with `Host: <service>[:port]`,
or sets `HTTP_PROXY=http://localhost:<outbound-port>` and calls `http://<service>/path` (the
absolute form). The service is the Host's name (a `.<namespace>[.svc[.cluster.local]]` suffix is
dropped for known services); a name the mesh does not know gets 404 `NR`, so the sidecar is never
an open relay. The route's destination subset picks instances by labels in the `Registry`; none
there gives 503 `UH`. Retries follow the route's policy (`policy.RetryPolicy`): another instance
when there is one, Envoy's jittered backoff between tries, `URX` when they run out.

With transparent capture (`capture.py`) an exchange carries its connection's original
destination. Outbound, the service is then the Host's when the mesh knows it, else the Service
whose cluster IP and port the destination is, else none: the request goes to the destination
itself with a CLIENT span and the trace context (`PassthroughCluster`, as Envoy's allow-any
route). Inbound, the app is reached on the destination's port.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace

from tracemesh.mesh.handler import BaseHandler, Exchange, Forward, Respond
from tracemesh.mesh.http1 import Headers, ResponseHead
from tracemesh.mesh.mesh_config import MeshConfig
from tracemesh.mesh.policy import RandomSource, ResponseFlag, RetryDecision, decide_fault
from tracemesh.mesh.proxy_metrics import DESTINATION, SOURCE, UNKNOWN, ProxyMetrics
from tracemesh.mesh.registry import Address, Registry
from tracemesh.mesh.routes import ServiceRoutes
from tracemesh.mesh.routing import Router, Selection
from tracemesh.mesh.tracing import (
    CLIENT_TRACE_ID,
    DECORATOR,
    FORCE_TRACE,
    Tracer,
    default_operation,
    header_values,
)
from tracemesh.model.span import SpanKind
from tracemesh.propagation.context import SpanContext

HTTP_PORT = 80
PASSTHROUGH = "PassthroughCluster"  # Istio's name for calls to destinations it does not know
MAX_OPERATION = 256
_WANTED = frozenset((DECORATOR, FORCE_TRACE, CLIENT_TRACE_ID))
_TRACE = "trace"  # the key of a `_Call` in `Exchange.state`


def with_services(config: MeshConfig, services: frozenset[str]) -> MeshConfig:
    """`config` with every service in `services` routable: those it does not name get no routes,
    which means all their instances (for a registry that knows more services than the file)."""
    missing = services - config.service_names()
    if not missing:
        return config
    routes = {**config.routes, **{name: ServiceRoutes() for name in sorted(missing)}}
    return replace(config, routes=routes)


def service_ports(config: MeshConfig) -> dict[str, int]:
    """The port callers address each service on (the mesh file's `port`), for span names."""
    return {workload.name: workload.port for workload in config.services}


def _operation(value: bytes | None) -> str | None:
    """A usable `x-envoy-decorator-operation` value, or None."""
    if not value or len(value) > MAX_OPERATION:
        return None
    text = value.decode("latin-1").strip()
    return text if text.isprintable() and text else None


class _Call:
    """What one exchange carries from `on_request` to `on_end`."""

    __slots__ = (
        "context", "debug_id", "forward", "name", "revision", "selection", "service", "upstream",
        "upstream_start",
    )  # fmt: skip

    def __init__(self, context: SpanContext, name: str, debug_id: str, service: str) -> None:
        self.context = context
        self.name = name
        self.debug_id = debug_id
        self.service = service
        self.selection: Selection | None = None
        self.forward: Forward | None = None
        self.revision = UNKNOWN
        self.upstream: SpanContext | None = None  # the upstream span's, when one is spawned
        self.upstream_start = 0.0  # the first try's start, once there were several


class InboundHandler(BaseHandler):
    """Every request to the local app at `app`; `service_port` names spans and the cluster."""

    def __init__(
        self, tracer: Tracer, app: Address, service_port: int, metrics: ProxyMetrics | None = None
    ) -> None:
        self._tracer = tracer
        self._app = app
        self._metrics = metrics
        self._service = service = tracer.identity.service
        self._default_name = default_operation(service, service_port)
        self._cluster = f"inbound|{service_port}||"

    def on_request(self, exchange: Exchange) -> Forward | Respond:
        tracer = self._tracer
        headers = exchange.request.headers
        found = header_values(headers, _WANTED)
        extraction = tracer.extract(headers)
        host, port = self._app
        default, cluster = self._default_name, self._cluster
        captured = exchange.destination
        if captured is not None:
            port = captured[1]
            if port != self._app[1]:  # another port of the app than the one configured
                default, cluster = default_operation(self._service, port), f"inbound|{port}||"
        name = _operation(found.get(DECORATOR)) or default
        context = tracer.start(extraction, name, found)
        call = _Call(context, name, extraction.debug_id, tracer.identity.service)
        exchange.state[_TRACE] = call
        set_headers, remove = tracer.inject(context)
        remove.append(DECORATOR)  # the app never sees it (Envoy removes it too)
        return Forward(host, port, set_headers, remove, cluster=cluster)

    def on_end(self, exchange: Exchange) -> None:
        call: _Call | None = exchange.state.get(_TRACE)
        if call is None:  # on_request failed
            return
        self._tracer.finish(exchange, call.context, SpanKind.SERVER, call.name, call.debug_id)
        if self._metrics is not None:
            self._metrics.record(DESTINATION, exchange, call.service)


class _HeaderView(Mapping[str, str]):
    """The request headers as the router reads them, decoded only if a route asks."""

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: Headers) -> None:
        self._raw = raw
        self._decoded: dict[str, str] | None = None

    def _get(self) -> dict[str, str]:
        if self._decoded is None:
            self._decoded = {}
            for name, value in self._raw:
                self._decoded.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        return self._decoded

    def __getitem__(self, key: str) -> str:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class OutboundHandler(BaseHandler):
    """Calls from the local app to services of the mesh, routed by `router` to instances in
    `registry`. `ports` gives each service's port for span names (else the Host's, else 80)."""

    kind = SpanKind.CLIENT
    reporter = SOURCE
    spawn_upstream = False  # a child span for the call upstream (the gateway's, Istio 1.28)

    def __init__(
        self,
        tracer: Tracer,
        router: Router,
        registry: Registry,
        *,
        ports: Mapping[str, int] | None = None,
        known: frozenset[str] = frozenset(),
        metrics: ProxyMetrics | None = None,
        rand: RandomSource = random.random,
    ) -> None:
        self._tracer = tracer
        self._router = router
        self._registry = registry
        self._ports = dict(ports or {})
        self._known = known | registry.services
        self._metrics = metrics
        self._rand = rand
        namespace = tracer.identity.namespace or "default"
        tails = (".svc.cluster.local", ".svc", "")
        self._suffixes = (*(f".{namespace}{tail}" for tail in tails), ".svc.cluster.local")

    def update(
        self, router: Router, registry: Registry, known: frozenset[str], ports: Mapping[str, int]
    ) -> None:
        """New tables (from the control plane): requests that start from now on use them."""
        self._router, self._registry = router, registry
        self._ports, self._known = dict(ports), known | registry.services

    def on_request(self, exchange: Exchange) -> Forward | Respond:
        request = exchange.request
        service, port = self._destination(request.host)
        captured = exchange.destination
        if captured is None or service in self._known:
            if captured is not None and port is None:
                port = captured[1]
            return self.call(exchange, service, port or self._ports.get(service, HTTP_PORT),
                             request.target, None)  # fmt: skip
        by_address = self._registry.service_at(captured)
        if by_address is not None:
            return self.call(exchange, by_address, captured[1], request.target, None)
        return self._passthrough(exchange, captured)

    def _passthrough(self, exchange: Exchange, address: Address) -> Forward:
        """A captured call to a destination outside the mesh: sent where it was going, traced."""
        tracer = self._tracer
        headers = exchange.request.headers
        found = header_values(headers, _WANTED)
        extraction = tracer.extract(headers)
        text = exchange.request.host.decode("latin-1").lower()
        host, sep, port = text.rpartition(":")
        host = host if sep and port.isdigit() else text
        name = default_operation(host or address[0], address[1])
        context = tracer.start(extraction, name, found)
        exchange.state[_TRACE] = _Call(context, name, extraction.debug_id, UNKNOWN)
        set_headers, remove = tracer.inject(context)
        return Forward(address[0], address[1], set_headers, remove, cluster=PASSTHROUGH)

    def call(
        self, exchange: Exchange, service: str, port: int, target: bytes, name: str | None
    ) -> Forward | Respond:
        """Route one call to `service` (addressed on `port`) for `target`, the request target
        to send; `name` overrides the route's span name (the gateway's)."""
        tracer = self._tracer
        request = exchange.request
        headers = request.headers
        found = header_values(headers, _WANTED)
        extraction = tracer.extract(headers)
        method = request.method.decode("latin-1")
        selection = self._router.select(
            service, method, target.decode("latin-1"), _HeaderView(headers), extraction.baggage,
            self._rand,
        )  # fmt: skip
        if name is None:
            name = selection.operation(port) if selection else default_operation(service, port)
        context = tracer.start(extraction, name, found)
        call = _Call(context, name, extraction.debug_id, service or UNKNOWN)
        exchange.state[_TRACE] = call
        if selection is None:
            return Respond(404, b"no route to this service\n", flag=ResponseFlag.NO_ROUTE)
        call.selection = selection
        call.revision = selection.labels.get("version", UNKNOWN)
        destination = selection.destination
        fault = decide_fault(selection.route.fault, self._rand)
        if fault.abort is not None:
            return Respond(fault.abort, b"fault filter abort\n", flag=ResponseFlag.FAULT_INJECTED,
                           delay=fault.delay)  # fmt: skip
        address = self._registry.pick(destination.service, selection.labels)
        if address is None:
            return Respond(503, b"no healthy upstream\n", flag=ResponseFlag.NO_HEALTHY_UPSTREAM)
        carried = context
        if self.spawn_upstream:
            call.upstream = carried = context.child_with(context.sampled, context.request_id)
        set_headers, remove = tracer.inject(carried)
        set_headers.append((DECORATOR, name.encode("latin-1", "replace")))
        call.forward = forward = Forward(
            address[0], address[1], set_headers, remove,
            path=target if target != request.target else None,
            timeout=selection.policy.try_timeout(0.0), delay=fault.delay,
            cluster=f"outbound|{port}|{destination.subset or ''}|{destination.service}",
        )  # fmt: skip
        return forward

    def on_failure(self, exchange: Exchange, flag: str) -> Forward | None:
        return self._retry(exchange, flag)

    def on_response(self, exchange: Exchange, head: ResponseHead) -> Forward | None:
        call: _Call | None = exchange.state.get(_TRACE)
        if (
            call is None
            or call.selection is None
            or not call.selection.policy.retriable(head.status)
        ):
            return None
        return self._retry(exchange, head.status)

    def _retry(self, exchange: Exchange, outcome: int | str) -> Forward | None:
        call: _Call | None = exchange.state.get(_TRACE)
        if call is None or call.selection is None or call.forward is None:
            return None
        policy = call.selection.policy
        elapsed = time.monotonic() - exchange.start
        decision = policy.should_retry(exchange.attempts, outcome, elapsed)
        if decision is RetryDecision.EXHAUSTED:
            exchange.add_flag(ResponseFlag.RETRY_LIMIT_EXCEEDED)
            return None
        if decision is not RetryDecision.RETRY:
            return None
        timeout = policy.try_timeout(elapsed)
        if timeout is not None and timeout <= 0:
            return None
        destination = call.selection.destination
        address = self._registry.pick(destination.service, call.selection.labels, exchange.upstream)
        if address is None:
            return None
        backoff = policy.backoff(exchange.attempts, self._rand)
        if timeout is not None:
            backoff = min(backoff, timeout / 2)
        call.upstream_start = call.upstream_start or exchange.upstream_start
        return replace(call.forward, host=address[0], port=address[1], timeout=timeout,
                       delay=0.0, backoff=backoff)  # fmt: skip

    def on_end(self, exchange: Exchange) -> None:
        call: _Call | None = exchange.state.get(_TRACE)
        if call is None:
            return
        self._tracer.finish(exchange, call.context, self.kind, call.name, call.debug_id)
        if call.upstream is not None and exchange.upstream_start:
            start = call.upstream_start or exchange.upstream_start
            self._tracer.finish_upstream(exchange, call.upstream, start)
        if self._metrics is not None:
            self._metrics.record(self.reporter, exchange, call.service, call.revision)

    def _destination(self, host: bytes) -> tuple[str, int | None]:
        """(service, port) from a Host header: `formatter`, `formatter:8080`,
        `formatter.default.svc.cluster.local:8080`; the port is None when the Host has none."""
        text = host.decode("latin-1").lower()
        name, sep, port_text = text.rpartition(":")
        if not sep or not port_text.isdigit():
            name, port_text = text, ""
        if name not in self._known:
            for suffix in self._suffixes:
                if name.endswith(suffix) and name[: -len(suffix)] in self._known:
                    name = name[: -len(suffix)]
                    break
        return name, int(port_text) if port_text else None
