"""The whole mesh file as frozen data: the workloads the local runner starts, the routes, the
ingress gateway, and the tracing settings every sidecar and the gateway share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tracemesh.mesh.routes import GatewayRoute, ServiceRoutes
from tracemesh.runtime import ports

PROPAGATION_FORMATS = ("b3", "w3c", "jaeger", "baggage")
GATEWAY_PORT = 8080  # the Istio ingress gateway's container port, as in Chapter 7 and Bookinfo
"""Header formats a proxy can read and write (B3 single and multi-header are one format)."""


@dataclass(frozen=True, slots=True)
class Workload:
    """One deployment of a service: `replicas` processes running `command`. Several workloads
    may share a service name (one per version), differing in `labels`; they share the
    service's `port`, the port callers address."""

    name: str
    command: tuple[str, ...]
    port: int
    labels: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Gateway:
    """The ingress gateway: the port it listens on and its routes, first match wins.
    `upstream_span` makes it report a SERVER span and a child CLIENT span per request (Istio 1.28
    and later); off, it reports the one CLIENT span of earlier Istio versions."""

    port: int = GATEWAY_PORT
    routes: tuple[GatewayRoute, ...] = ()
    upstream_span: bool = True


@dataclass(frozen=True, slots=True)
class Tracing:
    """`sampling` is the percentage of new traces recorded (Istio's `sampling`). The default
    is 100, not Istio's 1: on a laptop, "no traces in Jaeger" is the first complaint."""

    sampling: float = 100.0
    collector: str = f"127.0.0.1:{ports.OTLP_GRPC}"  # host:port spans are reported to
    propagation: tuple[str, ...] = PROPAGATION_FORMATS


@dataclass(frozen=True, slots=True)
class MeshConfig:
    services: tuple[Workload, ...] = ()
    routes: Mapping[str, ServiceRoutes] = field(default_factory=dict)
    gateway: Gateway | None = None
    tracing: Tracing = field(default_factory=Tracing)

    def service_names(self) -> frozenset[str]:
        """Every service the file names: workloads, routed services, route destinations and
        gateway targets (a file without `services` still routes to the services it names)."""
        names = {w.name for w in self.services} | set(self.routes)
        for routes in self.routes.values():
            names.update(d.service for route in routes.http for d in route.route)
        if self.gateway is not None:
            names.update(r.service for r in self.gateway.routes)
        return frozenset(names)
