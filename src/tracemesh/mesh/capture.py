"""Transparent capture: a connection iptables redirected to a capture port is read for its
original destination (`SO_ORIGINAL_DST`), then served as HTTP by the usual `ClientConnection`
(its exchanges carry the destination) or, when its first bytes are not HTTP, piped as bytes to
where it was going (Istio's TCP passthrough); a connection that was not redirected is plain HTTP,
so explicit-proxy callers keep working on the same port.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, cast

from tracemesh.mesh.downstream import ClientConnection
from tracemesh.mesh.http1 import Event
from tracemesh.mesh.original_dst import original_destination
from tracemesh.mesh.upstream import Address, UpstreamConnection

if TYPE_CHECKING:
    from tracemesh.mesh.server import ProxyServer

log = logging.getLogger("tracemesh.mesh.capture")

# Request lines a client opens HTTP/1.x with, and HTTP/2's preface (h2c prior knowledge).
_METHODS = (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"TRACE")
_OPENINGS = (*(method + b" " for method in _METHODS), b"PRI * HTTP/2.0\r\n")
_LONGEST = max(len(opening) for opening in _OPENINGS)


class Sniffed(Enum):
    HTTP = "http"
    TCP = "tcp"
    MORE = "more"  # could still become HTTP: wait for more bytes


def sniff(data: bytes) -> Sniffed:
    """What a connection's first bytes say it speaks."""
    head = data[:_LONGEST]
    if any(head.startswith(opening) for opening in _OPENINGS):
        return Sniffed.HTTP
    if any(opening.startswith(head) for opening in _OPENINGS):
        return Sniffed.MORE
    return Sniffed.TCP


@dataclass(frozen=True, slots=True)
class CaptureMode:
    """How a capture listener passes non-HTTP bytes on: outbound to the original destination,
    inbound (`app_host` set) to the local app on the original port."""

    app_host: str | None = None
    sniff_timeout: float = 0.5  # no bytes by then: a server-first protocol (MySQL...): bytes

    def passthrough(self, destination: Address) -> Address:
        return (self.app_host, destination[1]) if self.app_host else destination


class CapturedConnection(asyncio.Protocol):
    """A connection accepted on a capture port, until its first bytes say what it is."""

    def __init__(self, server: ProxyServer, mode: CaptureMode) -> None:
        self.server = server
        self.mode = mode
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.destination: Address | None = None
        self.buffer = b""
        self.since = server.now
        self.done = False  # handed over or closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
        sock = transport.get_extra_info("socket")
        found = original_destination(sock) if sock is not None else None
        local = transport.get_extra_info("sockname")
        if found is None or (isinstance(local, tuple) and found == (local[0], local[1])):
            self._to_http(b"")  # not redirected: an explicit-proxy caller
            return
        self.destination = found
        self.since = self.server.now
        self.server.connections.add(self)
        if self.server.draining:
            self.abort()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        verdict = sniff(self.buffer)
        if verdict is Sniffed.HTTP:
            self._to_http(self.buffer)
        elif verdict is Sniffed.TCP:
            self._to_tcp(self.buffer, eof=False)

    def eof_received(self) -> bool:
        if self.buffer:
            self._to_tcp(self.buffer, eof=True)
            return True
        self.abort()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self.done = True
            self.server.forget(self)

    # -- as the server tends its connections --

    def check_time(self, now: float) -> None:
        if not self.done and now - self.since > self.mode.sniff_timeout:
            self._to_tcp(self.buffer, eof=False)

    def shutdown(self) -> None:
        if not self.done and not self.buffer:
            self.abort()

    def abort(self) -> None:
        if not self.done:
            self.done = True
            self.server.forget(self)
        if self.transport is not None:
            self.transport.abort()

    # -- handing over --

    def _to_http(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        self.done = True
        self.server.forget(self)
        conn = ClientConnection(self.server)
        conn.destination = self.destination
        transport.set_protocol(conn)
        conn.connection_made(transport)
        if data:
            conn.data_received(data)

    def _to_tcp(self, data: bytes, *, eof: bool) -> None:
        transport = self.transport
        assert transport is not None and self.destination is not None
        self.done = True
        self.server.forget(self)
        target = self.mode.passthrough(self.destination)
        TcpPassthrough(self.server, transport, self.peer, target, data, eof=eof)


class TcpPassthrough(asyncio.Protocol):
    """Bytes both ways between a captured client and `target`, with half-close and
    backpressure; closed after the server's tunnel idle timeout without traffic."""

    def __init__(
        self,
        server: ProxyServer,
        transport: asyncio.Transport,
        peer: tuple[str, int],
        target: Address,
        data: bytes,
        *,
        eof: bool,
    ) -> None:
        self.server = server
        self.transport = transport
        self.peer = peer
        self.target = target
        self.pending: list[bytes] = [data] if data else []
        self.client_eof = eof
        self.up_eof = False
        self.up: UpstreamConnection | None = None
        self.closing = False
        self.last_io = server.now
        transport.set_protocol(self)
        transport.set_write_buffer_limits(high=server.config.write_buffer_high)
        transport.pause_reading()  # until the upstream is there
        server.connections.add(self)
        server.stats.passthrough += 1
        self.connecting: asyncio.Task[None] | None = server.pool.open(
            target, self, server.config.connect_timeout
        )

    # -- the client side --

    def data_received(self, data: bytes) -> None:
        self.last_io = self.server.now
        if self.up is not None:
            self.up.send(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.up is not None:
            self.up.write_eof()
        if self.up_eof:
            self._close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._close()

    def pause_writing(self) -> None:
        if self.up is not None:
            self.up.pause_reading(True)

    def resume_writing(self) -> None:
        if self.up is not None:
            self.up.pause_reading(False)

    # -- upstream.Owner --

    def upstream_ready(self, conn: UpstreamConnection) -> None:
        self.connecting = None
        if self.closing:
            conn.close()
            return
        self.up = conn
        conn.raw = True
        conn.adopt(self)
        for data in self.pending:
            conn.send(data)
        self.pending.clear()
        if self.client_eof:
            conn.write_eof()
        else:
            self.transport.resume_reading()

    def upstream_failed(self, address: Address, error: str) -> None:
        self.connecting = None
        log.debug("passthrough to %s:%d failed: %s", address[0], address[1], error)
        self.abort()  # a reset, as the client would have got from the destination

    def upstream_events(self, conn: UpstreamConnection, events: list[Event]) -> None:
        raise AssertionError("a passthrough connection is raw")  # pragma: no cover

    def upstream_raw(self, data: bytes) -> None:
        self.last_io = self.server.now
        if not self.closing:
            self.transport.write(data)

    def upstream_eof(self) -> None:
        self.up_eof = True
        if not self.closing and self.transport.can_write_eof():
            self.transport.write_eof()
        if self.client_eof:
            self._close()

    def upstream_lost(self, conn: UpstreamConnection, exc: Exception | None) -> None:
        self.up = None
        self._close()

    def upstream_writable(self, writable: bool) -> None:
        if self.closing:
            return
        if writable:
            self.transport.resume_reading()
        else:
            self.transport.pause_reading()

    # -- as the server tends its connections --

    def check_time(self, now: float) -> None:
        if not self.closing and now - self.last_io > self.server.config.tunnel_idle_timeout:
            self._close()

    def shutdown(self) -> None:
        """The server stops: a byte stream has no request boundary to wait for, so it stays
        until it ends or the server's drain timeout aborts it."""

    def abort(self) -> None:
        self._close()
        self.transport.abort()

    def _close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        up, self.up = self.up, None
        if up is not None:
            up.close()
        self.transport.close()
        self.server.forget(self)
