"""Nothing a client sends is lost for a detail: a real all-in-one keeps whole batches with text
that is not UTF-8 on every way in, spans that end before they start, empty names and resources
without `service.name`, and counts each correction and refusal by reason in /metrics."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.e2e.server import Server
from tracemesh.codecs import jaeger_proto, jaeger_thrift, otlp_proto, zipkin_json, zipkin_proto
from tracemesh.codecs.otlp_json import traces_data_json
from tracemesh.model.span import Resource, Scope, Span, SpanKind

OTLP_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
POST_SPANS = "/jaeger.api_v2.CollectorService/PostSpans"
T0 = (time.time_ns() // 1000 - 60_000_000) * 1000  # a minute ago, whole microseconds

# Placeholders swapped for invalid UTF-8 of the same length after encoding, so every wire
# format's framing stays right and only the text is broken.
BROKEN = {b"BADNAME1": b"BAD\xffAME1", b"BADKEY01": b"BAD\xfeEY01", b"BADVAL01": b"BAD\xc3\x28L01"}


def spans(trace_id: bytes, service: str) -> list[Span]:
    resource = Resource({"service.name": service})
    bad = Span(
        trace_id, b"\x00" * 7 + b"\x01", "BADNAME1", T0, T0 + 5_000_000, kind=SpanKind.SERVER,
        attributes={"BADKEY01": "fine", "payload": "BADVAL01"}, resource=resource, scope=Scope(),
    )  # fmt: skip
    good = Span(
        trace_id, b"\x00" * 7 + b"\x02", "clean", T0 + 1_000_000, T0 + 2_000_000,
        parent_span_id=bad.span_id, resource=resource, scope=Scope(),
    )  # fmt: skip
    return [bad, good]


def broken(data: bytes) -> bytes:
    for placeholder, bad in BROKEN.items():
        assert placeholder in data, placeholder
        data = data.replace(placeholder, bad)
    return data


def udp(port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, ("127.0.0.1", port))


def post(url: str, body: bytes, ctype: str, status: int) -> None:
    response = httpx.post(url, content=body, headers={"Content-Type": ctype}, timeout=10)
    assert response.status_code == status, response.text[:300]


def grpc_call(target: str, method: str, body: bytes) -> bytes:
    with grpc.insecure_channel(target) as channel:
        answer: bytes = channel.unary_unary(method)(body, timeout=10)
        return answer


Sender = Callable[[Server, list[Span]], None]
SENDERS: dict[str, Sender] = {
    "otlp_grpc": lambda srv, s: grpc_call(
        srv.otlp_grpc, OTLP_EXPORT, broken(otlp_proto.request_from_spans(s).SerializeToString())
    ),
    "otlp_http_proto": lambda srv, s: post(
        srv.otlp_http, broken(otlp_proto.request_from_spans(s).SerializeToString()),
        "application/x-protobuf", 200,
    ),
    "otlp_http_json": lambda srv, s: post(
        srv.otlp_http,
        broken(json.dumps(otlp_json_request(s)).encode()), "application/json", 200,
    ),
    "jaeger_grpc": lambda srv, s: grpc_call(
        f"127.0.0.1:{srv.ports['jaeger_grpc']}", POST_SPANS,
        broken(jaeger_proto.request_from_spans(s).SerializeToString()),
    ),
    "jaeger_thrift_http": lambda srv, s: post(
        f"http://127.0.0.1:{srv.ports['jaeger_http']}/api/traces",
        broken(jaeger_thrift.batch_to_thrift(s, "binary")),
        "application/vnd.apache.thrift.binary", 202,
    ),
    "jaeger_udp_compact": lambda srv, s: udp(
        srv.ports["jaeger_compact"], broken(jaeger_thrift.emit_batch_message(s, "compact"))
    ),
    "jaeger_udp_binary": lambda srv, s: udp(
        srv.ports["jaeger_binary"], broken(jaeger_thrift.emit_batch_message(s, "binary"))
    ),
    "zipkin_json": lambda srv, s: post(
        f"http://127.0.0.1:{srv.ports['zipkin']}/api/v2/spans",
        broken(zipkin_json.encode_spans(s)), "application/json", 202,
    ),
    "zipkin_proto": lambda srv, s: post(
        f"http://127.0.0.1:{srv.ports['zipkin']}/api/v2/spans",
        broken(zipkin_proto.encode_spans(s)), "application/x-protobuf", 202,
    ),
}  # fmt: skip


def otlp_json_request(s: list[Span]) -> dict[str, Any]:
    return traces_data_json(s)


def fetch(srv: Server, trace_hex: str, count: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{srv.query}/api/traces/{trace_hex}", timeout=10)
        if response.status_code == 200:
            trace: dict[str, Any] = response.json()["data"][0]
            if len(trace["spans"]) >= count:
                return trace
        time.sleep(0.05)
    raise AssertionError(f"trace {trace_hex} never had {count} spans:\n{srv.log()[-3000:]}")


def metric(srv: Server, name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels`."""
    total = 0.0
    for line in httpx.get(srv.admin + "/metrics", timeout=10).text.splitlines():
        if not line.startswith(name + "{"):
            continue
        head, value = line.rsplit(" ", 1)
        if all(f'{key}="{wanted}"' in head for key, wanted in labels.items()):
            total += float(value)
    return total


