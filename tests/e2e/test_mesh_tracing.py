"""Mesh tracing end to end: real sidecars and a gateway (tracemesh's own) in front of tiny apps,
reporting to a real `tracemesh all-in-one`; every assertion reads the stored trace back through
the Jaeger query API, as a user would see it."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.e2e.mesh_apps import (
    FORMATTER_PORT,
    ISTIO_HEADERS,
    MESH_YAML,
    Formatter,
    Hello,
    mesh,
    tags,
    wait_for_trace,
)
from tests.e2e.server import Server
from tests.integration.mesh.harness import run


@pytest.fixture
def mesh_file(tmp_path: Path) -> str:
    path = tmp_path / "mesh.yaml"
    path.write_text(MESH_YAML)
    return str(path)


def spans_by_key(trace: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(service, span.kind) -> span, asserting each pair appears once."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for span in trace["spans"]:
        service = trace["processes"][span["processID"]]["serviceName"]
        key = (service, tags(span).get("span.kind", ""))
        assert key not in out, f"two spans for {key}"
        out[key] = span
    return out


def parent(span: dict[str, Any]) -> str | None:
    refs = [r for r in span["references"] if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def test_header_copying_app_gives_one_trace_gateway_to_formatter(
    server: Server, mesh_file: str
) -> None:
    hello = Hello()
    formatters = {"v1": Formatter("v1")}

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with mesh(server, mesh_file, hello, formatters) as m, httpx.AsyncClient() as client:
            response = await client.get(f"{m.url}/sayHello/Bender",
                                        headers={"user-agent": "curl/8.0"})  # fmt: skip
            assert response.status_code == 200, response.text
            reply = response.json()
            trace_id = reply["formatter"]["headers"]["x-b3-traceid"]
            return reply, await wait_for_trace(server, trace_id, 5)

    reply, trace = run(main())
    assert reply["formatter"]["version"] == "v1"
    spans = spans_by_key(trace)
    assert set(spans) == {
        ("ingress-gateway.default", "server"),
        ("ingress-gateway.default", "client"),
        ("hello.default", "server"),
        ("hello.default", "client"),
        ("formatter.default", "server"),
    }
    gateway = spans[("ingress-gateway.default", "server")]
    upstream = spans[("ingress-gateway.default", "client")]  # Istio 1.28's upstream span
    hello_in = spans[("hello.default", "server")]
    hello_out = spans[("hello.default", "client")]
    formatter_in = spans[("formatter.default", "server")]
    assert len({s["traceID"] for s in trace["spans"]}) == 1
    assert parent(gateway) is None
    assert parent(upstream) == gateway["spanID"]
    assert parent(hello_in) == upstream["spanID"]
    assert upstream["operationName"] == "router outbound|8080||hello egress"
    u = tags(upstream)
    assert u["upstream_cluster"] == "outbound|8080||hello" and u["http.status_code"] == "200"
    assert u["peer.address"] == "127.0.0.1" and u["upstream_address"].startswith("127.0.0.1:")
    assert u["component"] == "proxy" and u["node_id"].startswith("router~")
    assert "error" not in u and "guid:x-request-id" not in u  # downstream-only tags, as Envoy's
    assert parent(hello_out) == hello_in["spanID"]
    assert parent(formatter_in) == hello_out["spanID"]
    # Names: the gateway route's, passed to hello's inbound span; the formatter route's likewise.
    assert gateway["operationName"] == hello_in["operationName"] == "hello:8080/sayHello*"
    name = f"formatter:{FORMATTER_PORT}/*"
    assert hello_out["operationName"] == formatter_in["operationName"] == name
    # One request id everywhere, marked sampled (Envoy's trace reason 9 at index 14).
    downstream = [s for s in trace["spans"] if s is not upstream]
    request_ids = {tags(s)["guid:x-request-id"] for s in downstream}
    assert len(request_ids) == 1
    (request_id,) = request_ids
    assert len(request_id) == 36 and request_id[14] == "9"
    assert reply["hello"]["x-request-id"] == request_id
    assert reply["formatter"]["headers"]["x-request-id"] == request_id
    # The app saw its inbound sidecar's span as its parent, and no decorator header.
    assert reply["hello"]["x-b3-spanid"] == hello_in["spanID"]
    assert "x-envoy-decorator-operation" not in reply["hello"]
    assert "x-envoy-decorator-operation" not in reply["formatter"]["headers"]
    for span in downstream:
        t = tags(span)
        assert t["component"] == "proxy"
        assert t["http.method"] == "GET"
        assert t["http.protocol"] == "HTTP/1.1"
        assert t["http.status_code"] == "200"
        assert t["response_flags"] == "-"
        assert "error" not in t
        assert int(t["request_size"]) == 0 and int(t["response_size"]) > 0
        assert t["peer.address"] == "127.0.0.1"
        assert t["node_id"].startswith(("sidecar~127.0.0.1~", "router~127.0.0.1~"))
    g, hi, ho, fi = (tags(s) for s in (gateway, hello_in, hello_out, formatter_in))
    assert g["http.url"] == hi["http.url"]
    assert g["http.url"].startswith("http://127.0.0.1:") and g["http.url"].endswith(
        "/sayHello/Bender"
    )
    assert ho["http.url"] == fi["http.url"] == "http://formatter:8080/formatGreeting?name=Bender"
    assert g["user_agent"] == hi["user_agent"] == "curl/8.0"
    assert g["upstream_cluster"] == "outbound|8080||hello"
    assert hi["upstream_cluster"] == "inbound|8080||"
    assert ho["upstream_cluster"] == "outbound|8080|v1|formatter"
    assert fi["upstream_cluster"] == "inbound|8080||"
    assert g["node_id"].startswith("router~") and hi["node_id"].startswith("sidecar~")
    assert hi["istio.canonical_revision"] == "v1"
    processes = {p["serviceName"]: p for p in trace["processes"].values()}
    assert {t["key"]: t["value"] for t in processes["formatter.default"]["tags"]}.get(
        "service.version"
    ) == "v1"
    # Timing nests: each child inside its parent.
    pairs = ((upstream, gateway), (hello_in, upstream), (hello_out, hello_in),
             (formatter_in, hello_out))  # fmt: skip
    for child, outer in pairs:
        assert child["startTime"] >= outer["startTime"]
        assert child["startTime"] + child["duration"] <= outer["startTime"] + outer["duration"]


def test_request_without_route_is_404_nr_and_traced(server: Server, mesh_file: str) -> None:
    async def main() -> dict[str, Any]:
        async with mesh(server, mesh_file, Hello(), {"v1": Formatter("v1")}) as m:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{m.url}/nowhere", headers={"jaeger-debug-id": "nr-1"})
            assert response.status_code == 404
            for _ in range(100):
                found = await _find(server, "ingress-gateway.default", "jaeger-debug-id=nr-1")
                if found:
                    return found
                await asyncio.sleep(0.1)
            raise AssertionError("no span for the 404")

    trace = run(main())
    (span,) = trace["spans"]
    t = tags(span)
    assert (t["http.status_code"], t["response_flags"]) == ("404", "NR")
    assert "error" not in t


async def _find(server: Server, service: str, tag: str) -> dict[str, Any] | None:
    key, _, value = tag.partition("=")
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(
            f"{server.query}/api/traces",
            params={"service": service, "tags": f'{{"{key}":"{value}"}}', "lookback": "1h"},
        )
    data = response.json()["data"] if response.status_code == 200 else []
    return data[0] if data else None


def test_instrumented_app_spans_nest_between_its_sidecar_spans(
    server: Server, mesh_file: str
) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "hello"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=server.otlp_http)))
    hello = Hello(copy=("x-request-id",), tracer=provider.get_tracer("hello-app"))

    async def main() -> dict[str, Any]:
        async with mesh(server, mesh_file, hello, {"v1": Formatter("v1")}) as m:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{m.url}/sayHello/Leela")
            assert response.status_code == 200, response.text
            reply = response.json()
            await asyncio.to_thread(provider.force_flush)
            trace_id = reply["formatter"]["headers"]["x-b3-traceid"]
            return await wait_for_trace(server, trace_id, 7)

    try:
        trace = run(main())
    finally:
        provider.shutdown()
    spans = spans_by_key(trace)
    assert set(spans) == {
        ("ingress-gateway.default", "server"),
        ("ingress-gateway.default", "client"),
        ("hello.default", "server"),
        ("hello", "server"),
        ("hello", "client"),
        ("hello.default", "client"),
        ("formatter.default", "server"),
    }
    chain = [
        spans[("ingress-gateway.default", "server")],
        spans[("ingress-gateway.default", "client")],
        spans[("hello.default", "server")],
        spans[("hello", "server")],
        spans[("hello", "client")],
        spans[("hello.default", "client")],
        spans[("formatter.default", "server")],
    ]
    assert parent(chain[0]) is None
    for outer, inner in itertools.pairwise(chain):
        assert parent(inner) == outer["spanID"], (outer["operationName"], inner["operationName"])
    assert chain[3]["operationName"] == "GET /sayHello/Leela"
    assert chain[5]["operationName"] == chain[6]["operationName"] == "formatter:8080/*"
    assert (
        len({tags(s)["guid:x-request-id"] for s in (chain[0], chain[2], chain[5], chain[6])}) == 1
    )


def test_baggage_routes_netscape_to_formatter_v2(server: Server, mesh_file: str) -> None:
    hello = Hello(copy=(*ISTIO_HEADERS, "baggage"))  # an OpenTelemetry app propagates baggage
    formatters = {"v1": Formatter("v1"), "v2": Formatter("v2")}
    cases = [
        ({"jaeger-baggage": "user-agent=Netscape Navigator 4.0"}, "v2"),
        ({"baggage": "user-agent=Mozilla%2F4.0%20(Netscape)"}, "v2"),
        ({"uberctx-user-agent": "Netscape"}, "v2"),
        ({"jaeger-baggage": "user-agent=Mozilla"}, "v1"),
        ({"user-agent": "Netscape"}, "v1"),  # a header, not baggage: the rule reads baggage
        ({}, "v1"),
    ]

    async def main() -> list[tuple[str, dict[str, Any]]]:
        results = []
        async with mesh(server, mesh_file, hello, formatters) as m, httpx.AsyncClient() as client:
            for headers, _ in cases:
                response = await client.get(f"{m.url}/sayHello/Fry", headers=headers)
                assert response.status_code == 200, response.text
                reply = response.json()
                trace_id = reply["formatter"]["headers"]["x-b3-traceid"]
                results.append((reply["formatter"]["version"],
                                await wait_for_trace(server, trace_id, 5)))  # fmt: skip
        return results

    results = run(main())
    for (headers, expected), (version, trace) in zip(cases, results, strict=True):
        assert version == expected, headers
        client_span = spans_by_key(trace)[("hello.default", "client")]
        assert tags(client_span)["upstream_cluster"] == f"outbound|8080|{expected}|formatter"
        assert (
            tags(spans_by_key(trace)[("formatter.default", "server")])["istio.canonical_revision"]
            == expected
        )


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": "00-00000000000000000000000000000000-a2fb4a1d1a96d312-01"},
        {"traceparent": "00-463AC35C9F6413AD48485A3953BB6124-a2fb4a1d1a96d312-01"},
        {"x-b3-traceid": "not-hex", "x-b3-spanid": "a2fb4a1d1a96d312"},
        {"b3": "463ac35c9f6413ad48485a3953bb6124-0000000000000000-1"},
        {"uber-trace-id": "463ac35c9f6413ad:a2fb4a1d1a96d312:0"},  # three parts, not four
    ],
    ids=["zero-trace", "upper-case", "b3-junk", "b3-zero-span", "jaeger-short"],
)
def test_invalid_incoming_context_starts_a_new_trace(
    server: Server, mesh_file: str, headers: dict[str, str]
) -> None:
    async def main() -> tuple[str, dict[str, Any]]:
        async with mesh(server, mesh_file, Hello(), {"v1": Formatter("v1")}) as m:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{m.url}/sayHello/Zoidberg", headers=headers)
            assert response.status_code == 200, response.text
            trace_id = response.json()["formatter"]["headers"]["x-b3-traceid"]
            return trace_id, await wait_for_trace(server, trace_id, 5)

    trace_id, trace = run(main())
    assert trace_id not in ("463ac35c9f6413ad48485a3953bb6124", "0" * 32)
    gateway = spans_by_key(trace)[("ingress-gateway.default", "server")]
    assert parent(gateway) is None
    assert {s["traceID"] for s in trace["spans"]} == {trace_id}


def test_valid_incoming_context_is_continued_at_the_gateway(server: Server, mesh_file: str) -> None:
    incoming = "00-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-01"

    async def main() -> dict[str, Any]:
        async with mesh(server, mesh_file, Hello(), {"v1": Formatter("v1")}) as m:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{m.url}/sayHello/Amy",
                                            headers={"traceparent": incoming})  # fmt: skip
            assert response.status_code == 200, response.text
            return await wait_for_trace(server, "5b8efff798038103d269b633813fc60c", 5)

    trace = run(main())
    gateway = spans_by_key(trace)[("ingress-gateway.default", "server")]
    assert parent(gateway) == "eee19b7ec3c1b174"


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_collector_down_requests_succeed_as_fast_and_drops_are_counted(
    server: Server, mesh_file: str, protocol: str
) -> None:
    """The same chain twice, one reporting to the real backend, one to a closed port; requests
    alternate between them, so machine load hits both alike."""

    async def main() -> tuple[list[float], list[float], str]:
        options = {"span_buffer": 5, "shutdown_timeout": 0.2, "collector_protocol": protocol}
        down_mesh = mesh(None, mesh_file, Hello(), {"v1": Formatter("v1")}, **options)
        up_mesh = mesh(server, mesh_file, Hello(), {"v1": Formatter("v1")},
                       collector_protocol=protocol, shutdown_timeout=2.0)  # fmt: skip
        async with down_mesh as down, up_mesh as up, httpx.AsyncClient() as client:
            timings: dict[str, list[float]] = {"down": [], "up": []}
            for _ in range(20):
                for name, m in (("down", down), ("up", up)):
                    started = time.perf_counter()
                    response = await client.get(f"{m.url}/sayHello/Hermes")
                    timings[name].append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
            admin = down.gateway.port_of("admin")
            await asyncio.sleep(0.3)  # a send attempt fails meanwhile
            metrics = (await client.get(f"http://127.0.0.1:{admin}/metrics")).text
            health = await client.get(f"http://127.0.0.1:{admin}/health")
            assert health.status_code == 200  # the collector is not the proxy's health
        return timings["down"], timings["up"], metrics

    down, up, metrics = run(main())
    assert max(down) < 2.0, down  # reporting never waits for the collector (timeouts are 5 s)
    assert statistics.median(down) < statistics.median(up) * 1.5 + 0.05, (down, up)
    dropped = _metric(metrics, 'tracemesh_proxy_spans_dropped_total{reason="buffer_full"}')
    assert dropped == 2 * 20 - 5  # two spans per request at the gateway, 5 held
    assert _metric(metrics, "tracemesh_proxy_spans_reported_total") == 0
    assert _metric(metrics, "tracemesh_proxy_span_export_failures_total") >= 1
    assert _metric(metrics, "tracemesh_proxy_span_buffer_spans") == 5
    assert "istio_requests_total{" in metrics


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


@pytest.mark.parametrize("protocol", ["http", "zipkin"])
def test_spans_reach_the_backend_over_otlp_http_and_zipkin(
    server: Server, mesh_file: str, protocol: str
) -> None:
    async def main() -> dict[str, Any]:
        chain = mesh(
            server, mesh_file, Hello(), {"v1": Formatter("v1")}, collector_protocol=protocol
        )
        async with chain as m, httpx.AsyncClient() as client:
            response = await client.get(f"{m.url}/sayHello/Kif")
            assert response.status_code == 200, response.text
            trace_id = response.json()["formatter"]["headers"]["x-b3-traceid"]
            return await wait_for_trace(server, trace_id, 5)

    spans = spans_by_key(run(main()))
    assert (
        parent(spans[("formatter.default", "server")])
        == spans[("hello.default", "client")]["spanID"]
    )
    assert tags(spans[("hello.default", "client")])["upstream_cluster"] == (
        "outbound|8080|v1|formatter"
    )


FAULTS_YAML = """
services:
  - {name: hello, command: [hello], port: 8080}
  - {name: formatter, command: [formatter], port: 8080, labels: {version: v1}}
