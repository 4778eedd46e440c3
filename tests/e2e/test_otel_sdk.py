"""The real OpenTelemetry Python SDK sends a two-service trace over OTLP gRPC and HTTP; every field
is read back through the Jaeger API (/api/*) and api_v3 (/api/v3/*)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tests.e2e.server import Server

BIG = 2**53 + 7  # beyond JavaScript's safe integers: Jaeger JSON carries it as a string
T0 = time.time_ns() - 5_000_000_000  # explicit times make every duration exact


@dataclass
class Sent:
    trace_id: str  # 32 hex
    frontend_server: str
    frontend_client: str
    backend_server: str
    linked_trace_id: str
    linked_span_id: str


def provider(service: str, exporter: SpanExporter) -> TracerProvider:
    resource = Resource.create({"service.name": service, "host.name": f"{service}-host", "pid": 42})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


def send_trace(frontend_exporter: SpanExporter, backend_exporter: SpanExporter, tag: str) -> Sent:
    front_tp = provider(f"frontend-{tag}", frontend_exporter)
    back_tp = provider(f"backend-{tag}", backend_exporter)
    front = front_tp.get_tracer("shop.frontend", "1.2.3")
    back = back_tp.get_tracer("shop.backend", "0.9")

    other = front.start_span("unrelated", start_time=T0)
    other.end(end_time=T0 + 1_000)
    other_ctx = other.get_span_context()

    root = front.start_span("GET /checkout", kind=SpanKind.SERVER, start_time=T0)
    root.set_attributes(
        {
            "http.method": "GET",
            "http.status_code": 500,
            "ratio": 0.25,
            "cached": False,
            "big": BIG,
            "blob": b"\x00\xffhi",
            "labels": ["a", "b"],
            "codes": [1, 2, 3],
            "html": "<script>alert('x')</script>",
        }
    )
    client = front.start_span(
        "POST /charge",
        context=set_span_in_context(root),
        kind=SpanKind.CLIENT,
        start_time=T0 + 1_000_000,
    )
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=set_span_in_context(client))
    parent_ctx = TraceContextTextMapPropagator().extract(carrier)
    server = back.start_span(
        "charge card",
        context=parent_ctx,
        kind=SpanKind.SERVER,
        start_time=T0 + 2_000_000,
        links=[Link(other_ctx, {"link.reason": "retry-of"})],
    )
    server.add_event(
        "card rejected", {"decline.code": "insufficient_funds", "amount": 12}, T0 + 2_500_000
    )
    server.set_status(Status(StatusCode.ERROR, "card declined"))
    server.end(end_time=T0 + 3_000_000)
    client.end(end_time=T0 + 3_500_000)
    root.end(end_time=T0 + 4_000_000)
    for tp in (front_tp, back_tp):
        tp.force_flush()
        tp.shutdown()
    return Sent(
        trace_id=f"{root.get_span_context().trace_id:032x}",
        frontend_server=f"{root.get_span_context().span_id:016x}",
        frontend_client=f"{client.get_span_context().span_id:016x}",
        backend_server=f"{server.get_span_context().span_id:016x}",
        linked_trace_id=f"{other_ctx.trace_id:032x}",
        linked_span_id=f"{other_ctx.span_id:016x}",
    )


def get(server: Server, path: str, **params: Any) -> Any:
    response = httpx.get(server.query + path, params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_trace(server: Server, trace_id: str, spans: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = httpx.get(f"{server.query}/api/traces/{trace_id}", timeout=10)
        if response.status_code == 200 and len(response.json()["data"][0]["spans"]) >= spans:
            trace: dict[str, Any] = response.json()["data"][0]
            return trace
        time.sleep(0.05)
    raise AssertionError(f"trace {trace_id} never had {spans} spans")


def tags(items: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    return {t["key"]: (t["type"], t["value"]) for t in items}


@pytest.fixture(scope="module", params=["grpc", "http"])
def sent(request: pytest.FixtureRequest, server: Server) -> Sent:
    if request.param == "grpc":
        make: Any = lambda: GrpcExporter(endpoint=server.otlp_grpc, insecure=True)  # noqa: E731
    else:
        make = lambda: HttpExporter(endpoint=server.otlp_http)  # noqa: E731
    result = send_trace(make(), make(), request.param)
    wait_for_trace(server, result.trace_id, 3)
    return result


def test_trace_by_id_has_every_field(server: Server, sent: Sent) -> None:
    body = get(server, f"/api/traces/{sent.trace_id}")
    assert body["total"] == 0 and body["limit"] == 0 and body["offset"] == 0
    assert body["errors"] is None
    (trace,) = body["data"]
    assert trace["traceID"] == sent.trace_id
    spans = {s["spanID"]: s for s in trace["spans"]}
    assert set(spans) == {sent.frontend_server, sent.frontend_client, sent.backend_server}
    procs = trace["processes"]
    assert sorted(procs) == ["p1", "p2"]
    by_service = {p["serviceName"]: pid for pid, p in procs.items()}
    assert {k.split("-")[0] for k in by_service} == {"frontend", "backend"}
    front_proc = next(p for p in procs.values() if p["serviceName"].startswith("frontend"))
    assert tags(front_proc["tags"])["host.name"][1].startswith("frontend")
    assert tags(front_proc["tags"])["pid"] == ("int64", 42)

    root = spans[sent.frontend_server]
    assert root["operationName"] == "GET /checkout"
    assert root["references"] == []
    assert root.get("flags", 0) in (
        0,
        1,
    )  # the Python SDK does not put trace flags in OTLP span flags
    assert root["startTime"] == T0 // 1000
    assert root["duration"] == 4000
    assert root["processID"] == by_service[next(k for k in by_service if k.startswith("frontend"))]
    t = tags(root["tags"])
    assert t["http.method"] == ("string", "GET")
    assert t["http.status_code"] == ("int64", 500)
    assert t["ratio"] == ("float64", 0.25)
    assert t["cached"] == ("bool", False)
    assert t["big"] == ("int64", str(BIG))
    assert t["blob"] == ("binary", "AP9oaQ==")
    assert t["labels"] == ("string", '["a","b"]')
    assert t["codes"] == ("string", "[1,2,3]")
    assert t["html"] == ("string", "<script>alert('x')</script>")
    assert t["span.kind"] == ("string", "server")
    assert t["otel.scope.name"] == ("string", "shop.frontend")
    assert t["otel.scope.version"] == ("string", "1.2.3")

    client = spans[sent.frontend_client]
    assert client["references"] == [
        {"refType": "CHILD_OF", "traceID": sent.trace_id, "spanID": sent.frontend_server}
    ]
    assert tags(client["tags"])["span.kind"] == ("string", "client")
    assert client["duration"] == 2500

    back = spans[sent.backend_server]
    assert back["operationName"] == "charge card"
    assert back["references"][0] == {
        "refType": "CHILD_OF",
        "traceID": sent.trace_id,
        "spanID": sent.frontend_client,
    }
    assert back["references"][1] == {
        "refType": "FOLLOWS_FROM",
        "traceID": sent.linked_trace_id,
        "spanID": sent.linked_span_id,
    }
    bt = tags(back["tags"])
    assert bt["error"] == ("bool", True)
    assert bt["otel.status_code"] == ("string", "ERROR")
    assert bt["otel.status_description"] == ("string", "card declined")
    (log,) = back["logs"]
    assert log["timestamp"] == (T0 + 2_500_000) // 1000
    assert tags(log["fields"]) == {
        "event": ("string", "card rejected"),
        "decline.code": ("string", "insufficient_funds"),
        "amount": ("int64", 12),
    }


def test_search_finds_whole_trace_by_tags_error_and_duration(server: Server, sent: Sent) -> None:
    backend = next(
        p["serviceName"]
        for p in get(server, f"/api/traces/{sent.trace_id}")["data"][0]["processes"].values()
        if p["serviceName"].startswith("backend")
    )
    found = get(server, "/api/traces", service=backend, tags=json.dumps({"error": "true"}))
    assert [t["traceID"] for t in found["data"]] == [sent.trace_id]
    assert len(found["data"][0]["spans"]) == 3  # the whole trace, not only the matching span
    by_event_tag = get(
        server, "/api/traces", service=backend, tag="decline.code:insufficient_funds"
    )
    assert [t["traceID"] for t in by_event_tag["data"]] == [sent.trace_id]
    # one span must satisfy every filter: the backend span lasts 1ms, so >2ms finds nothing
    assert get(server, "/api/traces", service=backend, minDuration="2ms")["data"] == []
    assert (
        len(
            get(server, "/api/traces", service=backend, minDuration="900us", maxDuration="1.1ms")[
                "data"
            ]
        )
        == 1
    )
    nothing = get(
        server, "/api/traces", service=backend, tags=json.dumps({"decline.code": "other"})
    )
    assert nothing["data"] == []


def test_services_operations_dependencies(server: Server, sent: Sent) -> None:
    trace = get(server, f"/api/traces/{sent.trace_id}")["data"][0]
    names = sorted(p["serviceName"] for p in trace["processes"].values())
    backend, frontend = names
    services = get(server, "/api/services")
    assert set(names) <= set(services["data"]) and services["total"] == len(services["data"])
    ops = get(server, "/api/operations", service=frontend)
    assert {"name": "GET /checkout", "spanKind": "server"} in ops["data"]
    assert {"name": "POST /charge", "spanKind": "client"} in ops["data"]
    client_ops = get(server, "/api/operations", service=frontend, spanKind="client")["data"]
    assert client_ops == [{"name": "POST /charge", "spanKind": "client"}]
    legacy = get(server, f"/api/services/{frontend}/operations")["data"]
    assert sorted(legacy) == ["GET /checkout", "POST /charge", "unrelated"]
    deps = get(server, "/api/dependencies", endTs=int(time.time() * 1000), lookback=3_600_000)
    assert {"parent": frontend, "child": backend, "callCount": 1} in deps["data"]


def test_api_v3_returns_otlp_json(server: Server, sent: Sent) -> None:
    body = get(server, f"/api/v3/traces/{sent.trace_id}")
    spans = [
        s for rs in body["result"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]
    ]
    by_id = {s["spanId"]: s for s in spans}
    back = by_id[sent.backend_server]
    assert back["traceId"] == sent.trace_id
    assert back["parentSpanId"] == sent.frontend_client
    assert back["kind"] == 2
    assert back["status"] == {"code": 2, "message": "card declined"}
    assert back["startTimeUnixNano"] == str(T0 + 2_000_000)
    assert back["links"][0]["traceId"] == sent.linked_trace_id
    assert back["events"][0]["name"] == "card rejected"
    root_attrs = {a["key"]: a["value"] for a in by_id[sent.frontend_server]["attributes"]}
    assert root_attrs["big"] == {"intValue": str(BIG)}
    assert root_attrs["blob"] == {"bytesValue": "AP9oaQ=="}
    assert root_attrs["codes"] == {
        "arrayValue": {"values": [{"intValue": "1"}, {"intValue": "2"}, {"intValue": "3"}]}
    }
    services = get(server, "/api/v3/services")["services"]
    frontend = next(
        s for s in services if s.startswith("frontend") and s.endswith(sent.trace_id[:0])
    )
    assert frontend
    now = time.time()
    window = {
        "query.startTimeMin": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
        "query.startTimeMax": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60)),
    }
    backend = next(
        rs["resource"]["attributes"]
        for rs in body["result"]["resourceSpans"]
        if any(s["spanId"] == sent.backend_server for ss in rs["scopeSpans"] for s in ss["spans"])
    )
    backend_name = next(a["value"]["stringValue"] for a in backend if a["key"] == "service.name")
    found = get(server, "/api/v3/traces", **{"query.serviceName": backend_name, **window})
    ids = {
        s["traceId"]
        for rs in found["result"]["resourceSpans"]
        for ss in rs["scopeSpans"]
        for s in ss["spans"]
    }
    assert ids == {sent.trace_id}
    snake = get(
        server,
        "/api/v3/traces",
        **{
            "query.service_name": backend_name,
            "query.start_time_min": window["query.startTimeMin"],
            "query.start_time_max": window["query.startTimeMax"],
        },
    )
    assert snake == found
    summaries = get(
        server, "/api/v3/trace-summaries", **{"query.serviceName": backend_name, **window}
    )
    (summary,) = summaries["summaries"]
    assert summary["traceId"] == sent.trace_id
    assert summary["spanCount"] == 3 and summary["errorSpanCount"] == 1
    assert summary["rootOperationName"] == "GET /checkout"


def test_unknown_trace_is_404_with_jaeger_error(server: Server) -> None:
    response = httpx.get(f"{server.query}/api/traces/00000000000000000000000000abcdef", timeout=5)
    assert response.status_code == 404
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["code"] == 404
    assert body["errors"][0]["msg"] == "trace not found"
