"""gRPC through a real sidecar pair, traced: a grpcio client calls `echo` through its own
(`caller`) sidecar's outbound listener, which routes over HTTP/2 to echo's sidecar, in front of a
real grpcio server. Both sidecars report to a real `tracemesh all-in-one`; every assertion reads
the stored trace back through the Jaeger query API: one CLIENT and one SERVER span per call,
with Envoy's HTTP/2 and gRPC tags, for every call shape, a failing call, many concurrent calls,
large streamed messages and an upstream reset mid-stream."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from tests.e2e.mesh_apps import proxy, sidecar_options, tags, wait_for_trace
from tests.e2e.server import Server
from tests.e2e.test_mesh_tracing import parent, spans_by_key
from tests.integration.mesh.grpc_apps import (
    SERVICE,
    Echo,
    channel,
    chunks,
    echo_server,
    resetting_server,
)
from tests.integration.mesh.harness import run
from tracemesh.runtime.proxy_options import GATEWAY, SIDECAR

ECHO_PORT = 50051  # the port callers address echo (and flaky) on
MESH_YAML = f"""
services:
  - {{name: caller, command: [caller], port: 8080}}
  - {{name: echo, command: [echo], port: {ECHO_PORT}, labels: {{version: v1}}}}
  - {{name: flaky, command: [flaky], port: {ECHO_PORT}}}
gateway:
  routes:
    - {{prefix: /{SERVICE}/, service: echo}}
"""
KiB = 1024


@pytest.fixture
def mesh_file(tmp_path: Path) -> str:
    path = tmp_path / "mesh.yaml"
    path.write_text(MESH_YAML)
    return str(path)


@dataclass
class GrpcMesh:
    outbound: int  # the caller's sidecar's outbound port
    gateway: int  # the ingress gateway's port
    echo: Echo
    caller_admin: int


@asynccontextmanager
async def grpc_mesh(server: Server, mesh_file: str) -> AsyncIterator[GrpcMesh]:
    collector = f"127.0.0.1:{server.ports['otlp_grpc']}"
    async with AsyncExitStack() as stack:
        echo_port, echo = await stack.enter_async_context(echo_server())
        flaky_port = await stack.enter_async_context(resetting_server(messages=2))
        endpoints = []
        for service, app_port, labels in (("echo", echo_port, ["version=v1"]),
                                          ("flaky", flaky_port, [])):  # fmt: skip
            options = sidecar_options(collector, mesh_file, service=service, label=labels,
                                      app_port=app_port)  # fmt: skip
            callee = await stack.enter_async_context(proxy(options, SIDECAR))
            endpoints.append(f"{service}=127.0.0.1:{callee.port_of('inbound')}")
        options = sidecar_options(collector, mesh_file, service="caller", app_port=1,
                                  endpoint=endpoints)  # fmt: skip
        caller = await stack.enter_async_context(proxy(options, SIDECAR))
        options = sidecar_options(collector, mesh_file, port=0, endpoint=endpoints)
        gateway = await stack.enter_async_context(proxy(options, GATEWAY))
        yield GrpcMesh(caller.port_of("outbound"), gateway.port_of("gateway"), echo,
                       caller.port_of("admin"))  # fmt: skip


def context() -> tuple[str, str, list[tuple[str, str]]]:
    """A trace id, a span id and the B3 metadata that makes the call part of that trace."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    metadata = [("x-b3-traceid", trace_id), ("x-b3-spanid", span_id), ("x-b3-sampled", "1")]
    return trace_id, span_id, metadata


