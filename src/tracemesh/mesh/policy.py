"""What the proxy does when a try fails and when a fault is configured: retry decisions within a
route's timeout budget, injected delays and aborts, and the Envoy response flags that say why.

Retries follow Istio: a route without `retries` gets the mesh default (2 retries on connect
failure or 503), `attempts: 0` turns them off, and a route with a fault gets neither retries nor
a timeout. Retries apply to every method, POST included, as in Istio and Envoy (neither checks
idempotency); a request whose body was already streamed cannot be replayed, which the server
enforces. Random draws come from an injected source, so tests are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum, StrEnum

from tracemesh.mesh.routes import Fault, Retries, RetryOn, Route

RandomSource = Callable[[], float]
"""Uniform floats in [0, 1), like `random.random` (or a seeded `random.Random().random`)."""


class ResponseFlag(StrEnum):
    """Envoy's `response_flags` for what went wrong; the span tag and access log carry them."""

    NO_HEALTHY_UPSTREAM = "UH"
    """No healthy instance of the destination (subset) to send to; answered 503."""
    UPSTREAM_CONNECT_FAILURE = "UF"
    """The connection to the upstream failed; answered 503."""
    UPSTREAM_CONNECTION_TERMINATION = "UC"
    """The upstream closed or reset the connection before a response; answered 503."""
    UPSTREAM_PROTOCOL_ERROR = "UPE"
    """The upstream's response was not valid HTTP; answered 503."""
    UPSTREAM_TIMEOUT = "UT"
    """The route timeout (or the last try's timeout) ran out; answered 504."""
    NO_ROUTE = "NR"
    """No route for the request: unknown service, or no route matched; answered 404."""
    RETRY_LIMIT_EXCEEDED = "URX"
    """The last try failed in a retriable way but no retries were left; set with the failure."""
    FAULT_INJECTED = "FI"
    """The request was aborted with the status a fault configured."""
    DELAY_INJECTED = "DI"
    """The request was delayed by a fault before being sent on."""


FAILURE_STATUS = {
    ResponseFlag.NO_HEALTHY_UPSTREAM: 503,
    ResponseFlag.UPSTREAM_CONNECT_FAILURE: 503,
    ResponseFlag.UPSTREAM_CONNECTION_TERMINATION: 503,
    ResponseFlag.UPSTREAM_PROTOCOL_ERROR: 503,
    ResponseFlag.UPSTREAM_TIMEOUT: 504,
    ResponseFlag.NO_ROUTE: 404,
}
"""The status the proxy answers with itself when no upstream response came."""


def join_flags(flags: Iterable[str]) -> str:
    """Envoy's text for a set of flags: comma-separated, `-` for none."""
    return ",".join(flags) or "-"


MESH_DEFAULT_RETRIES = Retries(attempts=2)
"""Istio's retry policy for routes that set none (pilot `retry.DefaultPolicy`): 2 retries on
connect-failure, refused-stream, unavailable, cancelled and 503. The last three are HTTP/2 and
gRPC conditions; what is left for HTTP/1.1 is connect failure and 503, `Retries`' defaults."""
NO_RETRIES = Retries(attempts=0)

# Envoy counts a try with no response at all as a 5xx (retry_state_impl `wouldRetryFromReset`).
_NO_RESPONSE = frozenset({RetryOn.FIVE_XX, RetryOn.GATEWAY_ERROR, RetryOn.RESET})
_ON_FAILURE: dict[str, frozenset[RetryOn]] = {
    ResponseFlag.UPSTREAM_CONNECT_FAILURE: _NO_RESPONSE | {RetryOn.CONNECT_FAILURE},
    ResponseFlag.UPSTREAM_CONNECTION_TERMINATION: _NO_RESPONSE,
    ResponseFlag.UPSTREAM_PROTOCOL_ERROR: _NO_RESPONSE,
    ResponseFlag.UPSTREAM_TIMEOUT: _NO_RESPONSE,  # a per-try timeout
}
_GATEWAY_ERRORS = frozenset({502, 503, 504})

