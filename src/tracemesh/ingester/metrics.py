"""The ingester's Prometheus metrics, registered in the process's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class IngesterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.messages = Counter(
            "tracemesh_ingester_messages",
            "Kafka messages consumed, poison ones included.",
            ["topic"],
            registry=r,
        )
        self.poison = Counter(
            "tracemesh_ingester_poison_messages",
            "Messages that could not be decoded: counted, logged and skipped.",
            ["topic"],
            registry=r,
        )
        self.spans = Counter(
            "tracemesh_ingester_spans",
            "Spans the ingester wrote to storage (a redelivered span counts again).",
            ["topic"],
            registry=r,
        )
        self.spans_rejected = Counter(
            "tracemesh_ingester_spans_rejected",
            "Spans in decodable messages refused as invalid (zero ids, no start time...).",
            ["topic"],
            registry=r,
        )
        self.commits = Counter(
            "tracemesh_ingester_commits",
            "Offset commits after a batch was stored.",
            ["topic"],
            registry=r,
        )
        self.commit_failures = Counter(
            "tracemesh_ingester_commit_failures",
            "Offset commits the group refused or could not reach; the batch is redelivered.",
            ["topic"],
            registry=r,
        )
        self.lag = Gauge(
            "tracemesh_ingester_consumer_lag",
            "Messages in the partition after the last committed offset (from client statistics).",
            ["topic", "partition"],
            registry=r,
        )
        self.spans_per_second = Gauge(
            "tracemesh_ingester_spans_per_second",
            "Spans written to storage per second, over the last 10 seconds.",
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "tracemesh_ingester_assigned_partitions",
            "Partitions this ingester owns in its consumer group.",
            registry=r,
        )
