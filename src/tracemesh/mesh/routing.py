"""Picks where a request goes: for a call to a service, the first matching route and a weighted
destination in it; for a request at the ingress gateway, the service its host and path name.

Istio's semantics: routes are tried in order and the first match wins; a service with no routes
goes to all its instances (no subset), so versions share its traffic as in Bookinfo without a
VirtualService; an unknown service, or one whose routes all miss, has no route (404, `NR`).
URI matching follows Envoy: `exact` and `regex` see the path without its query string, `prefix`
sees the whole request target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tracemesh.mesh.mesh_config import MeshConfig
from tracemesh.mesh.policy import RandomSource, RetryPolicy
from tracemesh.mesh.routes import Destination, GatewayRoute, RequestMatch, Route
from tracemesh.mesh.string_match import MatchKind

_ANY: Mapping[str, str] = {}
PREFIX = MatchKind.PREFIX


@dataclass(frozen=True, slots=True)
class Selection:
    """Where one request goes and under which policy."""

    service: str  # the service the caller addressed
    route: Route  # the matched route; for a service without routes, one to all its instances
    destination: Destination  # the weighted pick among the route's destinations
    labels: Mapping[str, str]  # labels an instance must carry (the subset's); {}: any instance
    policy: RetryPolicy

    def operation(self, port: int) -> str:
        """The span name: the route's name, else Istio's default `<service>:<port>/*`."""
        return self.route.name or f"{self.service}:{port}/*"


@dataclass(frozen=True, slots=True)
class IngressSelection:
    service: str
    path: str  # the request target to send, after any prefix rewrite
    route: GatewayRoute


class Router:
    """Routing decisions for one `MeshConfig`; build once, call per request. No I/O."""

    def __init__(self, config: MeshConfig) -> None:
        self._config = config
        self._routes: dict[str, list[tuple[Route, RetryPolicy]]] = {}
        for service in config.service_names():
            routes = config.routes.get(service)
            http = routes.http if routes and routes.http else (Route((Destination(service),)),)
            self._routes[service] = [(route, RetryPolicy.for_route(route)) for route in http]
        self._gateway = config.gateway.routes if config.gateway else ()

    def select(
        self,
        service: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        baggage: Mapping[str, str],
        rand: RandomSource,
    ) -> Selection | None:
        """The route for a call to `service`, or None when there is none (answer 404, NR).
        `headers` may use any case in names; `baggage` is the request's decoded baggage."""
        routes = self._routes.get(service)
        if routes is None:
            return None
        request = _Request(method, path, headers, baggage)
        for route, policy in routes:
            if not route.match or any(request.fits(m) for m in route.match):
                destination = _pick(route.route, rand)
                return Selection(service, route, destination, self._labels(destination), policy)
        return None

    def select_ingress(self, host: str, path: str) -> IngressSelection | None:
        """The gateway route for a request with this Host header and target, or None (404)."""
        name = _hostname(host)
        for route in self._gateway:
            if path.startswith(route.prefix) and any(_host_fits(p, name) for p in route.hosts):
                if route.rewrite is not None:
                    path = route.rewrite + path[len(route.prefix) :]
                return IngressSelection(route.service, path, route)
        return None

    def _labels(self, destination: Destination) -> Mapping[str, str]:
        if destination.subset is None:
            return _ANY
        routes = self._config.routes.get(destination.service)
        return routes.subsets.get(destination.subset, _ANY) if routes else _ANY


class _Request:
    """One request's matchable parts; the lower-cased header view is built only if needed."""

    __slots__ = ("_headers", "_lowered", "baggage", "method", "path", "target")

    def __init__(
        self, method: str, target: str, headers: Mapping[str, str], baggage: Mapping[str, str]
    ) -> None:
        self.method = method
        self.target = target
        self.path = target.partition("?")[0]
        self._headers = headers
        self._lowered: Mapping[str, str] | None = None
        self.baggage = baggage

    def header(self, name: str) -> str | None:
        if self._lowered is None:
            self._lowered = {k.lower(): v for k, v in self._headers.items()}
        return self._lowered.get(name)

    def fits(self, match: RequestMatch) -> bool:
        uri = match.uri
        if uri is not None and not uri.matches(self.target if uri.kind is PREFIX else self.path):
            return False
        if match.method is not None and not match.method.matches(self.method):
            return False
        return all(m.matches(self.header(n)) for n, m in match.headers.items()) and all(
            m.matches(self.baggage.get(k)) for k, m in match.baggage.items()
        )


def _pick(destinations: tuple[Destination, ...], rand: RandomSource) -> Destination:
    """A destination with probability weight/100; a single one without drawing."""
    if len(destinations) == 1:
        return destinations[0]
    point = rand() * 100
    for destination in destinations:
        if point < destination.weight:
            return destination
        point -= destination.weight
    # float rounding at the top end
    return next((d for d in reversed(destinations) if d.weight), destinations[-1])


def _hostname(host: str) -> str:
    """The Host header without its port, lower-cased (`[::1]:80` -> `[::1]`)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host


def _host_fits(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern
