"""Whether a proxy records the request in front of it: the incoming decision when there is one,
else Envoy's rules over `x-request-id`, with the percentage from the mesh file or from a Jaeger
remote sampling strategy (sans-IO: the poller in `strategy_poller` hands strategies in).

The order, for each request (Envoy's `mutateTracingRequestHeader` and Zipkin extractor, §1.4 of
the mesh-tracing reference):

1. A context that arrived with a decision (B3 `x-b3-sampled`/`b3`, W3C flags, Jaeger flags)
   keeps it; a debug context or `jaeger-debug-id` is sampled. So is a sampling-only header
   (`b3: 1`, a lone `X-B3-Sampled`).
2. A request id that already carries a trace reason (`9` sampled, `a` service-forced, `b`
   client-forced, at index 14) is sampled: an earlier hop decided.
3. `x-envoy-force-trace` forces (reason `a`), `x-client-trace-id` forces (reason `b`).
4. Otherwise the draw, the request id's first 8 hex digits modulo 10000 (a random draw if it has
   none), is compared with the percentage: a remote strategy's probability for the operation
   when one was fetched, else the configured percentage. A sampled decision writes reason `9`.
   A rate-limiting strategy samples up to its traces per second instead.

The reason is written into the request id (`with_trace_reason`), which the app copies onward, so
later hops agree even where trace headers are lost.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tracemesh.mesh.policy import RandomSource
from tracemesh.propagation.composite import Extraction
from tracemesh.propagation.request_id import TraceReason, sampling_draw, trace_reason

Clock = Callable[[], float]
_FORCED = frozenset({TraceReason.SAMPLED, TraceReason.SERVICE_FORCED, TraceReason.CLIENT_FORCED})
MAX_STRATEGY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Decision:
    sampled: bool
    reason: TraceReason | None = None  # to write into the request id; None: leave it as is


NOT_SAMPLED = Decision(False)
KEEP_SAMPLED = Decision(True)
_SAMPLED = Decision(True, TraceReason.SAMPLED)
_SERVICE_FORCED = Decision(True, TraceReason.SERVICE_FORCED)
_CLIENT_FORCED = Decision(True, TraceReason.CLIENT_FORCED)


@dataclass(frozen=True, slots=True)
class Strategy:
    """A Jaeger sampling strategy as `/api/sampling?service=` serves it (proto-JSON)."""

    probability: float | None = None  # probabilistic, or per-operation's default
    traces_per_second: float | None = None  # rate limiting
    operations: Mapping[str, float] = field(default_factory=dict)  # per-operation probability
    lower_bound_per_second: float = 0.0  # per-operation guaranteed throughput


class RateLimiter:
    """Jaeger's rate limiter: a token bucket holding at most max(rate, 1) credits."""

    def __init__(self, per_second: float, clock: Clock = time.monotonic) -> None:
        self.rate = per_second
        self.max_balance = max(per_second, 1.0)
        self.balance = self.max_balance
        self._clock = clock
        self._last = clock()

    def allow(self) -> bool:
        now = self._clock()
        self.balance = min(self.max_balance, self.balance + (now - self._last) * self.rate)
        self._last = now
        if self.balance >= 1.0:
            self.balance -= 1.0
            return True
        return False


