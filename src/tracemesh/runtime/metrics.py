"""tracemesh's own Prometheus metrics, in a registry per server so tests can run several."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """All metric families; labels say which receiver and format a count belongs to."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.spans_received = Counter(
            "tracemesh_spans_received",
            "Spans accepted by a receiver.",
            ["receiver", "format"],
            registry=r,
        )
        self.spans_rejected = Counter(
            "tracemesh_spans_rejected",
            "Spans refused alone while the rest of their batch was stored, by reason: "
            "invalid_trace_id, invalid_span_id, invalid_parent_id, no_start_time, "
            "start_out_of_range, invalid_span.",
            ["receiver", "format", "reason"],
            registry=r,
        )
        self.spans_corrected = Counter(
            "tracemesh_spans_corrected",
            "Spans stored with a correction noted in their warnings, by correction: "
            "invalid_utf8, empty_span_name, missing_service_name, negative_duration, "
            "end_out_of_range.",
            ["receiver", "format", "correction"],
            registry=r,
        )
        self.spans_dropped = Counter(
            "tracemesh_spans_dropped",
            "Spans refused because the pipeline queue was full.",
            ["receiver", "format"],
            registry=r,
        )
        self.spans_lost = Counter(
            "tracemesh_spans_lost",
            "Acknowledged spans storage never took, after every retry. Should stay 0.",
            ["storage"],
            registry=r,
        )
        self.requests_failed = Counter(
            "tracemesh_receiver_requests_failed",
            "Requests refused as malformed, oversized or of a wrong type.",
            ["receiver", "format", "reason"],
            registry=r,
        )
        self.udp_packets_received = Counter(
            "tracemesh_udp_packets_received",
            "Datagrams that reached a UDP receiver (agent ports 6831, 6832, 5775).",
            ["receiver", "format"],
            registry=r,
        )
        self.udp_packets_dropped = Counter(
            "tracemesh_udp_packets_dropped",
            "Datagrams a UDP receiver could not store: malformed, too_large, socket_buffer_full, "
            "queue_full, shutting_down.",
            ["receiver", "format", "reason"],
            registry=r,
        )
        self.queue_length = Gauge(
            "tracemesh_queue_length", "Spans waiting in the pipeline queue.", registry=r
        )
        self.queue_capacity = Gauge(
            "tracemesh_queue_capacity", "Spans the pipeline queue holds at most.", registry=r
        )
        self.spans_written = Counter(
            "tracemesh_spans_written",
            "Spans handed to storage successfully.",
            ["storage"],
            registry=r,
        )
        self.write_failures = Counter(
            "tracemesh_storage_write_failures",
            "Batches storage failed to write.",
            ["storage"],
            registry=r,
        )
        self.traces_stored = Gauge(
            "tracemesh_traces_stored", "Traces held by storage now.", ["storage"], registry=r
        )
        self.spans_stored = Gauge(
            "tracemesh_spans_stored", "Spans held by storage now.", ["storage"], registry=r
        )
        self.sampling_requests = Counter(
            "tracemesh_sampling_requests",
            "Sampling strategy requests answered, by endpoint and status code.",
            ["endpoint", "status"],
            registry=r,
        )
        self.forwarder_spans_sent = Counter(
            "tracemesh_forwarder_spans_sent",
            "Spans the agent forwarded to a collector, which acknowledged them.",
            registry=r,
        )
        self.forwarder_send_failures = Counter(
            "tracemesh_forwarder_send_failures",
            "Export calls from the agent to its collector that failed, by gRPC status code.",
            ["code"],
            registry=r,
        )
        self.forwarder_buffer_length = Gauge(
            "tracemesh_forwarder_buffer_length",
            "Spans the agent holds for its collector, in flight included.",
            registry=r,
        )
        self.forwarder_buffer_capacity = Gauge(
            "tracemesh_forwarder_buffer_capacity",
            "Spans the agent holds for its collector at most.",
            registry=r,
        )
        self.query_latency = Histogram(
            "tracemesh_query_latency_seconds",
            "Time to answer a query API request.",
            ["endpoint", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
