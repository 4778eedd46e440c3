"""The floor for a Python proxy: the ~90-line asyncio Protocol + httptools proxy on uvloop of
perf-anchors.md B6, re-created as a peer for `bench/proxy.py` (measured side by side, so machine
load hits it and tracemesh alike). Content-Length bodies only, no streaming, chunking, limits,
timeouts, retries or errors handled: everything the tracemesh proxy core does on top is its cost.

Each client connection gets one keep-alive upstream connection; requests are forwarded with one
header added (`x-b3-sampled: 1`), and a (random id, method, url, status, start, duration) tuple
is recorded per request, as in B6.

Usage: python bench/bare_proxy.py PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import deque

import httptools
import uvloop

SPANS: deque[tuple[bytes, bytes, bytes, int, float, float]] = deque(maxlen=10_000)


class Upstream(asyncio.Protocol):
    def __init__(self, client: Client) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.headers: list[bytes] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.headers, self.body = [], []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in (b"content-length", b"connection"):
            self.headers.append(name + b": " + value + b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        status = self.parser.get_status_code()
        head = b"HTTP/1.1 %d OK\r\n%bcontent-length: %d\r\n\r\n" % (
            status, b"".join(self.headers), len(body))  # fmt: skip
        self.client.respond(head + body, status)


class Client(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.up: Upstream | None = None
        self.pending: deque[bytes] = deque()
        self.busy = False
        self.url = b""
        self.headers: list[bytes] = []
        self.body: list[bytes] = []
        self.started = 0.0
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.headers, self.body = [], []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in (b"content-length", b"connection"):
            self.headers.append(name + b": " + value + b"\r\n")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        method = self.parser.get_method()
        request = b"%b %b HTTP/1.1\r\n%bx-b3-sampled: 1\r\ncontent-length: %d\r\n\r\n%b" % (
            method, self.url, b"".join(self.headers), len(body), body)  # fmt: skip
        self.pending.append(request)
        self._next()

    def _next(self) -> None:
        if self.busy or not self.pending:
            return
        self.busy = True
        self.started = time.perf_counter()
        request = self.pending.popleft()
        if self.up is not None and self.up.transport is not None:
            self.up.transport.write(request)
        else:
            self.connecting = asyncio.ensure_future(self._connect(request))

    async def _connect(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        _, self.up = await loop.create_connection(
            lambda: Upstream(self), "127.0.0.1", self.upstream_port
        )
        assert self.up.transport is not None
        self.up.transport.write(request)

    def respond(self, data: bytes, status: int) -> None:
        SPANS.append((os.urandom(8), self.parser.get_method(), self.url, status, self.started,
                      time.perf_counter() - self.started))  # fmt: skip
        if self.transport is not None:
            self.transport.write(data)
        self.busy = False
        self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.up is not None and self.up.transport is not None:
            self.up.transport.close()


async def main(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(upstream_port), "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
