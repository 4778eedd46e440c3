"""Sans-IO HTTP/2 for the proxy, on the `h2` library: connection set-up, request and response
heads to and from HTTP/2 header lists, gRPC's status rules, and a `Sender` that writes stream
data only as far as the peer's flow-control windows allow. No sockets, no clocks.

A proxied stream is a `RequestHead` with version `2.0` (so tracing says `HTTP/2`), its target the
`:path` and its host the `:authority`; pseudo-headers never appear in `headers`. Connection-
specific headers (RFC 9113 8.2.2) are dropped both ways, `te` kept only as `trailers` (gRPC needs
it). A local answer to a gRPC request is trailers-only with Envoy's HTTP-to-gRPC status mapping
(503 -> 14 UNAVAILABLE), as gRPC clients cannot read an HTTP error body.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.exceptions import FlowControlError, ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from hpack import Encoder

from tracemesh.mesh.http1 import HOP_BY_HOP, Headers, Limits, RequestHead, ResponseHead

STREAM_WINDOW: Final = 1024 * 1024  # per stream, both ways: what one stream may have in flight
CONNECTION_WINDOW: Final = 16 * 1024 * 1024
MAX_CONCURRENT_STREAMS: Final = 256
GRPC_CONTENT_TYPE: Final = b"application/grpc"
# Connection-specific: never forwarded on HTTP/2 (`te` is handled apart).
_DROP: Final = (HOP_BY_HOP | {b"host"}) - {b"te"}
_REQUEST_PSEUDO: Final = frozenset((b":method", b":path", b":authority", b":scheme"))

# gRPC status codes (grpc/doc/statuscodes.md).
GRPC_OK, GRPC_UNKNOWN, GRPC_UNAVAILABLE = 0, 2, 14
# Envoy tags an upstream gRPC error (http_tracer_impl.cc addGrpcResponseTags, envoy#18877):
# Unknown, DeadlineExceeded, Unimplemented, ResourceExhausted, Internal, Unavailable, DataLoss.
GRPC_UPSTREAM_ERRORS: Final = frozenset((2, 4, 8, 12, 13, 14, 15))
# Envoy's Grpc::Utility::httpToGrpcStatus (grpc's http-grpc-status-mapping.md).
_HTTP_TO_GRPC: Final = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


def http_to_grpc_status(status: int) -> int:
    return _HTTP_TO_GRPC.get(status, GRPC_UNKNOWN)


_TIMEOUT_UNITS: Final = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def grpc_timeout(headers: Headers) -> float | None:
    """The `grpc-timeout` header in seconds (gRPC over HTTP/2: 1-8 digits and a unit), or None
    when absent or malformed."""
    for name, value in headers:
        if name == b"grpc-timeout":
            digits, unit = value[:-1], value[-1:]
            if unit in _TIMEOUT_UNITS and digits.isdigit() and len(digits) <= 8:
                return int(digits) * _TIMEOUT_UNITS[unit]
            return None
    return None


def _settings(limits: Limits) -> dict[SettingCodes, int]:
    return {
        SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
        SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
        SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_head_bytes,
        SettingCodes.ENABLE_PUSH: 0,
    }


def new_connection(limits: Limits, *, client: bool) -> H2Connection:
    """A connection that has queued its preface and settings (send `data_to_send()` first).
    Header lists over `limits.max_head_bytes` are refused by h2 itself (GOAWAY)."""
    # what is sent is what h2 validated on the way in, plus the proxy's own headers: checking
    # and normalizing it again costs CPU for nothing
    config = H2Configuration(
        client_side=client,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    conn = H2Connection(config)
    conn.encoder = _PlainEncoder()
    # replaced, not updated: an update would only take effect once acknowledged, and the
    # SETTINGS frame initiate_connection sends would still carry the defaults
    conn.local_settings = Settings(client=client, initial_values=_settings(limits))
    conn.decoder.max_header_list_size = limits.max_head_bytes  # before our SETTINGS are acked
    conn.initiate_connection()
    conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)
    return conn


class _PlainEncoder(Encoder):
    """HPACK without Huffman coding: pure-Python Huffman costs ~40% of encoding a header block,
    and saves only bytes on the loopback and LAN links a sidecar uses. (Decoding still reads
    Huffman-coded blocks, as peers send them.)"""

    def encode(self, headers: Iterable[Any], huffman: bool = True) -> bytes:
        return super().encode(headers, huffman=False)


class BadRequest(Exception):
    """A request head the proxy refuses: answer `status` on its stream."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def request_head(raw: Iterable[tuple[bytes, bytes]], limits: Limits) -> RequestHead:
    """The request a stream's HEADERS carry; BadRequest when the proxy cannot forward it
    (h2 has already checked the pseudo-headers' presence and order)."""
    method = target = authority = b""
    headers: Headers = []
    host = b""
    for name, value in raw:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                target = value
            elif name == b":authority":
                authority = value
        elif name == b"host":
            host = host or value
        else:
            headers.append((name, value))
    if len(headers) > limits.max_headers:
        raise BadRequest(431, "too many header fields")
    if method == b"CONNECT":
        raise BadRequest(405, "CONNECT is not supported: this is not a forward proxy")
    if len(target) > limits.max_target_bytes:
        raise BadRequest(414, "request target too long")
    if not target.startswith(b"/") and target != b"*":
        raise BadRequest(400, "the :path must be origin-form")
    authority = (authority or host).lower()
    return RequestHead(method, target, b"2.0", headers, True, authority, "chunked")


