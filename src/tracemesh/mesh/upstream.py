"""Connections to upstreams: one asyncio protocol per TCP connection, and a pool that keeps a
bounded number of idle keep-alive connections per address and opens new ones with a timeout.

A connection serves one request at a time. While it does, it belongs to an `Owner` (the server's
client connection) and hands it parsed response events; the pool takes it back only when the
response ended cleanly with keep-alive, so a connection that erred, was told `Connection: close`,
or still had a response in flight is closed instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol, cast

from tracemesh.mesh.http1 import DEFAULT_LIMITS, END, Event, Limits, ResponseParser
from tracemesh.runtime.tasks import TaskOwner

log = logging.getLogger("tracemesh.mesh.upstream")
Address = tuple[str, int]


class Owner(Protocol):
    """What a connection reports to whoever is using it."""

    def upstream_ready(self, conn: UpstreamConnection) -> None: ...

    def upstream_failed(self, address: Address, error: str) -> None: ...

    def upstream_events(self, conn: UpstreamConnection, events: list[Event]) -> None: ...

    def upstream_raw(self, data: bytes) -> None: ...

    def upstream_eof(self) -> None: ...

    def upstream_lost(self, conn: UpstreamConnection, exc: Exception | None) -> None: ...

    def upstream_writable(self, writable: bool) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: Pool, address: Address) -> None:
        self.pool = pool
        self.address = address
        self.parser = ResponseParser(pool.limits)
        self.transport: asyncio.Transport | None = None
        self.owner: Owner | None = None
        self.raw = False  # tunnelling bytes (after a 101 or for h2c), not parsing HTTP
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.received = 0  # bytes since the current request went out
        self._early: list[bytes] | None = []  # before the first owner (an h2 server speaks first)
        self._reading_paused = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        transport.set_write_buffer_limits(high=self.pool.write_buffer_high)

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is None:
            if self._early is not None:
                self._early.append(data)
            else:  # an idle connection got unsolicited bytes: it is out of step
                self.close()
            return
        self.received += len(data)
        if self.raw:
            owner.upstream_raw(data)
        else:
            owner.upstream_events(self, self.parser.feed(data))

    def eof_received(self) -> bool | None:
        owner = self.owner
        if owner is None:
            return None
        if self.raw:
            owner.upstream_eof()
            return True  # keep the other direction open (half-close)
        events = self.parser.eof()
        if events and events[-1] is not END:  # closed mid-response: a termination, not bad HTTP
            self.owner = None
            owner.upstream_lost(self, None)
        elif events:
            owner.upstream_events(self, events)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        owner, self.owner = self.owner, None
        if owner is not None:
            owner.upstream_lost(self, exc)
        else:
            self.pool.forget(self)

    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.upstream_writable(False)

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.upstream_writable(True)

    # -- used by the owner --

    def adopt(self, owner: Owner) -> None:
        """Serve `owner` from now on; hand it what arrived before it took over."""
        self.owner = owner
        if self._early is None and not self.closed:  # the usual case: a pooled connection
            return
        early, self._early = self._early, None
        for data in early or ():
            self.data_received(data)
        if self.closed and self.owner is owner:
            self.owner = None
            owner.upstream_lost(self, None)

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def pause_reading(self, paused: bool) -> None:
        if paused != self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = paused
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def write_eof(self) -> None:
        if self.transport is not None and not self.closed and self.transport.can_write_eof():
            self.transport.write_eof()

    def close(self) -> None:
        self.owner = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
            self.pool.forget(self)

    def abort(self) -> None:
        self.owner = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()
            self.pool.forget(self)


class Pool:
    """Idle keep-alive connections per upstream address, most recently used first."""

    def __init__(
        self,
        *,
        max_idle_per_address: int = 64,
        idle_timeout: float = 60.0,
        connect_timeout: float = 5.0,
        write_buffer_high: int = 256 * 1024,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.max_idle = max_idle_per_address
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.write_buffer_high = write_buffer_high
        self.limits = limits
        self._idle: dict[Address, list[UpstreamConnection]] = {}
        self._tasks = TaskOwner()
        self._sweeper: asyncio.TimerHandle | None = None
        self.opened = 0  # connections made, for tests and stats

    def take(self, address: Address) -> UpstreamConnection | None:
        """An idle connection to `address`, ready for one more request, or None."""
        idle = self._idle.get(address)
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if not conn.closed and transport is not None and not transport.is_closing():
                conn.reused = True
                return conn
        return None

    def open(
        self, address: Address, owner: Owner, timeout: float | None = None
    ) -> asyncio.Task[None]:
        """Connect in the background; report to `owner.upstream_ready` or `.upstream_failed`.
        Cancelling the returned task abandons the attempt."""
        name = f"connect {address[0]}:{address[1]}"
        return self._tasks.spawn(name, self._connect(address, owner, timeout))

    async def _connect(self, address: Address, owner: Owner, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout or self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(self, address), address[0], address[1]
                )
        except TimeoutError:
            owner.upstream_failed(address, "connect timeout")
            return
        except OSError as exc:
            owner.upstream_failed(address, exc.strerror or str(exc))
            return
        self.opened += 1
        owner.upstream_ready(conn)

    def put(self, conn: UpstreamConnection) -> None:
        """Take `conn` back after a complete response with keep-alive (closes it if not wanted)."""
        conn.owner = None
        if conn._reading_paused:  # it was paused for a slow client
            conn.pause_reading(False)
        idle = self._idle.setdefault(conn.address, [])
        if conn.closed or not conn.parser.idle or len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conn.received = 0
        idle.append(conn)
        if self._sweeper is None:
            self._arm_sweeper()

    def forget(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.address)
        if idle and conn in idle:
            idle.remove(conn)

    def _arm_sweeper(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(max(self.idle_timeout / 2, 0.05), self._sweep)

    def _sweep(self) -> None:
        """Close connections idle longer than idle_timeout (the oldest are first in each list)."""
        self._sweeper = None
        horizon = time.monotonic() - self.idle_timeout
        for idle in self._idle.values():
            while idle and idle[0].idle_since < horizon:
                idle.pop(0).close()
        if any(self._idle.values()):
            self._arm_sweeper()

    @property
    def idle_count(self) -> int:
        return sum(len(idle) for idle in self._idle.values())

    async def close(self) -> None:
        """Close idle connections and abandon connection attempts in progress."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in list(self._idle.values()):
            for conn in list(idle):
                conn.close()
        self._idle.clear()
        await self._tasks.cancel_all()
