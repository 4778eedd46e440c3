"""The route configuration, as frozen data: per destination service its subsets and an ordered
list of HTTP routes (Istio's VirtualService + DestinationRule, simplified), and the gateway's
host/prefix routes.

Semantics follow Istio: the first route whose match fits wins; a route's `match` alternatives
are OR'd and the conditions inside one alternative AND'd; destination weights are percentages;
durations are float seconds. `config_file` builds these from YAML and checks every rule stated
here; `routing` applies them; `policy` turns retries and faults into decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from tracemesh.mesh.string_match import StringMatch


class RetryOn(StrEnum):
    """Envoy's `retry_on` conditions that an HTTP/1.1 data plane can meet."""

    FIVE_XX = "5xx"
    """Any 5xx response, and a try that got no response at all (connect failure, reset,
    per-try timeout): Envoy counts those as 5xx."""
    GATEWAY_ERROR = "gateway-error"
    """502, 503 or 504, and a try that got no response at all, as for 5xx."""
    CONNECT_FAILURE = "connect-failure"
    """The connection to the upstream could not be made."""
    RESET = "reset"
    """The upstream did not respond at all: disconnect, reset, or per-try timeout."""


@dataclass(frozen=True, slots=True)
class RequestMatch:
    """One match alternative: every condition given must hold. Header names are lower-case
    (header lookup is case-insensitive); baggage keys are compared as given (W3C keys are
    case-sensitive)."""

    uri: StringMatch | None = None
    method: StringMatch | None = None
    headers: Mapping[str, StringMatch] = field(default_factory=dict)
    baggage: Mapping[str, StringMatch] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a share of a route's traffic goes: a service, optionally one subset of it."""

    service: str
    subset: str | None = None  # None: every instance of the service
    weight: int = 100  # percent of the route's requests


@dataclass(frozen=True, slots=True)
class Retries:
    """How often and on what a failed try is repeated. `attempts` counts retries (Istio): a
    request makes at most 1 + attempts tries. Applies to every method, as in Istio."""

    attempts: int
    per_try_timeout: float | None = None
    retry_on: frozenset[RetryOn] = frozenset({RetryOn.CONNECT_FAILURE})
    status_codes: frozenset[int] = frozenset({503})  # Istio's retriable-status-codes default


@dataclass(frozen=True, slots=True)
class Delay:
    fixed_delay: float
    percentage: float = 100.0


@dataclass(frozen=True, slots=True)
class Abort:
    http_status: int
    percentage: float = 100.0


@dataclass(frozen=True, slots=True)
class Fault:
    """Injected at the caller's sidecar. Delay and abort are drawn independently."""

    delay: Delay | None = None
    abort: Abort | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP route. `name` is the span name and is passed on to the callee; `match` empty
    means every request; `timeout` bounds the whole request including retries."""

    route: tuple[Destination, ...]
    name: str | None = None
    match: tuple[RequestMatch, ...] = ()
    timeout: float | None = None
    retries: Retries | None = None  # None: the mesh default (see `policy`)
    fault: Fault | None = None


@dataclass(frozen=True, slots=True)
class ServiceRoutes:
    """What a destination service's callers apply: named subsets (name -> labels an instance
    must carry, e.g. {"version": "v1"}) and the ordered routes."""

    subsets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    http: tuple[Route, ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayRoute:
    """An ingress route: requests for one of `hosts` (exact, `*.suffix`, or `*`) whose path
    starts with `prefix` go to `service`, the prefix replaced by `rewrite` when given."""

    service: str
    prefix: str = "/"
    hosts: tuple[str, ...] = ("*",)
    rewrite: str | None = None
    name: str | None = None