def pair(trace: dict[str, Any], caller_span: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The call's (CLIENT, SERVER) spans, asserting the exact tree: the app's span ->
    the caller sidecar's CLIENT -> the callee sidecar's SERVER."""
    spans = spans_by_key(trace)
    assert len(spans) == 2, sorted(spans)
    (client_key,) = [key for key in spans if key[1] == "client"]
    (server_key,) = [key for key in spans if key[1] == "server"]
    assert client_key[0] == "caller.default"
    client, server = spans[client_key], spans[server_key]
    assert parent(client) == caller_span
    assert parent(server) == client["spanID"]
    assert client["startTime"] <= server["startTime"]
    assert server["startTime"] + server["duration"] <= client["startTime"] + client["duration"]
    return client, server


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"


def test_unary_and_streaming_calls_are_traced_per_call(server: Server, mesh_file: str) -> None:
    async def main() -> tuple[list[tuple[str, str, dict[str, Any]]], Echo]:
        calls = []
        async with (
            grpc_mesh(server, mesh_file) as m,
            channel(m.outbound, authority=f"echo:{ECHO_PORT}") as ch,
        ):
            trace_id, span_id, md = context()
            assert await ch.unary_unary(method("Reverse"))(b"abc", metadata=md) == b"cba"
            calls.append(("Reverse", span_id, await wait_for_trace(server, trace_id, 2)))
            trace_id, span_id, md = context()  # 3 MiB streamed back in 48 messages
            got = [x async for x in ch.unary_stream(method("Repeat"))(b"48:65536",
                                                                      metadata=md)]  # fmt: skip
            assert len(got) == 48 and all(len(x) == 65536 for x in got)
            calls.append(("Repeat", span_id, await wait_for_trace(server, trace_id, 2)))
            trace_id, span_id, md = context()  # 2 MiB streamed up in 32 messages
            total = await ch.stream_unary(method("Sum"))(chunks(32, 64 * KiB), metadata=md)
            assert total == str(32 * 64 * KiB).encode()
            calls.append(("Sum", span_id, await wait_for_trace(server, trace_id, 2)))
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"http://127.0.0.1:{m.caller_admin}/metrics")).text
            # Istio's request_protocol label says grpc
            assert re.search(r'istio_requests_total\{[^}]*request_protocol="grpc",'
                             r'response_code="200"[^}]*\} 3.0', metrics), metrics  # fmt: skip
            return calls, m.echo

    calls, echo = run(main())
    sizes = {  # (request_size, response_size): body bytes, with gRPC's 5-byte message prefix
        "Reverse": (5 + 3, 5 + 3),
        "Repeat": (5 + 8, 48 * (5 + 65536)),
        "Sum": (32 * (5 + 64 * KiB), 5 + len(str(32 * 64 * KiB))),
    }
    for (name, caller_span, trace), seen in zip(calls, echo.seen, strict=True):
        client, srv = pair(trace, caller_span)
        assert spans_by_key(trace).keys() == {("caller.default", "client"),
                                              ("echo.default", "server")}  # fmt: skip
        assert client["operationName"] == srv["operationName"] == f"echo:{ECHO_PORT}/*"
        c, s = tags(client), tags(srv)
        for t in (c, s):
            assert t["component"] == "proxy"
            assert t["http.protocol"] == "HTTP/2"
            assert t["http.method"] == "POST"
            assert t["http.status_code"] == "200"
            assert t["http.url"] == f"http://echo:{ECHO_PORT}{method(name)}"
            assert t["grpc.path"] == method(name)
            assert t["grpc.authority"] == f"echo:{ECHO_PORT}"
            assert t["grpc.content_type"] == "application/grpc"
            assert t["grpc.status_code"] == "0"
            assert t["response_flags"] == "-"
            assert "error" not in t
            assert (int(t["request_size"]), int(t["response_size"])) == sizes[name]
        assert c["upstream_cluster"] == f"outbound|{ECHO_PORT}||echo"
        assert s["upstream_cluster"] == f"inbound|{ECHO_PORT}||"
        assert c["guid:x-request-id"] == s["guid:x-request-id"] == seen["x-request-id"]
        # the app saw its sidecar's SERVER span as parent, and no decorator header
        assert seen["x-b3-spanid"] == srv["spanID"] and seen["x-b3-traceid"] == trace["traceID"]
        assert "x-envoy-decorator-operation" not in seen


def test_failing_call_is_an_error_span_with_grpc_status(server: Server, mesh_file: str) -> None:
    async def main() -> tuple[tuple[str, Any], tuple[str, Any]]:
        async with (
            grpc_mesh(server, mesh_file) as m,
            channel(m.outbound, authority=f"echo:{ECHO_PORT}") as ch,
        ):
            call = ch.unary_unary(method("Reverse"))
            trace_id, failed_span, md = context()
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await call(b"fail:backend is down", metadata=md)
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
            unavailable = (failed_span, await wait_for_trace(server, trace_id, 2))
            trace_id, bad_span, md = context()
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await call(b"bad:no such name", metadata=md)
            assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            invalid = (bad_span, await wait_for_trace(server, trace_id, 2))
        return unavailable, invalid

    unavailable, invalid = run(main())
    for span in pair(unavailable[1], unavailable[0]):
        t = tags(span)
        assert t["http.status_code"] == "200"  # gRPC fails in trailers, over an HTTP 200
        assert (t["grpc.status_code"], t["grpc.message"]) == ("14", "backend is down")
        assert t["error"] is True
    for span in pair(invalid[1], invalid[0]):
        t = tags(span)
        assert (t["grpc.status_code"], t["grpc.message"]) == ("3", "no such name")
        assert "error" not in t  # a client-side status: not the upstream's error (Envoy's rule)


def test_unknown_service_is_unavailable_and_traced(server: Server, mesh_file: str) -> None:
    async def main() -> tuple[str, Any]:
        async with (
            grpc_mesh(server, mesh_file) as m,
            channel(m.outbound, authority="nowhere:50051") as ch,
        ):
            trace_id, span_id, md = context()
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await ch.unary_unary(method("Reverse"))(b"x", metadata=md)
            assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED  # 404 NR -> 12
            return span_id, await wait_for_trace(server, trace_id, 1)

    span_id, trace = run(main())
    (span,) = trace["spans"]
    assert parent(span) == span_id
    t = tags(span)
    assert (t["response_flags"], t["grpc.status_code"], t["http.protocol"]) == (
        "NR",
        "12",
        "HTTP/2",
    )
    assert t["error"] is True  # 12 UNIMPLEMENTED counts as an upstream error for Envoy


def test_many_concurrent_calls_each_get_their_spans(server: Server, mesh_file: str) -> None:
    count = 40

    async def main() -> list[tuple[str, Any]]:
        async with (
            grpc_mesh(server, mesh_file) as m,
            channel(m.outbound, authority=f"echo:{ECHO_PORT}") as ch,
        ):
            call = ch.unary_unary(method("Reverse"))
            contexts = [context() for _ in range(count)]
            replies = await asyncio.gather(
                *(call(b"n%d" % i, metadata=md) for i, (_, _, md) in enumerate(contexts))
            )
            assert replies == [(b"n%d" % i)[::-1] for i in range(count)]
            return [(span, await wait_for_trace(server, trace_id, 2))
                    for trace_id, span, _ in contexts]  # fmt: skip

    results = run(main())
    request_ids = set()
    for caller_span, trace in results:
        client, srv = pair(trace, caller_span)
        request_ids.add(tags(client)["guid:x-request-id"])
        assert tags(srv)["guid:x-request-id"] == tags(client)["guid:x-request-id"]
    assert len(request_ids) == count  # one request id per call, none mixed up


def test_upstream_reset_mid_stream_is_ur_and_an_error(server: Server, mesh_file: str) -> None:
    async def main() -> tuple[str, Any]:
        async with (
            grpc_mesh(server, mesh_file) as m,
            channel(m.outbound, authority=f"flaky:{ECHO_PORT}") as ch,
        ):
            trace_id, span_id, md = context()
            got = []
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                async for item in ch.unary_stream(method("Repeat"))(b"9:9", metadata=md):
                    got.append(item)
            assert got == [b"partial", b"partial"]
            assert failed.value.code() == grpc.StatusCode.INTERNAL
            return span_id, await wait_for_trace(server, trace_id, 2)

    span_id, trace = run(main())
    client, srv = pair(trace, span_id)
    assert spans_by_key(trace).keys() == {("caller.default", "client"), ("flaky.default", "server")}
    for span in (client, srv):
        t = tags(span)
        assert t["http.status_code"] == "200" and t["response_flags"] == "UR"
        assert t["error"] is True  # reset after the head: no grpc-status, still a failure
        assert "grpc.status_code" not in t
        assert int(t["response_size"]) == 2 * (5 + len(b"partial"))


def test_grpc_through_the_gateway_starts_the_trace(server: Server, mesh_file: str) -> None:
    async def main() -> tuple[dict[str, str], Any]:
        async with grpc_mesh(server, mesh_file) as m, channel(m.gateway) as ch:
            assert await ch.unary_unary(method("Reverse"))(b"edge") == b"egde"
            seen = m.echo.seen[-1]
            return seen, await wait_for_trace(server, seen["x-b3-traceid"], 3)

    seen, trace = run(main())
    spans = spans_by_key(trace)
    gateway = "ingress-gateway.default"
    assert spans.keys() == {(gateway, "server"), (gateway, "client"), ("echo.default", "server")}
    edge, call = spans[(gateway, "server")], spans[(gateway, "client")]
    srv = spans[("echo.default", "server")]
    assert parent(edge) is None and parent(call) == edge["spanID"]
    assert parent(srv) == call["spanID"]  # the service hangs under the gateway's upstream span
    assert edge["operationName"] == srv["operationName"] == f"echo:{ECHO_PORT}/{SERVICE}/*"
    assert call["operationName"] == f"router outbound|{ECHO_PORT}||echo egress"
    e, c, s = tags(edge), tags(call), tags(srv)
    assert e["http.protocol"] == s["http.protocol"] == "HTTP/2"
    assert e["grpc.status_code"] == s["grpc.status_code"] == "0"
    assert c["upstream_cluster"] == f"outbound|{ECHO_PORT}||echo"
    request_id = e["guid:x-request-id"]
    assert len(request_id) == 36 and request_id == s["guid:x-request-id"] == seen["x-request-id"]
