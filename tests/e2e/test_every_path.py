"""One logical trace sent through every way in (OTLP, Jaeger UDP/HTTP/gRPC, Zipkin, the agent)
reads back the same through `/api/traces/{id}`; real jaeger-client and OpenTelemetry Zipkin
exporters reach a real all-in-one, directly and through `tracemesh agent`."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind as SdkKind
from opentelemetry.trace import set_span_in_context

from tests.e2e.server import Server, start
from tests.unit.collector.jaeger_tracers import jaeger_tracer
from tracemesh.codecs import jaeger_proto, jaeger_thrift, otlp_proto, zipkin_json, zipkin_proto
from tracemesh.model.span import Event, Resource, Scope, Span, SpanKind

T0 = (time.time_ns() // 1000 - 30_000_000) * 1000  # 30 s ago, whole microseconds
OTLP_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
POST_SPANS = "/jaeger.api_v2.CollectorService/PostSpans"


def logical_trace(trace_id: bytes) -> list[Span]:
    """frontend `GET /checkout` (server) -> backend `charge` (server), with tags and a log."""
    front = Resource({"service.name": "frontend", "host.name": "web-1"})
    back = Resource({"service.name": "backend", "host.name": "pay-1"})
    root = Span(
        trace_id, b"\x00\x00\x00\x00\x00\x00\x01\x01", "GET /checkout", T0, T0 + 9_000_000,
        kind=SpanKind.SERVER,
        attributes={"http.method": "GET", "http.status_code": 200, "ratio": 0.5, "cached": True},
        events=[Event(T0 + 1_000_000, "cart loaded", {"items": "3"})],
        resource=front, scope=Scope(), flags=1,
    )  # fmt: skip
    child = Span(
        trace_id, b"\x00\x00\x00\x00\x00\x00\x02\x02", "charge", T0 + 2_000_000, T0 + 7_000_000,
        parent_span_id=root.span_id, kind=SpanKind.SERVER,
        attributes={"payment.provider": "acme"}, resource=back, scope=Scope(), flags=1,
    )  # fmt: skip
    return [root, child]


def by_service(spans: list[Span]) -> list[list[Span]]:
    groups: dict[str, list[Span]] = {}
    for span in spans:
        groups.setdefault(span.service_name, []).append(span)
    return list(groups.values())


def send_otlp_grpc(srv: Server, spans: list[Span]) -> None:
    with grpc.insecure_channel(srv.otlp_grpc) as channel:
        body = otlp_proto.request_from_spans(spans).SerializeToString()
        channel.unary_unary(OTLP_EXPORT)(body, timeout=10)


def send_otlp_http(srv: Server, spans: list[Span]) -> None:
    body = otlp_proto.request_from_spans(spans).SerializeToString()
    response = httpx.post(srv.otlp_http, content=body,
                          headers={"Content-Type": "application/x-protobuf"})  # fmt: skip
    assert response.status_code == 200, response.text


def udp(port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, ("127.0.0.1", port))


def send_udp_compact(srv: Server, spans: list[Span]) -> None:
    for group in by_service(spans):
        udp(srv.ports["jaeger_compact"], jaeger_thrift.emit_batch_message(group, "compact"))


def send_udp_binary(srv: Server, spans: list[Span]) -> None:
    for group in by_service(spans):
        udp(srv.ports["jaeger_binary"], jaeger_thrift.emit_batch_message(group, "binary"))


def send_thrift_http(srv: Server, spans: list[Span]) -> None:
    for group in by_service(spans):
        response = httpx.post(
            f"http://127.0.0.1:{srv.ports['jaeger_http']}/api/traces",
            content=jaeger_thrift.batch_to_thrift(group, "binary"),
            headers={"Content-Type": "application/vnd.apache.thrift.binary"},
        )
        assert response.status_code == 202, response.text


def send_jaeger_grpc(srv: Server, spans: list[Span]) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{srv.ports['jaeger_grpc']}") as channel:
        body = jaeger_proto.request_from_spans(spans).SerializeToString()
        channel.unary_unary(POST_SPANS)(body, timeout=10)


def send_zipkin(srv: Server, spans: list[Span], encode: Callable[[list[Span]], bytes],
                ctype: str) -> None:  # fmt: skip
    response = httpx.post(f"http://127.0.0.1:{srv.ports['zipkin']}/api/v2/spans",
                          content=encode(spans), headers={"Content-Type": ctype})  # fmt: skip
    assert response.status_code == 202, response.text


SENDERS: dict[str, Callable[[Server, list[Span]], None]] = {
    "otlp_grpc": send_otlp_grpc,
    "otlp_http": send_otlp_http,
    "jaeger_udp_compact": send_udp_compact,
    "jaeger_udp_binary": send_udp_binary,
    "jaeger_thrift_http": send_thrift_http,
    "jaeger_grpc": send_jaeger_grpc,
}
ZIPKIN_SENDERS: dict[str, Callable[[Server, list[Span]], None]] = {
    "zipkin_json": lambda s, spans: send_zipkin(s, spans, zipkin_json.encode_spans,
                                                "application/json"),
    "zipkin_proto": lambda s, spans: send_zipkin(s, spans, zipkin_proto.encode_spans,
                                                 "application/x-protobuf"),
}  # fmt: skip


def fetch(srv: Server, trace_hex: str, spans: int = 2, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{srv.query}/api/traces/{trace_hex}", timeout=10)
        if response.status_code == 200:
            trace: dict[str, Any] = response.json()["data"][0]
            if len(trace["spans"]) >= spans:
                return trace
        time.sleep(0.05)
    raise AssertionError(f"trace {trace_hex} never had {spans} spans")


def normalized(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """Spans in a comparable form: ids stripped of the trace id, process inlined, sorted."""
    out = []
    for span in trace["spans"]:
        process = trace["processes"][span["processID"]]
        out.append({
            "spanID": span["spanID"], "operationName": span["operationName"],
            "references": [r["spanID"] for r in span["references"]],
            "startTime": span["startTime"], "duration": span["duration"],
            "tags": sorted((t["key"], t["type"], str(t["value"])) for t in span["tags"]),
            "logs": [(log["timestamp"], sorted((f["key"], str(f["value"])) for f in log["fields"]))
                     for log in span["logs"]],
            "service": process["serviceName"],
            "process": sorted((t["key"], str(t["value"])) for t in process["tags"]),
        })  # fmt: skip
    return sorted(out, key=lambda s: s["spanID"])


def tag_map(span: dict[str, Any]) -> dict[str, str]:
    return {key: value for key, _, value in span["tags"]}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start(Path(tmp_path_factory.mktemp("every-path")))
    yield server
    assert server.stop() == 0, server.log()


def test_the_same_trace_reads_back_the_same_through_every_jaeger_and_otlp_path(srv: Server) -> None:
    results = {}
    for number, (name, send) in enumerate(SENDERS.items(), start=1):
        trace_id = bytes(15) + bytes([number])
        send(srv, logical_trace(trace_id))
        results[name] = normalized(fetch(srv, trace_id.hex()[-16:]))
    reference = results.pop("otlp_grpc")
    assert [s["operationName"] for s in reference] == ["GET /checkout", "charge"]
    assert reference[1]["references"] == [reference[0]["spanID"]]
    assert ("http.status_code", "int64", "200") in reference[0]["tags"]
    for name, spans in results.items():
        assert spans == reference, name


def test_zipkin_paths_keep_structure_timing_and_tag_values(srv: Server) -> None:
    for number, (name, send) in enumerate(ZIPKIN_SENDERS.items(), start=20):
        trace_id = bytes(15) + bytes([number])
        send(srv, logical_trace(trace_id))
        spans = normalized(fetch(srv, trace_id.hex()[-16:]))
        root, child = spans
        assert (root["operationName"], child["operationName"]) == ("GET /checkout", "charge"), name
        assert (root["service"], child["service"]) == ("frontend", "backend"), name
        assert child["references"] == [root["spanID"]], name
        assert (root["startTime"], root["duration"]) == (T0 // 1000, 9000), name
        assert tag_map(root)["http.status_code"] == "200", name  # Zipkin tags are strings
        assert tag_map(root)["span.kind"] == "server", name
        assert root["logs"][0][0] == (T0 + 1_000_000) // 1000, name


def send_with_jaeger_client(service: str, reporting_port: int, sampling_port: int) -> str:
    agent = {"reporting_host": "127.0.0.1", "reporting_port": reporting_port,
             "sampling_port": sampling_port}  # fmt: skip
    with (
        jaeger_tracer(reporting_port, service, local_agent=agent) as tracer,
        tracer.start_span("checkout") as root,
    ):
        root.set_tag("user.tier", "gold")
        root.log_kv({"event": "cart loaded", "items": 3})
        with tracer.start_span("charge", child_of=root) as child:
            child.set_tag("amount", 12.5)
    return f"{root.trace_id:x}"


def check_jaeger_client_trace(srv: Server, trace_hex: str, service: str) -> None:
    trace = fetch(srv, trace_hex)
    spans = {s["operationName"]: s for s in trace["spans"]}
    assert set(spans) == {"checkout", "charge"}
    assert spans["charge"]["references"][0]["spanID"] == spans["checkout"]["spanID"]
    assert {"key": "amount", "type": "float64", "value": 12.5} in spans["charge"]["tags"]
    fields = {f["key"]: f["value"] for f in spans["checkout"]["logs"][0]["fields"]}
    assert fields == {"event": "cart loaded", "items": 3}
    (process,) = trace["processes"].values()
    assert process["serviceName"] == service
    # jaeger-client's `jaeger.version` becomes `opencensus.exporterversion`, as in Jaeger v2
    tags = {t["key"]: t["value"] for t in process["tags"]}
    assert tags["opencensus.exporterversion"].startswith("Jaeger-Python-")


def test_jaeger_client_straight_to_all_in_one(srv: Server) -> None:
    trace_hex = send_with_jaeger_client("jc-direct", srv.ports["jaeger_compact"],
                                        srv.ports["sampling"])  # fmt: skip
    check_jaeger_client_trace(srv, trace_hex, "jc-direct")


def test_jaeger_client_through_the_agent(srv: Server, tmp_path: Path) -> None:
    agent = start(tmp_path, "--agent.collector", srv.otlp_grpc, command="agent")
    try:
        trace_hex = send_with_jaeger_client("jc-agent", agent.ports["jaeger_compact"],
                                            agent.ports["sampling"])  # fmt: skip
        check_jaeger_client_trace(srv, trace_hex, "jc-agent")
    finally:
        assert agent.stop() == 0, agent.log()


def test_otel_zipkin_json_exporter(srv: Server) -> None:
    provider = TracerProvider(resource=SdkResource.create({"service.name": "zipkin-otel"}))
    exporter = ZipkinExporter(endpoint=f"http://127.0.0.1:{srv.ports['zipkin']}/api/v2/spans")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("zipkin-test")
    root = tracer.start_span("GET /z", kind=SdkKind.SERVER)
    root.set_attribute("http.status_code", 503)
    child = tracer.start_span("db", context=set_span_in_context(root), kind=SdkKind.CLIENT)
    child.add_event("query sent", {"rows": 2})
    child.end()
    root.end()
    provider.shutdown()
    trace = fetch(srv, f"{root.get_span_context().trace_id:032x}")
    spans = {s["operationName"]: s for s in trace["spans"]}
    assert spans["db"]["references"][0]["spanID"] == spans["GET /z"]["spanID"]
    assert {"key": "span.kind", "type": "string", "value": "client"} in spans["db"]["tags"]
    assert spans["db"]["logs"][0]["fields"][0]["value"].startswith("query sent")


def test_sampling_strategies_on_every_endpoint(srv: Server) -> None:
    proto_json = httpx.get(f"http://127.0.0.1:{srv.ports['sampling']}/sampling",
                           params={"service": "any"}).json()  # fmt: skip
    assert proto_json == {"strategyType": "PROBABILISTIC",
                          "probabilisticSampling": {"samplingRate": 1}}  # fmt: skip
    legacy = httpx.get(f"http://127.0.0.1:{srv.ports['sampling']}/",
                       params={"service": "any"}).json()  # fmt: skip
    assert legacy["strategyType"] == 0
    collector = httpx.get(f"http://127.0.0.1:{srv.ports['jaeger_http']}/api/sampling",
                          params={"service": "any"}).json()  # fmt: skip
    assert collector == proto_json
    twice = httpx.get(f"http://127.0.0.1:{srv.ports['sampling']}/sampling?service=a&service=b")
    assert twice.status_code == 400
