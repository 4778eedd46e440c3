"""A sidecar's or gateway's Prometheus metrics: Istio's standard request metrics
(`istio_requests_total`, `istio_request_duration_milliseconds`) with Istio's label names, and the
span reporter's own counts (reported, dropped by reason, failed sends, buffer use).

Labels follow Istio's standard metrics where the proxy knows the value; what only Istio's peer
metadata exchange would tell (the caller's workload, seen from an inbound sidecar) is `unknown`,
as Istio writes it when the exchange fails. The reporter's counts are plain integers on the
`Reporter`, read at scrape time, so reporting a span costs no metric update.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from tracemesh.mesh.handler import Exchange
from tracemesh.mesh.reporter import Reporter
from tracemesh.mesh.strategy_poller import StrategyPoller
from tracemesh.mesh.tracing import ProxyIdentity

UNKNOWN = "unknown"
SOURCE, DESTINATION = "source", "destination"  # Istio's `reporter` label values
REQUEST_LABELS = (
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "destination_workload",
    "destination_service",
    "destination_service_name",
    "destination_canonical_service",
    "destination_canonical_revision",
    "request_protocol",
    "response_code",
    "response_flags",
)
# Istio's default buckets for istio_request_duration_milliseconds.
DURATION_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
                       60000, 300000, 600000, 1800000, 3600000)  # fmt: skip


class ProxyMetrics:
    """One registry per proxy process (so tests can run several in one interpreter)."""

    def __init__(self, identity: ProxyIdentity) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.identity = identity
        self.workload = (
            f"{identity.service}-{identity.version}"
            if identity.version != "latest"
            else identity.service
        )
        self._requests = _RequestStats()
        self.registry.register(self._requests)
        self._stats = _ReporterStats()
        self.registry.register(self._stats)

    def watch(self, reporter: Reporter | None, poller: StrategyPoller | None = None) -> None:
        """Expose `reporter`'s (and `poller`'s) counts at every scrape."""
        self._stats.reporter = reporter
        self._stats.poller = poller

    def record(
        self, reporter: str, exchange: Exchange, service: str, revision: str = UNKNOWN
    ) -> None:
        """Count one finished exchange. `reporter` is SOURCE for calls this proxy makes
        (outbound, gateway) and DESTINATION for calls it receives (inbound); `service` is the
        destination service, `revision` its version where known."""
        me = self.identity
        if reporter == SOURCE:
            source = (self.workload, me.service, me.version)
            destination = (UNKNOWN, service, service, service, revision)
        else:
            source = (UNKNOWN, UNKNOWN, UNKNOWN)
            destination = (self.workload, me.service, me.service, me.service, me.version)
        protocol = "grpc" if "grpc" in exchange.state else "http"  # set by h2_downstream
        key = (reporter, *source, *destination, protocol, str(exchange.status), exchange.flags)
        self._requests.add(key, exchange.duration * 1000.0)


_BOUNDS: tuple[str, ...] = tuple(
    floatToGoString(bound)  # type: ignore[no-untyped-call]
    for bound in (*DURATION_BUCKETS_MS, math.inf)
)
"""The buckets' `le` labels, written as prometheus_client writes them."""


class _Series:
    """One label set's count, duration sum and histogram bucket counts (not cumulative)."""

    __slots__ = ("buckets", "count", "created", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * (len(DURATION_BUCKETS_MS) + 1)  # the last one is +Inf
        self.created = time.time()


class _RequestStats(Collector):
    """Istio's request count and duration histogram, kept as plain numbers and turned into
    metric families only at scrape time: a request costs a dict lookup and three additions,
    where prometheus_client's Counter and Histogram cost several locked updates."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, ...], _Series] = {}

    def add(self, key: tuple[str, ...], milliseconds: float) -> None:
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= 10_000:  # a label explosion costs memory, not the proxy
                self._series.clear()
            series = self._series[key] = _Series()
        series.count += 1
        series.total += milliseconds
        series.buckets[bisect_left(DURATION_BUCKETS_MS, milliseconds)] += 1

    def describe(self) -> list[CounterMetricFamily | HistogramMetricFamily]:
        return []

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        items = list(self._series.items())  # scrapes may run on another thread
        requests = CounterMetricFamily(
            "istio_requests",
            "Requests through the proxy (Istio's standard metric).",
            labels=REQUEST_LABELS,
        )
        duration = HistogramMetricFamily(
            "istio_request_duration_milliseconds",
            "Time from the first request byte to the last response byte, in milliseconds.",
            labels=REQUEST_LABELS,
        )
        for key, series in items:
            labels = list(key)
            requests.add_metric(labels, series.count, created=series.created)
            cumulative, buckets = 0, []
            for bound, count in zip(_BOUNDS, series.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            duration.add_metric(labels, buckets, series.total)
            duration.samples.append(Sample(f"{duration.name}_created",
                                           dict(zip(REQUEST_LABELS, key, strict=True)),
                                           series.created))  # fmt: skip
        yield requests
        yield duration


class _ReporterStats(Collector):
    def __init__(self) -> None:
        self.reporter: Reporter | None = None
        self.poller: StrategyPoller | None = None

    def describe(self) -> list[CounterMetricFamily | GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        reporter = self.reporter
        if reporter is not None:
            yield CounterMetricFamily(
                "tracemesh_proxy_spans_reported",
                "Spans the collector acknowledged.",
                value=reporter.sent,
            )
            dropped = CounterMetricFamily(
                "tracemesh_proxy_spans_dropped",
                "Spans never delivered: buffer_full (the collector is slow or away), rejected "
                "(refused by the collector), shutdown (still held at exit).",
                labels=["reason"],
            )
            for reason, count in sorted(reporter.dropped.items()):
                dropped.add_metric([reason], count)
            yield dropped
            yield CounterMetricFamily(
                "tracemesh_proxy_span_export_failures",
                "Span export attempts that failed and were retried.",
                value=reporter.failures,
            )
            yield GaugeMetricFamily(
                "tracemesh_proxy_span_buffer_spans", "Spans held for the collector.",
                value=reporter.held,
            )  # fmt: skip
            yield GaugeMetricFamily(
                "tracemesh_proxy_span_buffer_capacity", "Spans held for the collector at most.",
                value=reporter.bound,
            )  # fmt: skip
        poller = self.poller
        if poller is not None:
            fetches = CounterMetricFamily(
                "tracemesh_proxy_sampling_strategy_fetches",
                "Remote sampling strategy fetches, by result.",
                labels=["result"],
            )
            fetches.add_metric(["ok"], poller.fetches)
            fetches.add_metric(["failed"], poller.failures)
            yield fetches
