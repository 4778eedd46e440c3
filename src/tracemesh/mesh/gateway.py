"""The ingress gateway's `Handler`: the edge where outside requests enter the mesh. It routes by
Host and path (the mesh file's `gateway.routes`, first match wins) to a service, applies that
service's routes as any caller does (subsets, retries, faults), and reports two spans per
request as Istio's gateway does since 1.28 (Envoy's `spawn_upstream_span`): a SERVER span for the
request, named after the route and the root of the trace when the request brought no context, and
under it a CLIENT span `router <cluster> egress` for the call to the service (none when no
upstream was tried: no route, an injected abort), whose context the service receives.

What it trusts from outside is `Trust`:

- `context` (the default, Envoy's edge behaviour): trace context, baggage and `jaeger-debug-id`
  are honoured; internal headers (`x-envoy-*`: force-trace, decorator...) are removed and
  `x-request-id` is replaced with a new UUID4 (Envoy overwrites an edge request id).
- `none`: every tracing header is removed too (context, baggage, debug id, foreign formats), so
  every request starts a new trace that no client can steer.
- `all`: an internal gateway behind a trusted proxy: nothing is removed, the request id is kept.

A request whose Host and path match no route gets 404 `NR`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from enum import StrEnum

from tracemesh.mesh.handler import Exchange, Forward, Respond
from tracemesh.mesh.http1 import Headers
from tracemesh.mesh.policy import RandomSource
from tracemesh.mesh.proxy_metrics import ProxyMetrics
from tracemesh.mesh.registry import Registry
from tracemesh.mesh.routing import Router
from tracemesh.mesh.sidecar import HTTP_PORT, OutboundHandler
from tracemesh.mesh.tracing import CLIENT_TRACE_ID, Tracer, default_operation
from tracemesh.model.span import SpanKind
from tracemesh.propagation.request_id import REQUEST_ID

INTERNAL_PREFIX = b"x-envoy-"


class Trust(StrEnum):
    CONTEXT = "context"
    NONE = "none"
    ALL = "all"


_EDGE_ONLY = {  # besides x-envoy-*: what an outside request loses at the edge
    Trust.CONTEXT: frozenset((REQUEST_ID.encode(),)),
    Trust.NONE: frozenset((REQUEST_ID.encode(), CLIENT_TRACE_ID)),
}


class GatewayHandler(OutboundHandler):
    """Needs a `router` built from a mesh file with a `gateway` section."""

    kind = SpanKind.SERVER
    spawn_upstream = True

    def __init__(
        self,
        tracer: Tracer,
        router: Router,
        registry: Registry,
        *,
        trust: Trust | str = Trust.CONTEXT,
        ports: Mapping[str, int] | None = None,
        metrics: ProxyMetrics | None = None,
        rand: RandomSource = random.random,
        upstream_span: bool = True,
    ) -> None:
        super().__init__(tracer, router, registry, ports=ports, metrics=metrics, rand=rand)
        self.trust = Trust(trust)
        if not upstream_span:  # Istio before 1.28: the gateway's one span is a CLIENT span
            self.kind = SpanKind.CLIENT
            self.spawn_upstream = False

    def on_request(self, exchange: Exchange) -> Forward | Respond:
        request = exchange.request
        if self.trust is not Trust.ALL:
            self._clean(request.headers)
        host = request.host.decode("latin-1")
        ingress = self._router.select_ingress(host, request.target.decode("latin-1"))
        if ingress is None:  # unroutable: 404 NR, still traced
            name = f"{host or '-'}{request.target.decode('latin-1').partition('?')[0][:64]}"
            return self.call(exchange, "", HTTP_PORT, request.target, name)
        service = ingress.service
        port = self._ports.get(service, HTTP_PORT)
        route = ingress.route
        name = route.name or default_operation(service, port, route.prefix)
        return self.call(exchange, service, port, ingress.path.encode("latin-1"), name)

    def _clean(self, headers: Headers) -> None:
        """Remove in place what an outside request may not bring under `trust`."""
        if self.trust is Trust.NONE:
            self._tracer.propagator.strip(headers)  # every tracing header, of every format
        dropped = _EDGE_ONLY[self.trust]
        if any(name in dropped or name.startswith(INTERNAL_PREFIX) for name, _ in headers):
            headers[:] = [
                item
                for item in headers
                if item[0] not in dropped and not item[0].startswith(INTERNAL_PREFIX)
            ]