BACKOFF_BASE = 0.025  # Envoy's default base interval; the cap is 10 times it
BACKOFF_MAX = 0.25


class RetryDecision(Enum):
    RETRY = "retry"
    """Try again (after `backoff`)."""
    DONE = "done"
    """Not retriable, or the route's timeout is spent: give the client this outcome."""
    EXHAUSTED = "exhausted"
    """Retriable, but no retries are left: give the client this outcome and add URX."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The effective retries and timeout of one route."""

    retries: Retries
    timeout: float | None = None  # for the whole request, retries and backoff included

    @classmethod
    def for_route(cls, route: Route) -> RetryPolicy:
        if route.fault is not None:  # Istio: no timeout or retries on a route with a fault
            return cls(NO_RETRIES)
        return cls(
            route.retries if route.retries is not None else MESH_DEFAULT_RETRIES, route.timeout
        )

    def try_timeout(self, elapsed: float) -> float | None:
        """Seconds the next try may take: the per-try timeout cut to what is left of the route's
        timeout after `elapsed` seconds. None: no limit; 0 or less: the budget is spent (UT)."""
        left = None if self.timeout is None else self.timeout - elapsed
        per_try = self.retries.per_try_timeout
        if per_try is None or (left is not None and left < per_try):
            return left
        return per_try

    def should_retry(self, attempt: int, outcome: int | str, elapsed: float = 0.0) -> RetryDecision:
        """Whether to make another try after `attempt` tries (1 after the first) ended with
        `outcome`: a response status, or the flag of a try that got none (UF, UC, UPE, or UT
        for a per-try timeout). `elapsed` is the seconds since the request began."""
        if not self.retries.attempts or not self.retriable(outcome):
            return RetryDecision.DONE  # attempts 0: no retry policy at all, so no URX (Istio)
        if self.timeout is not None and elapsed >= self.timeout:
            return RetryDecision.DONE  # the route's timeout ended the request: UT, not URX
        if attempt > self.retries.attempts:
            return RetryDecision.EXHAUSTED
        return RetryDecision.RETRY

    def retriable(self, outcome: int | str) -> bool:
        """Whether `retry_on` and the retriable status codes cover this outcome."""
        on = self.retries.retry_on
        if isinstance(outcome, int):
            return (
                outcome in self.retries.status_codes
                or (RetryOn.FIVE_XX in on and 500 <= outcome <= 599)
                or (RetryOn.GATEWAY_ERROR in on and outcome in _GATEWAY_ERRORS)
            )
        return not _ON_FAILURE.get(outcome, frozenset()).isdisjoint(on)

    @staticmethod
    def backoff(retry: int, rand: RandomSource) -> float:
        """Seconds to wait before retry number `retry` (1-based): Envoy's fully jittered
        exponential backoff, uniform below 25 ms, 50 ms, 100 ms, ... capped at 250 ms."""
        ceiling = min(BACKOFF_BASE * (1 << min(max(retry, 1) - 1, 16)), BACKOFF_MAX)
        return rand() * ceiling


@dataclass(frozen=True, slots=True)
class FaultAction:
    """What a fault does to one request: wait `delay` seconds, then answer `abort` if set."""

    delay: float = 0.0
    abort: int | None = None

    @property
    def flags(self) -> tuple[ResponseFlag, ...]:
        delayed = (ResponseFlag.DELAY_INJECTED,) if self.delay else ()
        return delayed + ((ResponseFlag.FAULT_INJECTED,) if self.abort is not None else ())


NO_FAULT = FaultAction()


def decide_fault(fault: Fault | None, rand: RandomSource) -> FaultAction:
    """Draw the delay and the abort independently (as Envoy's fault filter does), each with its
    percentage of requests."""
    if fault is None:
        return NO_FAULT
    delay = fault.delay.fixed_delay if fault.delay and _hit(fault.delay.percentage, rand) else 0.0
    abort = fault.abort.http_status if fault.abort and _hit(fault.abort.percentage, rand) else None
    return FaultAction(delay, abort)


def _hit(percentage: float, rand: RandomSource) -> bool:
    return rand() * 100 < percentage
