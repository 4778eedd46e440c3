"""Running the proxy inside a test: a uvloop runner, a handler that records every exchange, and
a raw-socket client for bytes no HTTP library would send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import uvloop

from tracemesh.mesh.handler import Exchange, Forward, Respond
from tracemesh.mesh.http1 import ResponseHead
from tracemesh.mesh.server import ProxyServer, ServerConfig
from tracemesh.mesh.static import StaticHandler

T = TypeVar("T")
FAST = ServerConfig(tick=0.05, response_timeout=5.0)


def run(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


class Recorder(StaticHandler):
    """StaticHandler that keeps every finished exchange, and can retry per a callback."""

    def __init__(
        self,
        upstream: tuple[str, int] | None = None,
        services: Mapping[str, tuple[str, int]] | None = None,
    ) -> None:
        super().__init__(upstream, services)
        self.ended: list[Exchange] = []
        self.retry_to: Forward | None = None
        self.retry_status: int = 0

    def on_failure(self, exchange: Exchange, flag: str) -> Forward | None:
        return self.retry_to if exchange.attempts < 2 else None

    def on_response(self, exchange: Exchange, head: ResponseHead) -> Forward | None:
        head.headers.append((b"x-proxied", b"1"))
        if head.status == self.retry_status and exchange.attempts < 2:
            return self.retry_to
        return None

    def on_end(self, exchange: Exchange) -> None:
        self.ended.append(exchange)

    def on_request(self, exchange: Exchange) -> Forward | Respond:
        return super().on_request(exchange)


@asynccontextmanager
async def proxy(handler: StaticHandler, config: ServerConfig = FAST) -> AsyncIterator[ProxyServer]:
    server = ProxyServer(handler, config)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop(timeout=2.0)


async def exchange_raw(port: int, data: bytes, *, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Send `data`, read until the proxy closes or `timeout` passes: (what came back, closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    received = b""
    closed = False
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                received += chunk
            closed = True
    except TimeoutError:
        pass
    except ConnectionResetError:
        closed = True
    writer.close()
    return received, closed


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