routes:
  formatter:
    http:
      - match: [{headers: {x-fault: {exact: abort}}}]
        fault: {abort: {httpStatus: 500}}
        route: [{service: formatter}]
      - match: [{headers: {x-fault: {exact: delay}}}]
        fault: {delay: {fixedDelay: 300ms}}
        route: [{service: formatter}]
      - match: [{headers: {x-fault: {exact: both}}}]
        fault: {delay: {fixedDelay: 300ms}, abort: {httpStatus: 503}}
        route: [{service: formatter}]
      - route: [{service: formatter}]  # the mesh default: 2 retries on 503
gateway:
  routes:
    - {prefix: /sayHello, service: hello}
"""


@pytest.mark.parametrize(
    ("fault", "fails", "status", "flags", "formatter_spans", "min_seconds"),
    [
        ("", 1, 200, "-", 2, 0.0),  # one 503, then a retry succeeds
        ("", 9, 503, "URX", 3, 0.0),  # 1 + 2 retries, all 503
        ("abort", 0, 500, "FI", 0, 0.0),
        ("delay", 0, 200, "DI", 1, 0.3),
        ("both", 0, 503, "DI,FI", 0, 0.3),
    ],
    ids=["retry-succeeds", "retries-exhausted", "abort", "delay", "delay-then-abort"],
)
def test_retries_and_faults_show_in_span_flags(
    server: Server,
    tmp_path: Path,
    fault: str,
    fails: int,
    status: int,
    flags: str,
    formatter_spans: int,
    min_seconds: float,
) -> None:
    mesh_file = tmp_path / "faults.yaml"
    mesh_file.write_text(FAULTS_YAML)
    hello = Hello(copy=(*ISTIO_HEADERS, "x-fault"))
    formatter = Formatter("v1", fail=fails)

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with mesh(server, str(mesh_file), hello, {"v1": formatter}) as m:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{m.url}/sayHello/Nibbler",
                                            headers={"x-fault": fault})  # fmt: skip
            assert response.status_code == 200, response.text
            reply = response.json()
            trace_id = hello.seen[-1]["x-b3-traceid"]
            return reply, await wait_for_trace(server, trace_id, 4 + formatter_spans)

    reply, trace = run(main())
    assert reply["formatter_status"] == status
    client_span = spans_by_key_all(trace)[("hello.default", "client")]
    (span,) = client_span
    t = tags(span)
    assert (t["http.status_code"], t["response_flags"]) == (str(status), flags)
    assert ("error" in t) == (status >= 500)
    assert span["duration"] >= (min_seconds - 0.005) * 1e6  # the loop timer has ms steps
    if fails:
        assert t["retry.count"] == str(min(fails, 2))
    servers = spans_by_key_all(trace).get(("formatter.default", "server"), [])
    assert len(servers) == formatter_spans
    assert all(parent(s) == span["spanID"] for s in servers)
    codes = sorted(tags(s)["http.status_code"] for s in servers)
    assert codes == sorted(
        ["503"] * min(fails, formatter_spans) + ["200"] * max(formatter_spans - fails, 0)
    )


def spans_by_key_all(trace: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        service = trace["processes"][span["processID"]]["serviceName"]
        out.setdefault((service, tags(span).get("span.kind", "")), []).append(span)
    return out