def _forwarded(headers: Headers, drop: frozenset[bytes]) -> Headers:
    out: Headers = []
    for name, value in headers:
        if name in drop:
            continue
        if name == b"te":  # HTTP/2 allows only `te: trailers`
            if b"trailers" in (token.strip() for token in value.lower().split(b",")):
                out.append((name, b"trailers"))
            continue
        out.append((name, value))
    return out


def upstream_request(
    head: RequestHead,
    *,
    set_headers: Sequence[tuple[bytes, bytes]] = (),
    remove: Iterable[bytes] = (),
    authority: bytes | None = None,
    path: bytes | None = None,
) -> Headers:
    """The header list to open the upstream stream with (the same edits as `encode_request`)."""
    drop = _DROP.union(remove, (name for name, _ in set_headers))
    out: Headers = [
        (b":method", head.method),
        (b":scheme", b"http"),
        (b":authority", authority or head.host),
        (b":path", path or head.target),
    ]
    out += _forwarded(head.headers, drop)
    out += set_headers
    return out


def response_head(raw: Iterable[tuple[bytes, bytes]]) -> ResponseHead:
    """The response an upstream stream's HEADERS carry (a bad :status reads as 0)."""
    status = 0
    headers: Headers = []
    for name, value in raw:
        if name == b":status":
            status = int(value) if value.isdigit() and len(value) == 3 else 0
        elif name[:1] != b":":
            headers.append((name, value))
    return ResponseHead(status, b"", b"2.0", headers, True, "chunked")


def downstream_response(head: ResponseHead) -> Headers:
    """The header list to answer the client with."""
    return [(b":status", b"%d" % head.status), *_forwarded(head.headers, _DROP)]


def trailers(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
    return [(name, value) for name, value in raw if name[:1] != b":" and name not in _DROP]


def is_grpc(headers: Headers) -> bool:
    """The request (or response) is gRPC: its content-type is application/grpc[+proto|;...]."""
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(GRPC_CONTENT_TYPE)
    return False


def local_response(
    status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]], *, grpc: bool
) -> tuple[Headers, bytes]:
    """(header list, body) for an answer the proxy makes itself. For gRPC: trailers-only, HTTP
    200 with `grpc-status` from Envoy's mapping and the text as `grpc-message`."""
    if grpc:
        message = body.strip().decode("latin-1", "replace")
        out: Headers = [
            (b":status", b"200"),
            (b"content-type", GRPC_CONTENT_TYPE),
            (b"grpc-status", b"%d" % http_to_grpc_status(status)),
            (b"grpc-message", percent_encode(message)),
        ]
        return out, b""
    out = [(b":status", b"%d" % status)]
    has_type = False
    for name, value in headers:
        name = name.lower()
        has_type = has_type or name == b"content-type"
        out.append((name, value))
    if body and not has_type:
        out.append((b"content-type", b"text/plain; charset=utf-8"))
    out.append((b"content-length", b"%d" % len(body)))
    return out, body


def percent_encode(message: str) -> bytes:
    """gRPC's `grpc-message` encoding: UTF-8, then %XX outside printable ASCII and for `%`."""
    data = message.encode()
    return b"".join(
        bytes((byte,)) if 0x20 <= byte <= 0x7E and byte != 0x25 else b"%%%02X" % byte
        for byte in data
    )


@dataclass(slots=True)
class GrpcOutcome:
    """What a gRPC exchange's span says, from the request head and the response's headers or
    trailers, as Envoy's tracer tags it."""

    tags: dict[str, str] = field(default_factory=dict)
    error: bool = False

    @classmethod
    def of_request(cls, head: RequestHead) -> GrpcOutcome | None:
        """grpc.path, grpc.authority, grpc.content_type, grpc.timeout; None if not gRPC."""
        content_type = timeout = b""
        for name, value in head.headers:
            if name == b"content-type" and not content_type:
                content_type = value
            elif name == b"grpc-timeout" and not timeout:
                timeout = value
        if not content_type.startswith(GRPC_CONTENT_TYPE):
            return None
        tags = {
            "grpc.path": head.target.decode("latin-1"),
            "grpc.authority": head.host.decode("latin-1"),
            "grpc.content_type": content_type.decode("latin-1"),
        }
        if timeout:
            tags["grpc.timeout"] = timeout.decode("latin-1")
        return cls(tags)

    def read_status(self, headers: Headers) -> None:
        """Take grpc-status / grpc-message from response headers or trailers, where present."""
        status = message = None
        for name, value in headers:
            if name == b"grpc-status" and status is None:
                status = value.decode("latin-1")
            elif name == b"grpc-message" and message is None:
                message = value.decode("latin-1")
        if status is None:
            return
        self.tags["grpc.status_code"] = status
        if message is not None:
            self.tags["grpc.message"] = message
        self.error = status.isdigit() and int(status) in GRPC_UPSTREAM_ERRORS


