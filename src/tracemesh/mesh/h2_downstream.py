"""One HTTP/2 cleartext client connection (prior knowledge: gRPC's h2c), taken over from the
HTTP/1.1 `ClientConnection` once the preface arrives. Every stream is one `Exchange` through the
same `Handler` as an HTTP/1.1 request: routing, propagation, a span, retries, faults, timeouts.

Each stream is proxied to a stream on a pooled HTTP/2 upstream connection (`h2_upstream`):
headers, data and trailers pass one way and the other as they come. Nothing is held whole: data
received is acknowledged to its sender (its flow-control window reopened) only once it went out
on the other side, so a stream never has more in the proxy than the windows it advertised.

Answers the proxy makes itself are HTTP/2 responses; to a gRPC request, trailers-only with the
gRPC status Envoy maps the HTTP status to (no route: 404 -> 12 UNIMPLEMENTED, 503 -> 14
UNAVAILABLE). A retry replays the request body, kept while it is small (`REPLAY_LIMIT`) and no
response has begun; a stream the upstream refused unprocessed (REFUSED_STREAM, or above a
GOAWAY's last stream) is sent again without asking the handler. Bad frames, headers over the
limits and protocol violations end in GOAWAY or RST_STREAM, never a crash; so does a client that
opens streams only to reset them at once (HTTP/2 rapid reset), as in Envoy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError

from tracemesh.mesh import handler as flags
from tracemesh.mesh.handler import Exchange, Forward, Respond
from tracemesh.mesh.http1 import H2_PREFACE, Headers, RequestHead, ResponseHead
from tracemesh.mesh.http2 import (
    BadRequest,
    FrameGuard,
    GrpcOutcome,
    Sender,
    downstream_response,
    grpc_timeout,
    local_response,
    new_connection,
    request_head,
    trailers,
    upstream_request,
)
from tracemesh.mesh.span_extras import SpanExtras, extras_for

if TYPE_CHECKING:
    from tracemesh.mesh.h2_upstream import H2Upstream
    from tracemesh.mesh.server import ProxyServer

log = logging.getLogger("tracemesh.mesh.h2_downstream")

UPSTREAM_REMOTE_RESET = "UR"  # Envoy's response flag: the upstream reset the stream
REFUSED_RETRIES = 3  # a stream the upstream refused unprocessed is sent again, this many times
REPLAY_LIMIT = 64 * 1024  # request body kept for a retry (Envoy buffers for retries too)
GRPC_STATE = "grpc"  # `Exchange.state` key of the stream's `GrpcOutcome`, for handlers and tests
# Rapid reset (CVE-2023-44487), Envoy's defaults: a connection on which more than half of its
# streams, once at least this many, were reset by the client within a second is closed.
PREMATURE_RESET_STREAMS = 500
PREMATURE_RESET_SECONDS = 1.0


class H2ServerConnection(asyncio.Protocol):
    """The HTTP/2 side of a client connection: its streams and their flow control."""

    def __init__(self, server: ProxyServer, transport: asyncio.Transport, peer: tuple[str, int]):
        self.server = server
        self.handler = server.handler
        self.config = server.config
        self.transport = transport
        self.peer = peer
        self.destination: tuple[str, int] | None = None  # a captured connection's (capture.py)
        self.conn = new_connection(server.config.limits, client=False)
        self.sender = Sender(self.conn)
        self.guard = FrameGuard(skip=len(H2_PREFACE))
        self.streams: dict[int, ProxiedStream] = {}
        self.closing = False
        self.draining = False  # no new streams: the server stops, or the client sent GOAWAY
        self.last_io = server.now
        self._loop = asyncio.get_running_loop()
        self._flush_soon = False
        self.opened = 0  # streams the client opened
        self.premature_resets = 0  # ... and reset within PREMATURE_RESET_SECONDS

    @classmethod
    def take_over(
        cls,
        server: ProxyServer,
        transport: asyncio.Transport,
        peer: tuple[str, int],
        data: bytes,
        destination: tuple[str, int] | None = None,
    ) -> H2ServerConnection:
        """Make the HTTP/2 protocol the transport's, starting with `data` (the preface...);
        `destination` is a captured connection's original one."""
        proto = cls(server, transport, peer)
        proto.destination = destination
        transport.set_protocol(proto)
        server.connections.add(proto)
        proto._write()
        proto.data_received(data)
        if server.draining:
            proto.shutdown()
        return proto

    # -- asyncio.Protocol --

    def data_received(self, data: bytes) -> None:
        if self.closing:  # after a GOAWAY: whatever still comes is moot
            return
        self.last_io = self.server.now
        try:
            if not self.guard.feed(data):
                self.conn.close_connection(ErrorCodes.FRAME_SIZE_ERROR)
                raise ProtocolError("a frame over the maximum frame size")
            events = self.conn.receive_data(data)
        except H2Error as exc:  # h2 queued a GOAWAY naming the error: send it and close
            log.debug("HTTP/2 protocol error from %s: %s", self.peer, exc)
            self.server.stats.bad_requests += 1
            for broken in list(self.streams.values()):
                broken.abort(flags.DOWNSTREAM_PROTOCOL_ERROR)
            self._flush()
            self._close()
            return
        stream: ProxiedStream | None
        for event in events:
            if isinstance(event, DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.request_data(event.data, event.flow_controlled_length)
                else:  # a stream already answered: drop its data, reopen the window
                    self.ack(event.stream_id, event.flow_controlled_length)
            elif isinstance(event, RequestReceived):
                self._request(event.stream_id, event.headers, event.stream_ended is not None)
            elif isinstance(event, StreamEnded):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.request_end(None)
            elif isinstance(event, TrailersReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.request_end(trailers(event.headers))
            elif isinstance(event, WindowUpdated):
                self._window_opened(event.stream_id)
            elif isinstance(event, StreamReset):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    if time.monotonic() - stream.ex.start < PREMATURE_RESET_SECONDS:
                        self.premature_resets += 1
                    stream.abort(flags.DOWNSTREAM_CONNECTION_TERMINATION)
            elif isinstance(event, ConnectionTerminated):
                self.draining = True
        self._write()
        if self.draining and not self.streams:
            self._goaway()
        elif self.premature_resets * 2 > max(self.opened, PREMATURE_RESET_STREAMS):
            log.warning("closing %s: %d of its %d streams reset right after they opened",
                        self.peer, self.premature_resets, self.opened)  # fmt: skip
            self.server.stats.bad_requests += 1
            for stream in list(self.streams.values()):
                stream.abort(flags.DOWNSTREAM_PROTOCOL_ERROR)
            self._goaway(ErrorCodes.ENHANCE_YOUR_CALM)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        for stream in list(self.streams.values()):
            stream.abort(flags.DOWNSTREAM_CONNECTION_TERMINATION)
        self.server.forget(self)

    def eof_received(self) -> bool:
        return False  # the client is done sending: close (its streams end as DC)

    def pause_writing(self) -> None:
        self.sender.blocked = True

    def resume_writing(self) -> None:
        self.sender.blocked = False
        self._window_opened(0)
        self._write()

    # -- streams --

    def _request(self, stream_id: int, raw: list[tuple[bytes, bytes]], ended: bool) -> None:
        if self.draining:
            self.reset(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        self.server.stats.requests += 1
        self.opened += 1
        try:
            head = request_head(raw, self.config.limits)
        except BadRequest as bad:
            self.server.stats.bad_requests += 1
            head = RequestHead(b"", b"", b"2.0", [], True)
            stream = ProxiedStream(self, stream_id, head)
            stream.refuse(bad.status, bad.reason)
            return
        stream = self.streams[stream_id] = ProxiedStream(self, stream_id, head)
        stream.start()
        if ended and stream_id in self.streams:
            stream.request_end(None)

    def forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        if self.draining and not self.streams:
            self._goaway()

    def _window_opened(self, stream_id: int) -> None:
        for sent_on, size in self.sender.window_opened(stream_id).items():
            stream = self.streams.get(sent_on)
            if stream is not None:
                stream.response_sent(size)

    # -- writing --

    def ack(self, stream_id: int, size: int) -> None:
        if size > 0 and not self.closing:
            with contextlib.suppress(H2Error):
                self.conn.acknowledge_received_data(size, stream_id)

    def send_headers(self, stream_id: int, headers: Headers, *, end: bool) -> bool:
        try:
            self.conn.send_headers(stream_id, headers, end_stream=end)
        except H2Error:
            return False
        return True

    def reset(self, stream_id: int, code: int) -> None:
        self.sender.discard(stream_id)
        with contextlib.suppress(H2Error):
            self.conn.reset_stream(stream_id, code)

    def _write(self) -> None:
        """Send what h2 queued, once the current callback is done: the frames a callback
        makes for this connection (headers, data, window updates) go in one write."""
        if not self._flush_soon:
            self._flush_soon = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        data = self.conn.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    # -- the server's controls (as ClientConnection's) --

    def check_time(self, now: float) -> None:
        if self.closing:
            return
        if not self.streams:
            if now - self.last_io > self.config.keepalive_timeout:
                self._goaway()
            return
        for stream in list(self.streams.values()):
            stream.check_time(now)
        self._write()

    def shutdown(self) -> None:
        """The server stops: refuse new streams, close once the open ones are done."""
        self.draining = True
        if not self.streams:
            self._goaway()

    def abort(self) -> None:
        for stream in list(self.streams.values()):
            stream.abort(flags.DOWNSTREAM_CONNECTION_TERMINATION)
        self._close()
        self.transport.abort()

    def _goaway(self, code: int = ErrorCodes.NO_ERROR) -> None:
        if self.closing:
            return
        with contextlib.suppress(H2Error):
            self.conn.close_connection(code)
        self._flush()
        self._close()

    def _close(self) -> None:
        if not self.closing:
            self.closing = True
            self.transport.close()


class ProxiedStream:
    """One downstream stream, its `Exchange`, and the upstream stream it is proxied to."""

    def __init__(self, owner: H2ServerConnection, stream_id: int, head: RequestHead) -> None:
        self.owner = owner
        self.stream_id = stream_id
        self.ex = Exchange(head, owner.peer, time.time_ns(), time.monotonic(),
                           destination=owner.destination)  # fmt: skip
        self.grpc = GrpcOutcome.of_request(head) if head.method else None
        if self.grpc is not None:
            self.ex.state[GRPC_STATE] = self.grpc
        self.up: H2Upstream | None = None
        self.up_stream = 0
        self.up_headers: Headers = []
        self.waiting = False  # for an upstream connection (or a delay)
        self.timer: asyncio.TimerHandle | None = None
        self.pending: list[bytes] = []  # request data not handed to an upstream stream yet
        self.replay: list[bytes] | None = []  # the whole request body so far, for a retry
        self.replay_size = 0
        self.unacked = 0  # request bytes received, not yet handed back to the client's window
        self.req_done = False
        self.req_trailers: Headers | None = None
        self.resp_started = False
        self.resp_trailers: Headers | None = None
        self.forward_timeout = 0.0
        self.deadline = 0.0
        self.last_io = owner.server.now
        self.ended = False  # on_end was called
        self.reset_mid_response = False
        self.refused = 0  # upstream streams refused unprocessed (REFUSED_STREAM, GOAWAY)

    # -- the request --

    def start(self) -> None:
        try:
            decision = self.owner.handler.on_request(self.ex)
        except Exception:
            log.exception("handler failed on %r", self.ex.request.target)
            decision = Respond(500, b"proxy handler error\n")
        if isinstance(decision, Forward):
            self._forward(decision)
        elif decision.delay > 0:
            self.ex.add_flag(flags.DELAY_INJECTED)
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(decision.delay, self._delayed_respond, decision)
        else:
            self.respond(decision.status, decision.body, decision.headers, decision.flag)

    def _delayed_respond(self, decision: Respond) -> None:
        self.timer = None
        if not self.ended:
            self.respond(decision.status, decision.body, decision.headers, decision.flag)
            self.owner._write()

    def request_data(self, data: bytes, flow_length: int) -> None:
        self.last_io = self.owner.server.now
        self.ex.request_bytes += len(data)
        self.owner.ack(self.stream_id, flow_length - len(data))  # padding: nothing to pass on
        if self.ended:  # answered already: drop
            self.owner.ack(self.stream_id, len(data))
            return
        self.unacked += len(data)
        if self.replay is not None:
            self.replay_size += len(data)
            if self.replay_size > REPLAY_LIMIT:
                self.replay = None
            else:
                self.replay.append(data)
        if self.up is not None:
            self._ack_request(self.up.send(self.up_stream, data))
        else:
            self.pending.append(data)

    def _ack_request(self, size: int) -> None:
        """`size` request bytes went upstream: the client may send as many more."""
        size = min(size, self.unacked)
        if size > 0:
            self.unacked -= size
            self.owner.ack(self.stream_id, size)

    def request_end(self, trailer_headers: Headers | None) -> None:
        if self.req_done:  # h2 reports trailers, then the end they carried
            return
        self.req_done = True
        self.req_trailers = trailer_headers
        if self.ended:
            self._done()
            return
        if self.up is not None:
            self.up.end(self.up_stream, trailer_headers)
            self._arm_timeout()

    def _arm_timeout(self) -> None:
        timeout = self.forward_timeout
        self.deadline = time.monotonic() + timeout if timeout > 0 else 0.0

    # -- going upstream --

    def _forward(self, forward: Forward) -> None:
        ex = self.ex
        ex.forward = forward
        ex.attempts += 1
        timeout = forward.timeout
        if timeout is None:  # no route timeout: the server's, or for gRPC the call's deadline
            if self.grpc is None:
                timeout = self.owner.config.response_timeout
            else:  # as Istio: streams may live long; the client's grpc-timeout bounds them
                timeout = grpc_timeout(ex.request.headers) or 0.0
        self.forward_timeout = timeout
        self.up_headers = upstream_request(
            ex.request, set_headers=forward.set_headers, remove=forward.remove_headers,
            authority=forward.authority, path=forward.path,
        )  # fmt: skip
        self.waiting = True
        wait = forward.delay + forward.backoff
        if forward.delay > 0:
            ex.add_flag(flags.DELAY_INJECTED)
        if wait > 0:
            self.timer = asyncio.get_running_loop().call_later(wait, self._connect)
        else:
            self._connect()

    def _connect(self) -> None:
        self.timer = None
        ex = self.ex
        if self.ended or ex.forward is None:
            return
        address = (ex.forward.host, ex.forward.port)
        ex.upstream = address
        ex.upstream_start = time.monotonic()
        conn = self.owner.server.h2_pool.get(address, self)
        if conn is not None:
            self.h2_ready(conn)

    def h2_ready(self, conn: H2Upstream) -> None:
        if self.ended or not self.waiting:
            return
        self.waiting = False
        self.up = conn
        self.ex.reused_connection = conn.sender.conn.highest_outbound_stream_id > 0
        body = self.replay if self.replay is not None else self.pending
        self.pending = []
        no_body = self.req_done and not body and not self.req_trailers
        self.up_stream = conn.open_stream(self.up_headers, self, end=no_body)
        for data in body:
            self._ack_request(conn.send(self.up_stream, data))
        if self.req_done:
            if not no_body:
                conn.end(self.up_stream, self.req_trailers)
            self._arm_timeout()
        self.owner._write()

    def h2_failed(self, error: str) -> None:
        if self.ended:
            return
        self.waiting = False
        log.debug("cannot connect to %s: %s", self.ex.upstream, error)
        self._fail(flags.UPSTREAM_CONNECT_FAILURE, 503,
                   "upstream connect error or disconnect/reset before headers. "
                   f"reset reason: connection failure ({error})")  # fmt: skip
        self.owner._write()

    def h2_sent(self, size: int) -> None:
        self._ack_request(size)
        self.owner._write()

    def h2_response(self, head: ResponseHead, end: bool) -> None:
        if self.ended or head.status < 200:
            return  # 1xx: HTTP/2 clients of a proxy need none of them
        ex = self.ex
        self.last_io = self.owner.server.now
        ex.response_start = time.monotonic()
        try:
            retry = self.owner.handler.on_response(ex, head)
        except Exception:
            log.exception("handler failed in on_response")
            retry = None
        if retry is not None and self._replayable():
            self._drop_upstream()
            self._forward(retry)
            return
        ex.status = head.status
        if self.grpc is not None:
            self.grpc.read_status(head.headers)
        self.resp_started = True
        self.replay = None  # no retry once the response began
        self.deadline = 0.0 if end else self.deadline
        self.owner.send_headers(self.stream_id, downstream_response(head), end=end)
        if end:
            self._response_end()
        self.owner._write()

    def h2_data(self, data: bytes, flow_length: int) -> None:
        up = self.up
        if up is None:
            return
        self.last_io = self.owner.server.now
        self.ex.response_bytes += len(data)
        up.ack(self.up_stream, flow_length - len(data))
        if self.ended:
            up.ack(self.up_stream, len(data))
            return
        up.ack(self.up_stream, self.owner.sender.data(self.stream_id, data))
        self.owner._write()

    def response_sent(self, size: int) -> None:
        """`size` response bytes went to the client: the upstream may send as many more."""
        if self.up is not None:  # else it ended, and got its window back then (h2_end)
            self.up.ack(self.up_stream, size)

    def h2_trailers(self, headers: Headers) -> None:
        self.resp_trailers = headers
        if self.grpc is not None:
            self.grpc.read_status(headers)

    def h2_end(self) -> None:
        up, self.up = self.up, None
        if self.ended or up is None:
            return
        # whatever is still queued for the client was received: give the upstream its window
        up.ack(self.up_stream, self.owner.sender.pending(self.stream_id))
        if not self.resp_started:  # ended without a head: h2 would have refused that
            self._fail(flags.UPSTREAM_PROTOCOL_ERROR, 502, "upstream stream ended without headers")
            return
        self.owner.sender.end(self.stream_id, self.resp_trailers)
        self._response_end()
        self.owner._write()

    def h2_reset(self, code: int, remote: bool) -> None:
        self.up = None
        if self.ended:
            return
        flag = UPSTREAM_REMOTE_RESET if remote else flags.UPSTREAM_CONNECTION_TERMINATION
        if self.resp_started:  # too late to answer: pass the reset on
            self.ex.add_flag(flag)
            self.reset_mid_response = True
            self.owner.reset(self.stream_id, code if remote else ErrorCodes.INTERNAL_ERROR)
            self._finish()
            self._done()
        elif (
            code == ErrorCodes.REFUSED_STREAM
            and self._replayable()
            and self.refused < REFUSED_RETRIES
            and self.ex.forward is not None
        ):  # never processed (RFC 9113 8.7): safe to send again, on a connection with room
            self.refused += 1
            self.waiting = True
            self._connect()
        else:
            reason = "remote reset" if remote else "connection termination"
            self._fail(flag, 503, "upstream connect error or disconnect/reset before headers. "
                                  f"reset reason: {reason}")  # fmt: skip
        self.owner._write()

    def _replayable(self) -> bool:
        return self.replay is not None and not self.resp_started

    def _drop_upstream(self) -> None:
        up, self.up = self.up, None
        if up is not None:
            up.reset(self.up_stream)
        if self.waiting and self.ex.upstream is not None:
            self.owner.server.h2_pool.cancel(self.ex.upstream, self)
        self.waiting = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.deadline = 0.0

    def _fail(self, flag: str, status: int, text: str) -> None:
        """The try failed before a response: retry, answer, or (mid-response) reset."""
        self._drop_upstream()
        if self.resp_started:
            self.ex.add_flag(flag)
            self.reset_mid_response = True
            self.owner.reset(self.stream_id, ErrorCodes.INTERNAL_ERROR)
            self._finish()
            self._done()
            return
        try:
            retry = self.owner.handler.on_failure(self.ex, flag)
        except Exception:
            log.exception("handler failed in on_failure")
            retry = None
        if retry is not None and self._replayable():
            self._forward(retry)
            return
        self.respond(status, text.encode() + b"\n", (), flag)

    # -- answering locally --

    def respond(
        self, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = (), flag: str = "-"
    ) -> None:
        ex = self.ex
        if flag != "-":
            ex.add_flag(flag)
        local = self.owner.server.stats.local
        local[flag] = local.get(flag, 0) + 1
        head, data = local_response(status, body, headers, grpc=self.grpc is not None)
        ex.status = int(head[0][1])
        if self.grpc is not None:
            self.grpc.read_status(head)
        ex.response_bytes = len(data)
        self.resp_started = True
        owner = self.owner
        if owner.send_headers(self.stream_id, head, end=not data) and data:
            owner.sender.data(self.stream_id, data)
            owner.sender.end(self.stream_id)
        self._finish()
        # what the client sent and still sends is dropped: give its window back
        owner.ack(self.stream_id, self.unacked)
        self.unacked = 0
        self.pending = []
        if self.req_done:
            self._done()

    def refuse(self, status: int, reason: str) -> None:
        """A request the proxy cannot read: answer, with no exchange to report."""
        head, data = local_response(status, reason.encode() + b"\n", (), grpc=False)
        owner = self.owner
        if owner.send_headers(self.stream_id, head, end=False):
            owner.sender.data(self.stream_id, data)
            owner.sender.end(self.stream_id)

    # -- ending --

    def _response_end(self) -> None:
        self._finish()
        if self.req_done:
            self._done()

    def _finish(self) -> None:
        """Report the exchange (once)."""
        if self.ended:
            return
        self.ended = True
        self.deadline = 0.0
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        ex = self.ex
        ex.end = time.monotonic()
        extras = None
        if self.grpc is not None or self.reset_mid_response:
            tags = dict(self.grpc.tags) if self.grpc is not None else {}
            error = (self.grpc is not None and self.grpc.error) or self.reset_mid_response
            extras = SpanExtras(tags, error)
        try:
            with extras_for(extras):
                self.owner.handler.on_end(ex)
        except Exception:
            log.exception("handler failed in on_end")

    def _done(self) -> None:
        """Both directions are over: the stream leaves the connection."""
        self.owner.forget(self.stream_id)

    def abort(self, flag: str) -> None:
        """The client reset the stream or the connection went: cancel upstream, report."""
        if not self.ended:
            self.ex.add_flag(flag)
        self._drop_upstream()
        self._finish()
        self._done()

    def check_time(self, now: float) -> None:
        if self.ended:
            return
        if self.deadline and now >= self.deadline:
            self._fail(flags.UPSTREAM_TIMEOUT, 504, "upstream request timeout")
        elif now - self.last_io > self.owner.config.idle_timeout:
            self._fail(flags.STREAM_IDLE_TIMEOUT, 504 if self.req_done else 408,
                       "stream idle timeout")  # fmt: skip