@pytest.mark.parametrize("path", sorted(SENDERS))
def test_text_that_is_not_utf8_costs_no_span(server: Server, path: str) -> None:
    trace_id = os.urandom(16)
    SENDERS[path](server, spans(trace_id, f"utf8-{path}"))
    trace = fetch(server, trace_id.hex(), 2)
    by_id = {span["spanID"][-2:]: span for span in trace["spans"]}
    bad, good = by_id["01"], by_id["02"]
    assert bad["operationName"] == "invalid-utf8-span-name"
    assert good["operationName"] == "clean" and not good["warnings"]
    warnings = " | ".join(bad["warnings"] or [])
    assert "span name was not valid UTF-8" in warnings
    assert "attribute key was not valid UTF-8" in warnings
    tags = {tag["key"]: tag for tag in bad["tags"]}
    renamed = [key for key in tags if key.startswith("invalid-utf8-key-")]
    assert len(renamed) == 1 and tags[renamed[0]]["value"] == "fine"
    assert "@jaeger@warnings" not in tags
    payload = tags["payload"]
    if path.startswith("zipkin"):  # Zipkin tags are strings: the bad bytes become U+FFFD
        assert payload["value"] == "BAD\ufffd(L01"
    else:  # Jaeger keeps the bytes: a binary tag
        assert payload["type"] == "binary"
        assert "attribute value was not valid UTF-8; stored as bytes" in warnings
    assert metric(server, "tracemesh_spans_corrected_total", correction="invalid_utf8") >= 1


def test_a_span_ending_before_it_starts_is_kept_corrected_and_counted(server: Server) -> None:
    trace_id = os.urandom(16)
    resource = Resource({"service.name": "negative-duration"})
    span = Span(trace_id, b"\x00" * 7 + b"\x05", "backwards", T0 + 3_000, T0, resource=resource)
    before = metric(server, "tracemesh_spans_corrected_total", correction="negative_duration")
    post(server.otlp_http, otlp_proto.request_from_spans([span]).SerializeToString(),
         "application/x-protobuf", 200)  # fmt: skip
    stored = fetch(server, trace_id.hex(), 1)["spans"][0]
    assert stored["duration"] == 0 and stored["startTime"] == (T0 + 3_000) // 1000
    assert stored["warnings"] == [
        "end time was 3000 ns before the start time; end set to the start"
    ]
    after = metric(server, "tracemesh_spans_corrected_total", correction="negative_duration")
    assert after == before + 1


def test_missing_service_and_empty_name_are_stored_under_jaeger_names(server: Server) -> None:
    trace_id = os.urandom(16)
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()  # no resource attributes at all
    scope_spans.spans.add(
        trace_id=trace_id, span_id=b"\x00" * 7 + b"\x07", name="",
        start_time_unix_nano=T0, end_time_unix_nano=T0 + 1_000,
    )  # fmt: skip
    post(server.otlp_http, request.SerializeToString(), "application/x-protobuf", 200)
    stored = fetch(server, trace_id.hex(), 1)
    span = stored["spans"][0]
    assert span["operationName"] == "empty-span-name"
    assert stored["processes"][span["processID"]]["serviceName"] == "missing-service-name"
    services = httpx.get(f"{server.query}/api/services", timeout=10).json()["data"]
    assert "missing-service-name" in services
    found = httpx.get(
        f"{server.query}/api/traces",
        params={"service": "missing-service-name", "operation": "empty-span-name",
                "lookback": "2h", "limit": "100"},
        timeout=10,
    ).json()["data"]  # fmt: skip
    assert trace_id.hex() in {trace["traceID"] for trace in found}


def test_times_past_2262_are_refused_alone_or_clamped(server: Server) -> None:
    trace_id = os.urandom(16)
    resource = Resource({"service.name": "far-future"})
    fine = Span(trace_id, b"\x00" * 7 + b"\x01", "fine", T0, T0 + 1_000, resource=resource)
    late_end = Span(trace_id, b"\x00" * 7 + b"\x02", "late-end", T0, 2**64 - 1, resource=resource)
    late_start = Span(trace_id, b"\x00" * 7 + b"\x03", "late", 2**63, 2**63 + 1, resource=resource)
    before = metric(server, "tracemesh_spans_rejected_total", reason="start_out_of_range")
    body = otlp_proto.request_from_spans([fine, late_end, late_start]).SerializeToString()
    ExportTraceServiceResponse.FromString(grpc_call(server.otlp_grpc, OTLP_EXPORT, body))
    stored = {s["operationName"]: s for s in fetch(server, trace_id.hex(), 2)["spans"]}
    assert set(stored) == {"fine", "late-end"}
    assert stored["late-end"]["startTime"] + stored["late-end"]["duration"] <= (2**63 - 1) // 1000
    assert "past the year 2262" in stored["late-end"]["warnings"][0]
    after = metric(server, "tracemesh_spans_rejected_total", reason="start_out_of_range")
    assert after == before + 1
    assert "start_out_of_range" in server.log()  # logged (at a bounded rate), with the reason
