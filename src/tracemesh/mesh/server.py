"""The proxy's listener: accepts client connections (each a `downstream.ClientConnection`),
owns the upstream pool and the settings, enforces timeouts, and shuts down cleanly.

Time is checked by one server-wide tick (every `tick` seconds) rather than a timer per request:
per-request timers would cost more than the requests at tens of thousands per second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from tracemesh.mesh.capture import CapturedConnection, CaptureMode
from tracemesh.mesh.downstream import ClientConnection
from tracemesh.mesh.h2_upstream import H2Pool
from tracemesh.mesh.handler import Handler
from tracemesh.mesh.http1 import DEFAULT_LIMITS, Limits
from tracemesh.mesh.upstream import Pool

log = logging.getLogger("tracemesh.mesh.server")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    limits: Limits = DEFAULT_LIMITS
    connect_timeout: float = 5.0
    response_timeout: float = 15.0  # request end -> response end, per try; 0: none (Envoy: 15 s)
    idle_timeout: float = 300.0  # no byte either way during an exchange (Envoy stream idle: 5 min)
    keepalive_timeout: float = 60.0  # a client connection idle between requests
    head_timeout: float = 10.0  # a request head must arrive whole within this
    tunnel_idle_timeout: float = 3600.0  # upgraded and h2c connections (Envoy tcp_proxy: 1 h)
    write_buffer_high: int = 256 * 1024  # per direction, before the other side stops reading
    max_idle_per_upstream: int = 64
    upstream_idle_timeout: float = 60.0
    discard_body_limit: int = 1024 * 1024  # request body read and dropped after a local answer
    tick: float = 0.25  # timeout resolution


class Connection(Protocol):
    """A client connection as the server tends it: HTTP/1.1 or, after an h2c preface, HTTP/2."""

    peer: tuple[str, int]

    def check_time(self, now: float) -> None: ...

    def shutdown(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(slots=True)
class Stats:
    connections: int = 0
    requests: int = 0
    bad_requests: int = 0  # refused by the parser (400/405/414/431/501/505)
    local: dict[str, int] = field(default_factory=dict)  # locally answered exchanges by flag
    passthrough: int = 0  # captured connections piped as bytes (not HTTP)


class ProxyServer:
    """Listens on one address; `stop()` stops accepting and lets in-flight requests finish.
    With `capture`, connections iptables redirected here are served transparently (capture.py).
    """

    def __init__(
        self,
        handler: Handler,
        config: ServerConfig | None = None,
        capture: CaptureMode | None = None,
    ) -> None:
        self.handler = handler
        self.capture = capture
        self.config = config = config or ServerConfig()
        self.pool = Pool(
            max_idle_per_address=config.max_idle_per_upstream,
            idle_timeout=config.upstream_idle_timeout,
            connect_timeout=config.connect_timeout,
            write_buffer_high=config.write_buffer_high,
            limits=config.limits,
        )
        self.h2_pool = H2Pool(  # HTTP/2 upstream streams (gRPC), multiplexed per address
            limits=config.limits,
            connect_timeout=config.connect_timeout,
            idle_timeout=config.upstream_idle_timeout,
            write_buffer_high=config.write_buffer_high,
        )
        self.connections: set[Connection] = set()
        self.stats = Stats()
        self.draining = False
        self.now = time.monotonic()  # the tick's coarse clock, for timeouts
        self.port = 0
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._all_closed = asyncio.Event()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        capture = self.capture

        def accept() -> asyncio.Protocol:
            return ClientConnection(self) if capture is None else CapturedConnection(self, capture)

        self._server = await loop.create_server(
            accept, host, port, backlog=1024, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._tick()

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving() and not self.draining

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        self._ticker = loop.call_later(self.config.tick, self._tick)
        self.now = now = time.monotonic()
        for conn in list(self.connections):
            try:
                conn.check_time(now)
            except Exception:  # one connection's bug must not stop every timeout
                log.exception("timeout check failed for %s", conn.peer)

    def forget(self, conn: Connection) -> None:
        """`conn` has closed."""
        self.connections.discard(conn)
        if self.draining and not self.connections:
            self._all_closed.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close idle connections, give in-flight requests `timeout` seconds to
        finish (their connections close after), then cut whatever is left."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            try:
                await asyncio.wait_for(self._all_closed.wait(), timeout)
            except TimeoutError:
                log.warning("%d connections still busy after %.1fs: closing them",
                            len(self.connections), timeout)  # fmt: skip
                for conn in list(self.connections):
                    conn.abort()
        if self._ticker is not None:
            self._ticker.cancel()
        await self.pool.close()
        await self.h2_pool.close()
        if self._server is not None:
            await self._server.wait_closed()