class Sampler:
    """Decides per request; `percentage` is 0-100 (Istio's `sampling`), `strategy` a remote
    strategy that replaces it while set."""

    def __init__(
        self,
        percentage: float = 100.0,
        *,
        rand: RandomSource = random.random,
        clock: Clock = time.monotonic,
    ) -> None:
        if not 0.0 <= percentage <= 100.0:
            raise ValueError(f"sampling must be a percentage from 0 to 100, got {percentage}")
        self.percentage = percentage
        self._rand = rand
        self._clock = clock
        self._strategy: Strategy | None = None
        self._limiter: RateLimiter | None = None
        self._lower_bounds: dict[str, RateLimiter] = {}

    @property
    def strategy(self) -> Strategy | None:
        return self._strategy

    @strategy.setter
    def strategy(self, strategy: Strategy | None) -> None:
        if strategy == self._strategy:
            return
        self._strategy = strategy
        rate = strategy.traces_per_second if strategy is not None else None
        self._limiter = RateLimiter(rate, self._clock) if rate is not None else None
        self._lower_bounds.clear()

    def decide(
        self,
        extraction: Extraction,
        request_id: str,
        operation: str,
        *,
        force: bool = False,
        client_force: bool = False,
    ) -> Decision:
        context = extraction.context
        if context is not None and context.sampled is not None:
            return KEEP_SAMPLED if context.sampled else NOT_SAMPLED
        if extraction.debug or extraction.sampled is not None:
            return KEEP_SAMPLED if extraction.debug or extraction.sampled else NOT_SAMPLED
        if trace_reason(request_id) in _FORCED:
            return KEEP_SAMPLED
        if force:
            return _SERVICE_FORCED
        if client_force:
            return _CLIENT_FORCED
        return _SAMPLED if self._draw(request_id, operation) else NOT_SAMPLED

    def _draw(self, request_id: str, operation: str) -> bool:
        strategy = self._strategy
        if strategy is not None and self._limiter is not None:
            return self._limiter.allow()
        percentage = self.percentage
        if strategy is None and (percentage >= 100.0 or percentage <= 0.0):
            return percentage >= 100.0  # every draw (0-9999) is below 10000 and none below 0
        if strategy is not None:
            probability = strategy.operations.get(operation, strategy.probability)
            if probability is not None:
                percentage = probability * 100.0
        draw = sampling_draw(request_id)
        if draw is None:
            draw = int(self._rand() * 10000)
        if draw < percentage * 100.0:  # 0.01% steps, as Envoy's fractional percent
            return True
        if strategy is not None and strategy.lower_bound_per_second > 0:
            limiter = self._lower_bounds.get(operation)
            if limiter is None:
                if len(self._lower_bounds) >= 2000:  # Jaeger's cap on tracked operations
                    return False
                limiter = RateLimiter(strategy.lower_bound_per_second, self._clock)
                self._lower_bounds[operation] = limiter
            return limiter.allow()
        return False


def parse_strategy(data: bytes) -> Strategy:
    """A strategy from Jaeger's JSON (`strategyType` by name or number); ValueError if none."""
    if len(data) > MAX_STRATEGY_BYTES:
        raise ValueError("sampling strategy document too large")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"sampling strategy is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("sampling strategy must be a JSON object")
    per_op = doc.get("operationSampling")
    if isinstance(per_op, dict):
        operations: dict[str, float] = {}
        for item in per_op.get("perOperationStrategies") or ():
            if not isinstance(item, dict) or not isinstance(item.get("operation"), str):
                continue
            rate = _rate(item.get("probabilisticSampling"), "samplingRate")
            if rate is not None:
                operations[item["operation"]] = _probability(rate)
        default = _number(per_op.get("defaultSamplingProbability"))
        return Strategy(
            probability=_probability(default) if default is not None else None,
            operations=operations,
            lower_bound_per_second=max(_number(per_op.get("defaultLowerBoundTracesPerSecond"))
                                       or 0.0, 0.0),
        )  # fmt: skip
    kind = doc.get("strategyType")
    if kind in ("RATE_LIMITING", 1):
        per_second = _rate(doc.get("rateLimitingSampling"), "maxTracesPerSecond")
        if per_second is None or per_second < 0:
            raise ValueError("rate limiting strategy without maxTracesPerSecond")
        return Strategy(traces_per_second=per_second)
    rate = _rate(doc.get("probabilisticSampling"), "samplingRate")
    if rate is None:
        raise ValueError("probabilistic strategy without samplingRate")
    return Strategy(probability=_probability(rate))


def _rate(obj: object, key: str) -> float | None:
    return _number(obj.get(key)) if isinstance(obj, dict) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _probability(value: float) -> float:
    return min(max(value, 0.0), 1.0)