MAX_FRAME_SIZE: Final = 16384  # what we accept: the protocol's default, never raised


class FrameGuard:
    """Refuses a frame whose header declares more than MAX_FRAME_SIZE as soon as the header
    is in, where h2 would first buffer the whole declared frame (up to 16 MiB) and only then
    check it. Feed it every byte received, in order (`skip`: the client preface's length)."""

    __slots__ = ("_header", "_left")

    def __init__(self, skip: int = 0) -> None:
        self._left = skip  # bytes of the current frame's payload (or the preface) still to come
        self._header = b""  # a frame header cut between reads

    def feed(self, data: bytes) -> bool:
        """False once a frame is too large."""
        at = 0
        size = len(data)
        while at < size:
            if self._left:
                step = min(self._left, size - at)
                self._left -= step
                at += step
                continue
            need = 9 - len(self._header)
            self._header += data[at : at + need]
            at += need
            if len(self._header) < 9:
                return True
            length = int.from_bytes(self._header[:3], "big")
            self._header = b""
            if length > MAX_FRAME_SIZE:
                return False
            self._left = length
        return True


class _Queue:
    __slots__ = ("chunks", "end", "trailers")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.end = False
        self.trailers: Headers | None = None


class Sender:
    """Stream data waiting for the peer's flow-control window on one connection. Each call
    returns how many data bytes went into frames now, so the caller can hand the same number
    back to the connection they came from (`acknowledge_received_data`): the proxy never holds
    more than the windows it advertised. `blocked` (the socket's write buffer is full) holds
    everything until cleared and `flush_all` is called."""

    def __init__(self, conn: H2Connection) -> None:
        self.conn = conn
        self.blocked = False
        self._queues: dict[int, _Queue] = {}

    def pending(self, stream_id: int) -> int:
        queue = self._queues.get(stream_id)
        return sum(map(len, queue.chunks)) if queue is not None else 0

    def data(self, stream_id: int, data: bytes) -> int:
        queue = self._queues.get(stream_id)
        if queue is None:
            queue = self._queues[stream_id] = _Queue()
        queue.chunks.append(data)
        return self.flush(stream_id)

    def end(self, stream_id: int, trailer_headers: Headers | None = None) -> None:
        """End the stream (with trailers, if given) once its queued data has gone."""
        queue = self._queues.get(stream_id)
        if queue is None:
            queue = self._queues[stream_id] = _Queue()
        queue.end = True
        queue.trailers = trailer_headers
        self.flush(stream_id)

    def discard(self, stream_id: int) -> None:
        self._queues.pop(stream_id, None)

    def flush(self, stream_id: int) -> int:
        """Send what the windows allow on `stream_id`; the data bytes sent."""
        queue = self._queues.get(stream_id)
        if queue is None or self.blocked:
            return 0
        conn = self.conn
        stream = conn.streams.get(stream_id)
        if stream is None or stream.closed:  # reset meanwhile: nothing more goes out on it
            del self._queues[stream_id]
            return 0
        sent = 0
        chunks = queue.chunks
        try:
            while chunks:
                window = min(conn.local_flow_control_window(stream_id),
                             conn.max_outbound_frame_size)  # fmt: skip
                if window <= 0:
                    return sent
                piece = chunks[0]
                if len(piece) > window:
                    chunks[0] = piece[window:]
                    piece = piece[:window]
                else:
                    chunks.popleft()
                conn.send_data(stream_id, piece)
                sent += len(piece)
            if queue.end:
                del self._queues[stream_id]
                if queue.trailers:
                    conn.send_headers(stream_id, queue.trailers, end_stream=True)
                else:
                    conn.end_stream(stream_id)
            elif not chunks:
                del self._queues[stream_id]
        except (StreamClosedError, FlowControlError, ProtocolError):
            self._queues.pop(stream_id, None)  # reset meanwhile: nothing more goes out on it
        return sent

    def flush_all(self) -> dict[int, int]:
        """After a connection window update or unblocking: {stream: data bytes sent}."""
        out: dict[int, int] = {}
        for stream_id in list(self._queues):
            sent = self.flush(stream_id)
            if sent:
                out[stream_id] = sent
        return out

    def window_opened(self, stream_id: int) -> dict[int, int]:
        """After a WINDOW_UPDATE on `stream_id` (0: the connection): {stream: data bytes sent}."""
        if stream_id == 0:
            return self.flush_all()
        sent = self.flush(stream_id)
        return {stream_id: sent} if sent else {}

    @property
    def streams(self) -> list[int]:
        return list(self._queues)
