"""The proxy's Istio metrics read exactly as prometheus_client's own Counter and Histogram would
render the same requests (they are kept as plain numbers and rendered at scrape time)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tracemesh.mesh.handler import Exchange
from tracemesh.mesh.http1 import RequestHead
from tracemesh.mesh.proxy_metrics import (
    DESTINATION,
    DURATION_BUCKETS_MS,
    REQUEST_LABELS,
    SOURCE,
    ProxyMetrics,
)
from tracemesh.mesh.tracing import ProxyIdentity

IDENTITY = ProxyIdentity("reviews", labels={"version": "v2"})
requests = st.lists(
    st.tuples(
        st.sampled_from([SOURCE, DESTINATION]),
        st.sampled_from([200, 404, 503]),
        st.sampled_from([*DURATION_BUCKETS_MS[:6], 0.0]) | st.floats(0, 4e6),
    ),
    max_size=30,
)


def _rendered(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return sorted(
        re.sub(r"^(\S+_created\{.*\}) .*$", r"\1 T", line)  # creation times differ
        for line in text.splitlines()
        if "istio_request" in line
    )


@settings(max_examples=40)
@given(requests)
def test_rendered_as_prometheus_client_renders_them(sent: list[tuple[str, int, float]]) -> None:
    metrics = ProxyMetrics(IDENTITY)
    reference = CollectorRegistry()
    counter = Counter("istio_requests", "Requests through the proxy (Istio's standard metric).",
                      REQUEST_LABELS, registry=reference)  # fmt: skip
    histogram = Histogram(
        "istio_request_duration_milliseconds",
        "Time from the first request byte to the last response byte, in milliseconds.",
        REQUEST_LABELS, buckets=DURATION_BUCKETS_MS, registry=reference,
    )  # fmt: skip
    head = RequestHead(b"GET", b"/", b"1.1", [], True)
    for reporter, status, milliseconds in sent:
        exchange = Exchange(head, ("10.0.0.1", 1), 0, 100.0, status=status)
        exchange.end = exchange.start + milliseconds / 1000.0
        metrics.record(reporter, exchange, "ratings", "v1")
        if reporter == SOURCE:
            labels = (reporter, "reviews-v2", "reviews", "v2", "unknown", "ratings", "ratings",
                      "ratings", "v1", "http", str(status), "-")  # fmt: skip
        else:
            labels = (reporter, "unknown", "unknown", "unknown", "reviews-v2", "reviews",
                      "reviews", "reviews", "v2", "http", str(status), "-")  # fmt: skip
        counter.labels(*labels).inc()
        histogram.labels(*labels).observe(exchange.duration * 1000.0)
    assert _rendered(metrics.registry) == _rendered(reference)
