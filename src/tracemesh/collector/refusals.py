"""What a receiver refuses, counted by reason in /metrics and logged at a bounded rate.

Every receiver uses one `Refusals`: whole requests refused (malformed framing, oversize, wrong
type, a full queue) and single spans refused while the rest of their batch is stored.
"""

from __future__ import annotations

import logging

from tracemesh.runtime.metrics import Metrics
from tracemesh.runtime.ratelog import RateLimitedLog

log = logging.getLogger("tracemesh.receivers")

LOG_INTERVAL_SECONDS = 10.0

# Decoders explain a refused span in words; metrics want a short, bounded label.
_SPAN_REASONS = (
    ("parent", "invalid_parent_id"),
    ("trace id", "invalid_trace_id"),
    ("span id", "invalid_span_id"),
    ("no start", "no_start_time"),
    ("starts at", "start_out_of_range"),
    ("year", "start_out_of_range"),
    ("1970", "start_out_of_range"),
)


def span_reason(message: str) -> str:
    """The metric label for a decoder's explanation of a refused span."""
    lowered = message.lower()
    for words, reason in _SPAN_REASONS:
        if words in lowered:
            return reason
    return "invalid_span"


class Refusals:
    """Counts and logs what one receiver refuses; the log says each reason at most once per
    `LOG_INTERVAL_SECONDS`, with how many were held back."""

    def __init__(self, metrics: Metrics, receiver: str, interval: float = LOG_INTERVAL_SECONDS):
        self._metrics = metrics
        self._receiver = receiver
        self._log = RateLimitedLog(log, interval)

    def request(self, fmt: str, reason: str, message: str = "") -> None:
        self._metrics.requests_failed.labels(self._receiver, fmt, reason).inc()
        if reason != "disconnected":  # the client left: nothing to tell an operator
            self._log.warning(f"request:{fmt}:{reason}", "%s (%s): request refused (%s): %s",
                              self._receiver, fmt, reason, message[:300])  # fmt: skip

    def spans(self, fmt: str, count: int, message: str, reason: str = "") -> None:
        if count <= 0:
            return
        reason = reason or span_reason(message)
        self._metrics.spans_rejected.labels(self._receiver, fmt, reason).inc(count)
        self._log.warning(f"spans:{fmt}:{reason}", "%s (%s): %d span(s) refused (%s), e.g. %s",
                          self._receiver, fmt, count, reason, message[:300])  # fmt: skip

    def corrected(self, fmt: str, correction: str, count: int) -> None:
        self._metrics.spans_corrected.labels(self._receiver, fmt, correction).inc(count)
