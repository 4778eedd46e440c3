"""Hostile input against the real process: each gets its error and the server keeps serving."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.e2e.server import Server, start


def one_span_request(
    trace_id: bytes, span_id: bytes, start: int, end: int, value: str = "v"
) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "hostile-test"
    span = rs.scope_spans.add().spans.add(
        trace_id=trace_id,
        span_id=span_id,
        name="op",
        start_time_unix_nano=start,
        end_time_unix_nano=end,
    )
    span.attributes.add(key="big").value.string_value = value
    return request.SerializeToString()


PROTO = {"Content-Type": "application/x-protobuf"}


def assert_still_serving(server: Server) -> None:
    now = time.time_ns()
    body = one_span_request(b"\x0a" * 16, b"\x0b" * 8, now, now + 10)
    assert httpx.post(server.otlp_http, content=body, headers=PROTO, timeout=10).status_code == 200
    assert httpx.get(server.admin + "/health", timeout=5).status_code == 200


def test_hostile_otlp_http_bodies(server: Server) -> None:
    now = time.time_ns()
    good = one_span_request(b"\x01" * 16, b"\x02" * 8, now, now + 1000)
    cases = [
        (good[: len(good) // 2], PROTO, 400),
        (b"\xff" * 100, PROTO, 400),
        (good, {"Content-Type": "text/plain"}, 415),
        (b"{not json", {"Content-Type": "application/json"}, 400),
        (b"\0" * (50 * 1024 * 1024), PROTO, 413),
        (gzip.compress(b"\0" * (200 * 1024 * 1024)), {**PROTO, "Content-Encoding": "gzip"}, 413),
    ]
    for body, headers, status in cases:
        response = httpx.post(server.otlp_http, content=body, headers=headers, timeout=60)
        assert response.status_code == status, (headers, status, response.text[:200])
    assert_still_serving(server)


@pytest.mark.parametrize(
    ("trace_id", "span_id", "start", "end"),
    [
        (b"\0" * 16, b"\x02" * 8, 1, 2),  # all-zero trace id
        (b"\x01" * 16, b"\0" * 8, 1, 2),  # all-zero span id
        (b"\x01" * 5, b"\x02" * 8, 1, 2),  # wrong length
        (b"\x01" * 16, b"\x02" * 8, 0, 1_000),  # no start time
    ],  # a negative duration is kept and corrected: tests/e2e/test_lenient_ingest.py
)
def test_invalid_spans_are_rejected_as_partial_success(
    server: Server, trace_id: bytes, span_id: bytes, start: int, end: int
) -> None:
    body = one_span_request(trace_id, span_id, start, end)
    response = httpx.post(server.otlp_http, content=body, headers=PROTO, timeout=10)
    assert response.status_code == 200
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 1
    assert parsed.partial_success.error_message
    assert_still_serving(server)


def test_one_megabyte_attribute_is_stored(server: Server) -> None:
    now = time.time_ns()
    value = "x" * (1024 * 1024)
    body = one_span_request(b"\x03" * 16, b"\x04" * 8, now, now + 5, value)
    assert httpx.post(server.otlp_http, content=body, headers=PROTO, timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = httpx.get(f"{server.query}/api/traces/{'03' * 16}", timeout=10)
        if response.status_code == 200:
            (span,) = response.json()["data"][0]["spans"]
            assert {"key": "big", "type": "string", "value": value} in span["tags"]
            return
        time.sleep(0.05)
    raise AssertionError("1 MB span never became readable")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/traces", {"service": "x", "tags": "{not json"}),
        ("/api/traces", {"service": "x", "tags": json.dumps(["a"])}),
        ("/api/traces", {"service": "x", "tag": "no-colon"}),
        ("/api/traces", {"service": "x", "minDuration": "fast"}),
        ("/api/traces", {"service": "x", "minDuration": "2s", "maxDuration": "1s"}),
        ("/api/traces", {"service": "x", "start": "yesterday"}),
        ("/api/traces", {"service": "x", "limit": "many"}),
        ("/api/traces", {}),
        ("/api/traces/not-hex", {}),
        ("/api/traces/" + "0" * 32, {}),
        ("/api/operations", {}),
        ("/api/dependencies", {"endTs": "later"}),
    ],
)
def test_bad_query_parameters_are_400_with_jaeger_errors(
    server: Server, path: str, params: dict[str, str]
) -> None:
    response = httpx.get(server.query + path, params=params, timeout=10)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["data"] is None and body["errors"][0]["code"] == 400 and body["errors"][0]["msg"]


def test_metrics_count_per_receiver_and_format(server: Server) -> None:
    assert_still_serving(server)
    text = httpx.get(server.admin + "/metrics", timeout=5).text
    assert 'tracemesh_spans_received_total{format="proto",receiver="otlp_http"}' in text
    assert "tracemesh_spans_rejected_total" in text
    assert "tracemesh_queue_length" in text
    assert "tracemesh_query_latency_seconds_bucket" in text
    stored = [
        line
        for line in text.splitlines()
        if line.startswith('tracemesh_spans_stored{storage="memory"}')
    ]
    assert stored and float(stored[0].split()[-1]) >= 1


def test_health_has_jaeger_keys(server: Server) -> None:
    body = httpx.get(server.admin + "/health", timeout=5).json()
    assert body["status"] == "Server available"
    assert body["upSince"].endswith("Z") and body["uptime"].endswith("s")


def test_sigterm_flushes_and_exits_cleanly(tmp_path: Path) -> None:
    srv = start(tmp_path)
    now = time.time_ns()
    for i in range(50):
        body = one_span_request(bytes([i + 1]) * 16, b"\x05" * 8, now, now + 5)
        assert httpx.post(srv.otlp_http, content=body, headers=PROTO, timeout=10).status_code == 200
    assert srv.stop() == 0
    log = srv.log()
    assert "shutting down" in log and "stopped" in log
