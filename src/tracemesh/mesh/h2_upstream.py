"""HTTP/2 cleartext connections to upstreams, many streams on each, and the pool that shares
them: per address, streams go on the newest connection with room under the peer's
MAX_CONCURRENT_STREAMS, and a new connection opens when none has room.

Each stream belongs to a `StreamOwner` (a proxied downstream stream) that gets the response's
head, data, trailers and end, or a reset; and `h2_sent` whenever request data it handed over
went out, so it can hand back the same window to its client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol, cast

from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError

from tracemesh.mesh.http1 import DEFAULT_LIMITS, Headers, Limits, ResponseHead
from tracemesh.mesh.http2 import FrameGuard, Sender, new_connection, response_head, trailers
from tracemesh.runtime.tasks import TaskOwner

log = logging.getLogger("tracemesh.mesh.h2_upstream")
Address = tuple[str, int]
_MAX_STREAMS = 1000  # per connection, whatever the peer allows


class StreamOwner(Protocol):
    def h2_ready(self, conn: H2Upstream) -> None: ...

    def h2_failed(self, error: str) -> None: ...

    def h2_response(self, head: ResponseHead, end: bool) -> None: ...

    def h2_data(self, data: bytes, flow_length: int) -> None: ...

    def h2_trailers(self, headers: Headers) -> None: ...

    def h2_end(self) -> None: ...

    def h2_reset(self, code: int, remote: bool) -> None: ...

    def h2_sent(self, size: int) -> None: ...


class H2Upstream(asyncio.Protocol):
    """One HTTP/2 connection to an upstream."""

    def __init__(self, pool: H2Pool, address: Address) -> None:
        self.pool = pool
        self.address = address
        self.conn: H2Connection = new_connection(pool.limits, client=True)
        self.sender = Sender(self.conn)
        self.guard = FrameGuard()
        self.owners: dict[int, StreamOwner] = {}
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.going_away = False  # the upstream sent GOAWAY: no new streams
        self.idle_since = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._flush_soon = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=self.pool.write_buffer_high)
        self._write()

    def data_received(self, data: bytes) -> None:
        try:
            if not self.guard.feed(data):
                self.conn.close_connection(ErrorCodes.FRAME_SIZE_ERROR)
                raise ProtocolError("a frame over the maximum frame size")
            events = self.conn.receive_data(data)
        except H2Error as exc:  # h2 has queued a GOAWAY: send it, then fail every stream
            log.debug("HTTP/2 protocol error from %s:%d: %s", *self.address, exc)
            self._flush()
            self.close()
            return
        for event in events:
            if isinstance(event, DataReceived):
                owner = self.owners.get(event.stream_id)
                if owner is not None:
                    owner.h2_data(event.data, event.flow_controlled_length)
                else:
                    self.ack(event.stream_id, event.flow_controlled_length)
            elif isinstance(event, ResponseReceived):
                owner = self.owners.get(event.stream_id)
                if owner is not None:
                    owner.h2_response(response_head(event.headers), event.stream_ended is not None)
            elif isinstance(event, TrailersReceived):
                owner = self.owners.get(event.stream_id)
                if owner is not None:
                    owner.h2_trailers(trailers(event.headers))
            elif isinstance(event, StreamEnded):
                owner = self._release(event.stream_id)
                if owner is not None:
                    owner.h2_end()
            elif isinstance(event, StreamReset):
                owner = self._release(event.stream_id)
                if owner is not None:
                    owner.h2_reset(event.error_code or 0, True)
            elif isinstance(event, WindowUpdated):
                self._window_opened(event.stream_id)
            elif isinstance(event, ConnectionTerminated):
                self._goaway(event.last_stream_id)
        self._write()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        owners, self.owners = self.owners, {}
        for owner in owners.values():
            owner.h2_reset(ErrorCodes.CONNECT_ERROR, False)

    def pause_writing(self) -> None:
        self.sender.blocked = True

    def resume_writing(self) -> None:
        self.sender.blocked = False
        self._window_opened(0)
        self._write()

    # -- used by stream owners --

    @property
    def has_room(self) -> bool:
        limit = min(self.conn.remote_settings.max_concurrent_streams, _MAX_STREAMS)
        return not self.closed and not self.going_away and len(self.owners) < limit

    def open_stream(self, headers: Headers, owner: StreamOwner, *, end: bool) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers, end_stream=end)
        self.owners[stream_id] = owner
        self._write()
        return stream_id

    def send(self, stream_id: int, data: bytes) -> int:
        """Queue request data; the bytes that went out now."""
        sent = self.sender.data(stream_id, data)
        self._write()
        return sent

    def end(self, stream_id: int, trailer_headers: Headers | None = None) -> None:
        self.sender.end(stream_id, trailer_headers)
        self._write()

    def ack(self, stream_id: int, size: int) -> None:
        """`size` bytes of response data were passed on: the upstream may send that many more."""
        if size > 0 and not self.closed:
            try:
                self.conn.acknowledge_received_data(size, stream_id)
            except H2Error:
                return
            self._write()

    def reset(self, stream_id: int, code: int = ErrorCodes.CANCEL) -> None:
        """Abandon a stream (its owner gets no more callbacks)."""
        if self._release(stream_id) is None:
            return
        self.sender.discard(stream_id)
        if not self.closed:
            with contextlib.suppress(H2Error):
                self.conn.reset_stream(stream_id, code)
            self._write()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()  # connection_lost fails the streams left

    # -- inside --

    def _release(self, stream_id: int) -> StreamOwner | None:
        owner = self.owners.pop(stream_id, None)
        if owner is not None:
            self.sender.discard(stream_id)
            if not self.owners:
                self.idle_since = time.monotonic()
            self.pool.room(self)
        return owner

    def _window_opened(self, stream_id: int) -> None:
        for sent_on, size in self.sender.window_opened(stream_id).items():
            owner = self.owners.get(sent_on)
            if owner is not None:
                owner.h2_sent(size)

    def _goaway(self, last_stream_id: int | None) -> None:
        """Streams above `last_stream_id` were never processed: they fail as refused."""
        self.going_away = True
        self.pool.forget(self)
        last = last_stream_id if last_stream_id is not None else 2**31
        for stream_id in [sid for sid in self.owners if sid > last]:
            owner = self._release(stream_id)
            if owner is not None:
                owner.h2_reset(ErrorCodes.REFUSED_STREAM, False)
        if not self.owners:
            self.close()

    def _write(self) -> None:
        """Send what h2 queued once the current callback is done (one write for all of it)."""
        if not self._flush_soon:
            self._flush_soon = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class H2Pool:
    """HTTP/2 connections per upstream address, shared by every downstream stream."""

    def __init__(
        self,
        *,
        limits: Limits = DEFAULT_LIMITS,
        connect_timeout: float = 5.0,
        idle_timeout: float = 60.0,
        write_buffer_high: int = 256 * 1024,
    ) -> None:
        self.limits = limits
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.write_buffer_high = write_buffer_high
        self._conns: dict[Address, list[H2Upstream]] = {}
        self._waiting: dict[Address, list[StreamOwner]] = {}
        self._connecting: set[Address] = set()
        self._tasks = TaskOwner()
        self._sweeper: asyncio.TimerHandle | None = None
        self.opened = 0

    def get(self, address: Address, owner: StreamOwner) -> H2Upstream | None:
        """A connection with room for one more stream now, or None: then `owner.h2_ready` or
        `owner.h2_failed` is called later."""
        for conn in reversed(self._conns.get(address, ())):
            if conn.has_room:
                return conn
        self._waiting.setdefault(address, []).append(owner)
        self._connect_soon(address)
        return None

    def cancel(self, address: Address, owner: StreamOwner) -> None:
        waiting = self._waiting.get(address)
        if waiting and owner in waiting:
            waiting.remove(owner)

    async def _connect(self, address: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: H2Upstream(self, address), address[0], address[1]
                )
        except (TimeoutError, OSError) as exc:
            self._connecting.discard(address)
            error = "connect timeout" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            for owner in self._waiting.pop(address, []):
                owner.h2_failed(error)
            return
        self._connecting.discard(address)
        self.opened += 1
        self._conns.setdefault(address, []).append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(max(self.idle_timeout / 2, 0.05), self._sweep)
        self.room(conn)

    def room(self, conn: H2Upstream) -> None:
        """`conn` may have room: hand it to the streams waiting for its address."""
        waiting = self._waiting.get(conn.address)
        if not waiting:
            return
        while waiting and conn.has_room:
            waiting.pop(0).h2_ready(conn)
        if not waiting:
            del self._waiting[conn.address]
        elif not any(other.has_room for other in self._conns.get(conn.address, ())):
            self._connect_soon(conn.address)  # more streams than the connections take

    def _connect_soon(self, address: Address) -> None:
        if address not in self._connecting:
            self._connecting.add(address)
            self._tasks.spawn(f"h2 connect {address[0]}:{address[1]}", self._connect(address))

    def forget(self, conn: H2Upstream) -> None:
        conns = self._conns.get(conn.address)
        if conns and conn in conns:
            conns.remove(conn)

    def _sweep(self) -> None:
        self._sweeper = None
        horizon = time.monotonic() - self.idle_timeout
        for conns in list(self._conns.values()):
            for conn in list(conns):
                if not conn.owners and conn.idle_since < horizon:
                    conn.close()
        if any(self._conns.values()):
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(max(self.idle_timeout / 2, 0.05), self._sweep)

    @property
    def connections(self) -> int:
        return sum(len(conns) for conns in self._conns.values())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conns in list(self._conns.values()):
            for conn in list(conns):
                conn.close()
        self._conns.clear()
        await self._tasks.cancel_all()
