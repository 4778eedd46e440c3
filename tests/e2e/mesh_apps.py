"""The applications and the mesh the mesh-tracing tests run: Chapter 7's `hello` (which only
copies the headers Istio asks apps to copy, or is instrumented with the OpenTelemetry SDK) and
`formatter` (v1 and v2), each behind a real sidecar, an ingress gateway in front, all on loopback
in the test's event loop, reporting to a real `tracemesh all-in-one`."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tests.e2e.server import Server
from tests.integration.mesh.upstreams import Receive, Scope, Send, uvicorn_upstream
from tracemesh.demos.app_kit import ISTIO_HEADERS
from tracemesh.runtime.proxy_options import GATEWAY, SIDECAR, ProxyOptions
from tracemesh.runtime.proxy_process import ProxyProcess

FORMATTER_PORT = 8080  # the port hello addresses formatter on (Host: formatter:8080)
SERVICE_PORT = 8080  # every service's port in MESH_YAML

MESH_YAML = """
services:  # what the local runner would start; the sidecars read the ports callers address
  - {name: hello, command: [hello], port: 8080}
  - {name: formatter, command: [formatter], port: 8080, labels: {version: v1}}
  - {name: formatter, command: [formatter, --professor], port: 8080, labels: {version: v2}}
routes:
  formatter:
    subsets:
      v1: {labels: {version: v1}}
      v2: {labels: {version: v2}}
    http:
      - match: [{baggage: {user-agent: {regex: ".*Netscape.*"}}}]
        route: [{service: formatter, subset: v2}]
      - route: [{service: formatter, subset: v1}]
gateway:
  routes:
    - {prefix: /sayHello, service: hello}
"""


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def respond(send: Send, status: int, body: bytes) -> None:
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Hello:
    """Chapter 7's hello: `GET /sayHello/{name}` calls formatter through its outbound sidecar
    and returns what both saw. `copy` is the headers it copies onward; with `tracer` it is
    instrumented instead: a SERVER span from the incoming `traceparent`, a CLIENT span around
    the formatter call whose `traceparent` it injects (x-request-id is still copied)."""

    copy: Sequence[str] = ISTIO_HEADERS
    tracer: Tracer | None = None
    outbound_port: int = 0
    seen: list[dict[str, str]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = _headers(scope)
        self.seen.append(headers)
        name = scope["path"].rsplit("/", 1)[-1]
        out = {k: headers[k] for k in self.copy if k in headers}
        out["host"] = f"formatter:{FORMATTER_PORT}"
        if self.tracer is None:
            status, body = await self._call(name, out)
        else:
            parent = TraceContextTextMapPropagator().extract(headers)
            server = self.tracer.start_span(f"GET /sayHello/{name}", parent, SpanKind.SERVER)
            client = self.tracer.start_span(
                "GET formatter", set_span_in_context(server, Context()), SpanKind.CLIENT
            )
            TraceContextTextMapPropagator().inject(out, set_span_in_context(client, Context()))
            status, body = await self._call(name, out)
            client.end()
            server.end()
        reply = {"hello": headers, "formatter": body, "formatter_status": status}
        await respond(send, 200, json.dumps(reply).encode())

    async def _call(self, name: str, headers: dict[str, str]) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.outbound_port}/formatGreeting?name={name}"
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(url, headers=headers)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text


@dataclass
class Formatter:
    """Chapter 7's formatter, v1 or v2 (the professor). `fail` answers that many requests with
    `fail_status` first (for retries); `seen` keeps every request's headers."""

    version: str
    fail: int = 0
    fail_status: int = 503
    seen: list[dict[str, str]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = _headers(scope)
        self.seen.append(headers)
        if self.fail > 0:
            self.fail -= 1
            await respond(send, self.fail_status, b'{"error": "try again"}')
            return
        name = parse_qs(scope["query_string"].decode()).get("name", ["?"])[0]
        if self.version == "v2":
            greeting = f"Good news, {name}! If anyone needs me I'll be in the Angry Dome!"
        else:
            greeting = (
                f"Hello, puny human {name}! Morbo asks: how do you like running on Kubernetes?"
            )
        body = {"greeting": greeting, "version": self.version, "headers": headers}
        await respond(send, 200, json.dumps(body).encode())


@asynccontextmanager
async def proxy(options: ProxyOptions, role: str) -> AsyncIterator[ProxyProcess]:
    process = ProxyProcess.from_options(options, role)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


@dataclass
class Mesh:
    gateway: ProxyProcess
    hello: ProxyProcess
    formatters: dict[str, ProxyProcess]
    hello_app: Hello
    formatter_apps: dict[str, Formatter]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.port_of('gateway')}"


def sidecar_options(collector: str, mesh_file: str, **overrides: Any) -> ProxyOptions:
    options = ProxyOptions(
        inbound_port=0, outbound_port=0, admin_port=0, mesh=mesh_file, collector=collector,
        shutdown_timeout=2.0,
    )  # fmt: skip
    for key, value in overrides.items():
        setattr(options, key, value)
    return options


@asynccontextmanager
async def mesh(
    backend: Server | None,
    mesh_file: str,
    hello: Hello,
    formatters: dict[str, Formatter],
    **overrides: Any,
) -> AsyncIterator[Mesh]:
    """gateway -> hello's sidecar -> hello -> its outbound sidecar -> formatter's sidecar ->
    formatter, one formatter instance per version. `overrides` set options on every proxy;
    `backend=None` points the proxies at a collector address nothing listens on."""
    protocol = overrides.get("collector_protocol", "grpc")
    if backend is None:
        collector = f"127.0.0.1:{_closed_port()}"
    else:
        port = backend.ports[
            {"grpc": "otlp_grpc", "http": "otlp_http", "zipkin": "zipkin"}[protocol]
        ]
        collector = f"127.0.0.1:{port}"
    async with AsyncExitStack() as stack:
        endpoints = []
        procs = {}
        for version, app in formatters.items():
            port = await stack.enter_async_context(uvicorn_upstream(app))
            options = sidecar_options(collector, mesh_file, service="formatter",
                                      label=[f"version={version}"], app_port=port,
                                      **overrides)  # fmt: skip
            procs[version] = await stack.enter_async_context(proxy(options, SIDECAR))
            endpoints.append(f"formatter[version={version}]=127.0.0.1:"
                             f"{procs[version].port_of('inbound')}")  # fmt: skip
        hello_port = await stack.enter_async_context(uvicorn_upstream(hello))
        options = sidecar_options(collector, mesh_file, service="hello", label=["version=v1"],
                                  app_port=hello_port, endpoint=endpoints, **overrides)  # fmt: skip
        hello_proxy = await stack.enter_async_context(proxy(options, SIDECAR))
        hello.outbound_port = hello_proxy.port_of("outbound")
        options = sidecar_options(collector, mesh_file, port=0,
                                  endpoint=[f"hello=127.0.0.1:{hello_proxy.port_of('inbound')}"],
                                  **overrides)  # fmt: skip
        gateway = await stack.enter_async_context(proxy(options, GATEWAY))
        yield Mesh(gateway, hello_proxy, procs, hello, formatters)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_trace(backend: Server, trace_id: str, spans: int, timeout: float = 15.0) -> Any:
    """The trace once the query API has `spans` spans of it."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < deadline:
            response = await client.get(f"{backend.query}/api/traces/{trace_id}")
            if response.status_code == 200 and len(response.json()["data"][0]["spans"]) >= spans:
                return response.json()["data"][0]
            await asyncio.sleep(0.1)
    raise AssertionError(f"trace {trace_id} never had {spans} spans")


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}
