"""One client connection through the proxy: parses its requests (http1), asks the `Handler`
where each goes, and streams bodies both ways through a pooled upstream connection.

Bodies are never held whole: each read is parsed, re-framed and written on, and a peer whose
write buffer fills pauses reading on the other side. Requests are served in order: pipelined ones
wait, parsed, in a queue, with reading paused. After a 101 the connection becomes a byte tunnel
to its upstream; an HTTP/2 prior-knowledge connection (gRPC over h2c) is handed to
`h2_downstream`, which proxies it stream by stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from tracemesh.mesh import handler as flags
from tracemesh.mesh.h2_downstream import H2ServerConnection
from tracemesh.mesh.handler import Exchange, Forward, Respond
from tracemesh.mesh.http1 import (
    END,
    LAST_CHUNK,
    Event,
    Invalid,
    RequestHead,
    RequestParser,
    ResponseHead,
    Tunnel,
    chunk,
    encode_request,
    encode_response,
    local_response,
)
from tracemesh.mesh.upstream import Address, UpstreamConnection

if TYPE_CHECKING:
    from tracemesh.mesh.server import ProxyServer

log = logging.getLogger("tracemesh.mesh.downstream")

# Why a client connection's reading is paused (a bit mask: reading resumes when all clear).
QUEUED, UPSTREAM_FULL, UPGRADE_WAIT = 1, 2, 4
_NO_HEAD = RequestHead(b"", b"", b"", [], False)  # placeholder between exchanges


class ClientConnection(asyncio.Protocol):
    """One downstream connection and the exchange in progress on it."""

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.handler = server.handler
        self.config = server.config
        self.parser = RequestParser(server.config.limits)
        self.queue: deque[Event] = deque()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.out: list[bytes] = []  # to the client, written once per callback
        self.up_out: list[bytes] = []  # to the upstream, likewise
        self.paused = 0
        self.client_writable = True
        self.closing = False
        self.in_drain = False  # re-entry guard
        self.client_eof = False
        self.up_eof = False
        self.upgrading = False  # an upgrade request was forwarded: the parser is done for good
        self.last_io = server.now
        self.head_since = 0.0
        self.tunnel = False
        self.destination: Address | None = None  # set for a captured connection (capture.py)
        self._reset()

    def _reset(self) -> None:
        self.ex: Exchange | None = None
        self.head: RequestHead = _NO_HEAD
        self.keep_alive = True
        self.req_done = False
        self.req_chunked = False
        self.discard = False
        self.discarded = 0
        self.waiting = False  # the upstream is not attached yet: body events stay queued
        self.up: UpstreamConnection | None = None
        self.up_head = b""
        self.connecting: asyncio.Task[None] | None = None
        self.delay: asyncio.TimerHandle | None = None
        self.resp_head: ResponseHead | None = None
        self.resp_started = False
        self.resp_done = False
        self.resp_chunked = False
        self.deadline = 0.0
        self.forward_timeout = 0.0
        self.upgrade_rest: list[bytes] | None = None  # client bytes after an upgrade request

    # -- asyncio.Protocol: the client side --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        transport.set_write_buffer_limits(high=self.config.write_buffer_high)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
        self.server.connections.add(self)
        self.server.stats.connections += 1
        if self.server.draining:
            self._close()

    def data_received(self, data: bytes) -> None:
        self.last_io = self.server.now
        if self.tunnel:
            self._tunnel_data(data)
            return
        if self.upgrade_rest is not None:  # waiting for the upstream's 101
            self.upgrade_rest.append(data)
            self._pause(UPGRADE_WAIT, True)
            return
        self.queue.extend(self.parser.feed(data))
        self._pump()

    def eof_received(self) -> bool:
        self.client_eof = True  # answer what was asked in full, then close
        if self.tunnel:
            if self.up is not None:
                self.up.write_eof()
            if self.up_eof:
                self._close()
        else:
            self._pump()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.ex is not None:
            if not self.resp_done:
                self.ex.add_flag(flags.DOWNSTREAM_CONNECTION_TERMINATION)
            self._end_exchange(abort=True)
        self.server.forget(self)

    def pause_writing(self) -> None:
        self.client_writable = False
        if self.up is not None:
            self.up.pause_reading(True)

    def resume_writing(self) -> None:
        self.client_writable = True
        if self.up is not None:
            self.up.pause_reading(False)
        self._pump()

    # -- the request side --

    def _pump(self) -> None:
        if self.queue or self.paused or self.client_eof:
            self._drain()
        if self.out or self.up_out:
            self._flush()

    def _drain(self) -> None:
        """Handle queued client events until one must wait (for an upstream, or for the response
        before a pipelined request)."""
        if self.in_drain:
            return
        self.in_drain = True
        queue = self.queue
        try:
            while queue and not self.closing:
                if self.ex is None:
                    if not self.client_writable:  # a client that does not read gets no more
                        break
                elif (self.req_done or self.waiting) and not isinstance(queue[0], Tunnel):
                    break
                event = queue.popleft()
                if type(event) is bytes:
                    self._request_body(event)
                elif event is END:
                    self._request_end()
                elif isinstance(event, RequestHead):
                    self._request_head(event)
                elif isinstance(event, Invalid):
                    self._invalid(event)
                elif isinstance(event, Tunnel):
                    self._tunnel_event(event)
        finally:
            self.in_drain = False
        if self.closing:
            return
        if bool(queue) != bool(self.paused & QUEUED):
            self._pause(QUEUED, bool(queue))
        if (
            self.client_eof
            and not queue
            and self.upgrade_rest is None
            and not self.tunnel
            and (self.ex is None or not self.req_done)  # nothing more can come
        ):
            if self.ex is not None:
                self.ex.add_flag(flags.DOWNSTREAM_CONNECTION_TERMINATION)
            self._close()

    def _request_head(self, head: RequestHead) -> None:
        self.server.stats.requests += 1
        self.head_since = 0.0
        self.ex = ex = Exchange(head, self.peer, time.time_ns(), time.monotonic(),
                                destination=self.destination)  # fmt: skip
        self.head = head
        self.keep_alive = head.keep_alive and not self.server.draining
        self.upgrading = bool(head.upgrade)
        self.deadline = 0.0
        try:
            decision = self.handler.on_request(ex)
        except Exception:
            log.exception("handler failed on %s %r", head.method, head.target)
            decision = Respond(500, b"proxy handler error\n")
        if isinstance(decision, Forward):
            self._forward(decision)
        elif decision.delay > 0:
            ex.add_flag(flags.DELAY_INJECTED)
            self.waiting = True  # the body waits, queued, until the answer
            loop = asyncio.get_running_loop()
            self.delay = loop.call_later(decision.delay, self._delayed_respond, decision)
        else:
            self._respond(decision.status, decision.body, decision.headers, decision.flag)

    def _delayed_respond(self, decision: Respond) -> None:
        self.delay = None
        if self.ex is not None and not self.closing:
            self._respond(decision.status, decision.body, decision.headers, decision.flag)
            self._pump()

    def _request_body(self, data: bytes) -> None:
        ex = self.ex
        if ex is None:
            return
        ex.request_bytes += len(data)
        if self.discard:
            self.discarded += len(data)
            if self.discarded > self.config.discard_body_limit:
                self._close()
        else:
            self.up_out.append(chunk(data) if self.req_chunked else data)

    def _request_end(self) -> None:
        self.req_done = True
        if self.discard:
            if self.resp_done:
                self._finish()
            return
        if self.req_chunked:
            self.up_out.append(LAST_CHUNK)
        timeout = self.forward_timeout
        self.deadline = time.monotonic() + timeout if timeout > 0 else 0.0

    def _invalid(self, event: Invalid) -> None:
        log.debug("refused a request from %s: %d %s", self.peer, event.status, event.reason)
        self.server.stats.bad_requests += 1
        self.keep_alive = False
        if self.ex is None:
            self.out.append(local_response(event.status, event.reason.encode() + b"\n", close=True))
            self._close()
        elif not self.resp_started:
            self._drop_upstream()
            body = event.reason.encode() + b"\n"
            self._respond(event.status, body, (), flags.DOWNSTREAM_PROTOCOL_ERROR)
        else:
            self.ex.add_flag(flags.DOWNSTREAM_PROTOCOL_ERROR)
            self._close()

    def _respond(
        self, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = (), flag: str = "-"
    ) -> None:
        """Answer the current request locally; the rest of its body is read and dropped."""
        ex = self.ex
        assert ex is not None
        head = self.head
        ex.status = status
        if flag != "-":
            ex.add_flag(flag)
        local = self.server.stats.local
        local[flag] = local.get(flag, 0) + 1
        if not self.req_done and head.framing != "none":
            left = head.content_length - ex.request_bytes
            expects = any(name == b"expect" for name, _ in head.headers)
            if expects or head.upgrade or left > self.config.discard_body_limit:
                self.keep_alive = False  # cheaper to close than to read a body nobody wants
        self.out.append(
            local_response(status, body, headers, close=not self.keep_alive,
                           keep_alive_header=self.keep_alive and head.version == b"1.0",
                           head_only=head.method == b"HEAD")
        )  # fmt: skip
        ex.response_bytes = len(body)
        self.resp_started = self.resp_done = self.discard = True
        self.waiting = False
        if self.req_done or not self.keep_alive:
            self._finish()

    # -- going upstream --

    def _forward(self, forward: Forward) -> None:
        ex = self.ex
        assert ex is not None
        ex.forward = forward
        ex.attempts += 1
        timeout = forward.timeout
        self.forward_timeout = self.config.response_timeout if timeout is None else timeout
        head = self.head
        self.up_head = encode_request(
            head, set_headers=forward.set_headers, remove=forward.remove_headers,
            host=forward.authority, target=forward.path,
        )  # fmt: skip
        self.req_chunked = head.framing == "chunked"
        self.waiting = True
        wait = forward.delay + forward.backoff
        if forward.delay > 0:
            ex.add_flag(flags.DELAY_INJECTED)
        if wait > 0:
            self.delay = asyncio.get_running_loop().call_later(wait, self._delayed)
        else:
            self._connect(fresh=False)

    def _delayed(self) -> None:
        self.delay = None
        if self.ex is not None and not self.closing:
            self._connect(fresh=False)
            self._pump()

    def _connect(self, *, fresh: bool) -> None:
        ex = self.ex
        assert ex is not None and ex.forward is not None
        address = (ex.forward.host, ex.forward.port)
        ex.upstream = address
        ex.upstream_start = time.monotonic()
        conn = None if fresh else self.server.pool.take(address)
        if conn is not None:
            self._attach(conn)
        else:
            self.waiting = True
            self.connecting = self.server.pool.open(address, self, self.config.connect_timeout)

    def _attach(self, conn: UpstreamConnection) -> None:
        ex = self.ex
        assert ex is not None
        self.connecting = None
        self.waiting = False
        self.up = conn
        ex.reused_connection = conn.reused
        conn.parser.start(self.head.method)
        if not self.client_writable:
            conn.pause_reading(True)
        self.up_out.append(self.up_head)
        if self.req_done:  # a retry: the (bodiless) request already ended
            self._arm_response_timeout()
        conn.adopt(self)

    def _arm_response_timeout(self) -> None:
        timeout = self.forward_timeout
        self.deadline = time.monotonic() + timeout if timeout > 0 else 0.0

    def _replayable(self) -> bool:
        return self.head.framing == "none" or (
            self.head.framing == "length" and self.head.content_length == 0
        )

    def _drop_upstream(self, *, reuse: bool = False) -> None:
        conn, self.up = self.up, None
        if conn is not None:
            if reuse:
                self.server.pool.put(conn)
            elif self.tunnel:
                conn.close()
            else:
                conn.abort()  # mid-exchange: whatever it was sending or about to is unwanted
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        if self.delay is not None:
            self.delay.cancel()
            self.delay = None
        self.up_out.clear()
        if self.paused & UPSTREAM_FULL:
            self._pause(UPSTREAM_FULL, False)

    def _fail(self, flag: str, status: int, text: str) -> None:
        """The try failed before or while the response came: retry, answer, or cut."""
        ex = self.ex
        if ex is None:
            return
        self._drop_upstream()
        if self.resp_started:
            ex.add_flag(flag)
            self.keep_alive = False
            self._close()
            return
        try:
            retry = self.handler.on_failure(ex, flag)
        except Exception:
            log.exception("handler failed in on_failure")
            retry = None
        if retry is not None and self._replayable():
            self._forward(retry)
            return
        self._respond(status, text.encode() + b"\n", (), flag)

    # -- upstream callbacks (upstream.Owner) --

    def upstream_ready(self, conn: UpstreamConnection) -> None:
        self.connecting = None
        if self.ex is None or self.closing or not self.waiting:
            self.server.pool.put(conn)
            return
        self._attach(conn)
        self._pump()

    def upstream_failed(self, address: Address, error: str) -> None:
        self.connecting = None
        if self.ex is None or self.closing:
            return
        log.debug("cannot connect to %s:%d: %s", address[0], address[1], error)
        self._fail(flags.UPSTREAM_CONNECT_FAILURE, 503,
                   f"upstream connect error or disconnect/reset before headers. "
                   f"reset reason: connection failure ({error})")  # fmt: skip
        self._pump()

    def upstream_events(self, conn: UpstreamConnection, events: list[Event]) -> None:
        if conn is not self.up:
            conn.close()
            return
        self.last_io = self.server.now
        for event in events:
            if type(event) is bytes:
                if self.ex is not None:
                    self.ex.response_bytes += len(event)
                self.out.append(chunk(event) if self.resp_chunked else event)
            elif event is END:
                self._response_end(conn)
            elif isinstance(event, ResponseHead):
                self._response_head(conn, event)
            elif isinstance(event, Invalid):
                self._fail(flags.UPSTREAM_PROTOCOL_ERROR, 502, event.reason)
            elif isinstance(event, Tunnel):
                if self.resp_head is not None and self.resp_head.status == 101:
                    self._switched(event.data)
                else:
                    self._fail(flags.UPSTREAM_PROTOCOL_ERROR, 502, "unrequested protocol switch")
            if conn is not self.up:
                break
        self._pump()

    def _response_head(self, conn: UpstreamConnection, head: ResponseHead) -> None:
        ex = self.ex
        assert ex is not None
        if head.status < 200:
            if head.status == 101 and self.head.upgrade:
                self.resp_head = head
                ex.status = 101
                self.out.append(encode_response(head, chunked=False, connection=b"upgrade"))
                self.resp_started = True
            elif head.status != 101 and self.head.version == b"1.1":
                self.out.append(encode_response(head, chunked=False))  # 100 Continue, 103...
            return
        ex.response_start = time.monotonic()
        try:
            retry = self.handler.on_response(ex, head)
        except Exception:
            log.exception("handler failed in on_response")
            retry = None
        if retry is not None and self._replayable():
            self._drop_upstream()
            self._forward(retry)
            return
        ex.status = head.status
        self.resp_head = head
        if not self.req_done or self.head.upgrade:
            self.keep_alive = False  # answered before the request ended: close after
        client_10 = self.head.version == b"1.0"
        chunked = False
        if head.framing == "chunked" or head.framing == "close":
            if client_10:
                self.keep_alive = False  # a 1.0 client reads the body until we close
            else:
                chunked = True
        self.resp_chunked = chunked
        connection = b"close" if not self.keep_alive else b"keep-alive" if client_10 else b""
        self.out.append(encode_response(head, chunked=chunked, connection=connection))
        self.resp_started = True

    def _response_end(self, conn: UpstreamConnection) -> None:
        head = self.resp_head
        if head is None or head.status < 200:  # the end of a 1xx: the final response follows
            return
        if self.resp_chunked:
            self.out.append(LAST_CHUNK)
        self.resp_done = True
        self._drop_upstream(reuse=head.keep_alive and self.req_done)
        self._finish()

    def upstream_lost(self, conn: UpstreamConnection, exc: Exception | None) -> None:
        if conn is not self.up:
            return
        self.up = None
        if self.tunnel:
            self._close()
            return
        if not self.resp_started and conn.reused and conn.received == 0 and self._replayable():
            self._connect(fresh=True)  # a pooled connection the upstream had just closed
        else:
            reason = f" ({exc})" if exc else ""
            self._fail(flags.UPSTREAM_CONNECTION_TERMINATION, 503,
                       "upstream connect error or disconnect/reset before headers. "
                       f"reset reason: connection termination{reason}")  # fmt: skip
        self._pump()

    def upstream_writable(self, writable: bool) -> None:
        self._pause(UPSTREAM_FULL, not writable)

    # -- after a 101, a byte tunnel; HTTP/2 prior knowledge (h2c) goes to h2_downstream --

    def _tunnel_event(self, event: Tunnel) -> None:
        self.upgrade_rest = [event.data] if event.data else []  # held until the tunnel opens
        self._pause(UPGRADE_WAIT, True)
        if self.upgrading:  # after an upgrade request; without its exchange there is no 101
            if self.ex is None:
                self._close()
            return
        self._become_h2()  # h2c prior knowledge: HTTP/2 from the first byte

    def _become_h2(self) -> None:
        """Hand the connection to the HTTP/2 server side (`h2_downstream`) for good."""
        transport = self.transport
        assert transport is not None
        self.closing = True  # this object is done: nothing more reaches it
        self.server.connections.discard(self)
        if self.paused:
            transport.resume_reading()
        data, self.upgrade_rest = b"".join(self.upgrade_rest or ()), None
        H2ServerConnection.take_over(self.server, transport, self.peer, data, self.destination)

    def _start_tunnel(self) -> None:
        self.tunnel = True
        self.req_done = True
        if self.up is not None:
            self.up.raw = True
        rest, self.upgrade_rest = self.upgrade_rest or [], None
        for data in rest:
            self._tunnel_data(data)
        if self.client_eof and self.up is not None:
            self.up.write_eof()
        self._pause(UPGRADE_WAIT, False)

    def _switched(self, data: bytes) -> None:
        """The upstream answered 101: from here bytes flow untouched both ways."""
        self._start_tunnel()
        if data:
            self.upstream_raw(data)

    def _tunnel_data(self, data: bytes) -> None:
        if self.ex is not None:
            self.ex.request_bytes += len(data)
        if self.up is not None:
            self.up.send(data)

    def upstream_raw(self, data: bytes) -> None:
        self.last_io = self.server.now
        if self.ex is not None:
            self.ex.response_bytes += len(data)
        self._flush()
        if self.transport is not None and not self.closing:
            self.transport.write(data)

    def upstream_eof(self) -> None:
        self.up_eof = True
        self._flush()
        if self.transport is not None and not self.closing and self.transport.can_write_eof():
            self.transport.write_eof()
        if self.client_eof:
            self._close()

    # -- ending --

    def _finish(self) -> None:
        """The exchange is over: report it, then serve the next request or close."""
        if self.ex is None:
            return
        keep = (
            self.keep_alive
            and not self.server.draining
            and not (self.client_eof and not self.queue)
        )
        self._end_exchange(abort=False)
        if not keep:
            self._close()
        else:
            self.last_io = self.server.now
            self._drain()

    def _end_exchange(self, *, abort: bool) -> None:
        ex = self.ex
        assert ex is not None
        if abort:
            self._drop_upstream()
        ex.end = time.monotonic()
        self._reset()
        try:
            self.handler.on_end(ex)
        except Exception:
            log.exception("handler failed in on_end")

    def _close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.ex is not None:
            self._end_exchange(abort=True)
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.ex is not None:
            self.ex.add_flag(flags.DOWNSTREAM_CONNECTION_TERMINATION)
        self._close()
        if self.transport is not None:
            self.transport.abort()

    def shutdown(self) -> None:
        """The server is stopping: close now if idle, else after the exchange in progress."""
        self.keep_alive = False
        if self.ex is None and not self.parser.in_head:
            self._close()

    def _flush(self) -> None:
        if self.up_out:
            data = self.up_out[0] if len(self.up_out) == 1 else b"".join(self.up_out)
            self.up_out.clear()
            up = self.up
            if up is not None and not up.closed and up.transport is not None:
                up.transport.write(data)
        if self.out:
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.out.clear()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(data)

    def _pause(self, reason: int, on: bool) -> None:
        before = self.paused
        self.paused = before | reason if on else before & ~reason
        if self.transport is None or bool(before) == bool(self.paused) or self.closing:
            return
        if self.paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    # -- time --

    def check_time(self, now: float) -> None:
        """Called by the server's tick: enforce the timeouts that apply right now."""
        if self.closing:
            return
        config = self.config
        idle = now - self.last_io
        if self.tunnel:
            if idle > config.tunnel_idle_timeout:
                self._close()
        elif self.ex is None:
            if self.parser.in_head:
                self.head_since = self.head_since or now
                if now - self.head_since > config.head_timeout:
                    self.out.append(local_response(408, b"request head timeout\n", close=True))
                    self._close()
            elif idle > config.keepalive_timeout:
                self._close()
        elif self.deadline and now >= self.deadline:
            self._fail(flags.UPSTREAM_TIMEOUT, 504, "upstream request timeout")
            self._pump()
        elif idle > config.idle_timeout:
            status = 504 if self.req_done else 408
            self._fail(flags.STREAM_IDLE_TIMEOUT, status, "stream idle timeout")
            self._pump()
