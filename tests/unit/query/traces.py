"""Sample traces in a real MemoryStorage, storage wrappers that change what it declares, and an
in-process HTTP client for the query app."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import httpx
from starlette.applications import Starlette

from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.model.dependency import DependencyLink
from tracemesh.model.query import Operation, TraceQuery
from tracemesh.model.span import Event, Resource, Scope, Span, SpanKind, Status, StatusCode
from tracemesh.query.http_api import build_app
from tracemesh.query.service import QueryService
from tracemesh.runtime.metrics import Metrics
from tracemesh.storage.api import (
    DependencyReader,
    SpanWriter,
    Storage,
    StorageError,
    TraceReader,
)
from tracemesh.storage.memory.config import MemoryConfig
from tracemesh.storage.memory.factory import MemoryStorage

HOUR_NS = 3_600_000_000_000
START_NS = (time.time_ns() - HOUR_NS) // 1000 * 1000  # µs-aligned, inside the default lookback
TRACE_A = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
TRACE_B = bytes(8) + bytes.fromhex("00000000000000b0")  # a 64-bit id
FRONTEND = Resource({"service.name": "frontend", "host.name": "web-1"})
BACKEND = Resource({"service.name": "backend"})
SCOPE = Scope("manual", "1.0")


def sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


def trace_a() -> list[Span]:
    """frontend GET / (server) -> frontend call (client) -> backend handle (server, error)."""
    return [
        Span(
            TRACE_A,
            sid(1),
            "GET /",
            START_NS,
            START_NS + 9_000_000,
            kind=SpanKind.SERVER,
            attributes={"http.status_code": 200},
            resource=FRONTEND,
            scope=SCOPE,
            flags=1,
        ),
        Span(
            TRACE_A,
            sid(2),
            "call backend",
            START_NS + 1_000_000,
            START_NS + 8_000_000,
            parent_span_id=sid(1),
            kind=SpanKind.CLIENT,
            resource=FRONTEND,
            scope=SCOPE,
        ),
        Span(
            TRACE_A,
            sid(3),
            "handle",
            START_NS + 2_000_000,
            START_NS + 7_000_000,
            parent_span_id=sid(2),
            kind=SpanKind.SERVER,
            resource=BACKEND,
            scope=SCOPE,
            status=Status(StatusCode.ERROR, "db down"),
            events=[Event(START_NS + 3_000_000, "retry", {"attempt": 2})],
        ),
    ]


def trace_b() -> list[Span]:
    """Zipkin style: the backend's server span reuses the client span's id 0x21."""
    start = START_NS + 60_000_000_000
    return [
        Span(
            TRACE_B,
            sid(0x20),
            "checkout",
            start,
            start + 5_000_000,
            kind=SpanKind.SERVER,
            resource=FRONTEND,
            scope=SCOPE,
        ),
        Span(
            TRACE_B,
            sid(0x21),
            "pay",
            start + 1_000_000,
            start + 4_000_000,
            parent_span_id=sid(0x20),
            kind=SpanKind.CLIENT,
            resource=FRONTEND,
            scope=SCOPE,
        ),
        Span(
            TRACE_B,
            sid(0x21),
            "pay",
            start + 1_500_000,
            start + 3_500_000,
            parent_span_id=sid(0x20),
            kind=SpanKind.SERVER,
            resource=BACKEND,
            scope=SCOPE,
        ),
    ]


def memory_storage(*traces: Sequence[Span]) -> MemoryStorage:
    storage = MemoryStorage(MemoryConfig(max_traces=100))

    async def fill() -> None:
        await storage.start()
        for spans in traces:
            await storage.writer().write(batch_from_spans(spans))

    asyncio.run(fill())
    return storage


class Declaring:
    """A real storage that declares other capabilities than its own."""

    def __init__(self, storage: MemoryStorage, **capabilities: bool) -> None:
        self._storage = storage
        self.name = storage.name
        self.capabilities = dataclasses.replace(storage.capabilities, **capabilities)

    async def start(self) -> None:
        await self._storage.start()

    async def check(self) -> bool:
        return await self._storage.check()

    async def close(self) -> None:
        await self._storage.close()

    def writer(self) -> SpanWriter:
        return self._storage.writer()

    def reader(self) -> TraceReader:
        return self._storage.reader()

    def dependency_reader(self) -> DependencyReader:
        return self._storage.dependency_reader()


class FailingReader:
    """A backend that is down: every read raises StorageError."""

    async def get_trace(
        self, trace_id: bytes, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[Span]:
        raise StorageError("backend unreachable")

    async def find_traces(self, query: TraceQuery) -> list[list[Span]]:
        raise StorageError("backend unreachable")

    async def get_services(self) -> list[str]:
        raise StorageError("backend unreachable")

    async def get_operations(
        self, service: str, span_kind: SpanKind | None = None
    ) -> list[Operation]:
        raise StorageError("backend unreachable")

    async def get_dependencies(self, end_ns: int, lookback_ns: int) -> list[DependencyLink]:
        raise StorageError("backend unreachable")


class Down(Declaring):
    def reader(self) -> TraceReader:
        return FailingReader()

    def dependency_reader(self) -> DependencyReader:
        return FailingReader()


class AppClient:
    """Requests to the ASGI app in-process (httpx's ASGI transport, one event loop per call;
    Starlette's TestClient now warns when used with httpx)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, url, **options)

        return asyncio.run(send())

    def get(self, url: str, **options: Any) -> httpx.Response:
        return self.request("GET", url, **options)

    def post(self, url: str, **options: Any) -> httpx.Response:
        return self.request("POST", url, **options)


def client_for(storage: Storage, metrics: Metrics | None = None, **options: Any) -> AppClient:
    return AppClient(build_app(QueryService(storage), metrics or Metrics(), **options))
