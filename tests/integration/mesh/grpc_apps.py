"""gRPC upstreams for the HTTP/2 tests: a real grpcio server (`test.Echo`, raw-bytes messages,
one method per call shape) and a bare h2 server that resets its stream mid-response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import RequestReceived

MAX_MESSAGE = 16 * 1024 * 1024
OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]
SERVICE = "test.Echo"


@dataclass
class Echo:
    """`Reverse` (unary; `fail:<msg>` aborts UNAVAILABLE, `bad:<msg>` INVALID_ARGUMENT,
    `sleep:<seconds>` answers late),
    `Repeat` (server streaming: `<count>:<size>` -> count messages of size bytes), `Sum`
    (client streaming: the total size of what came, as text), `Shout` (bidi: each upper-cased).
    `seen` keeps each call's metadata."""

    seen: list[dict[str, str]] = field(default_factory=list)

    def _note(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.seen.append({k: str(v) for k, v in context.invocation_metadata() or ()})

    async def reverse(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        self._note(context)
        if request.startswith(b"fail:"):
            await context.abort(grpc.StatusCode.UNAVAILABLE, request[5:].decode())
        if request.startswith(b"bad:"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request[4:].decode())
        if request.startswith(b"sleep:"):
            await asyncio.sleep(float(request[6:]))
        return request[::-1]

    async def repeat(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        self._note(context)
        count, size = (int(x) for x in request.split(b":"))
        for i in range(count):
            yield bytes((i % 256,)) * size

    async def sum(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        self._note(context)
        total = 0
        async for message in requests:
            total += len(message)
        return str(total).encode()

    async def shout(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        self._note(context)
        async for message in requests:
            yield message.upper()


@asynccontextmanager
async def echo_server(echo: Echo | None = None) -> AsyncIterator[tuple[int, Echo]]:
    echo = echo or Echo()
    server = grpc.aio.server(options=OPTIONS)
    handlers = {
        "Reverse": grpc.unary_unary_rpc_method_handler(echo.reverse),
        "Repeat": grpc.unary_stream_rpc_method_handler(echo.repeat),
        "Sum": grpc.stream_unary_rpc_method_handler(echo.sum),
        "Shout": grpc.stream_stream_rpc_method_handler(echo.shout),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port, echo
    finally:
        await server.stop(None)


def channel(port: int, authority: str | None = None) -> grpc.aio.Channel:
    options = list(OPTIONS)
    if authority:
        options.append(("grpc.default_authority", authority))
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)


def message(payload: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed)."""
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class _Resetter(asyncio.Protocol):
    """Answers every stream with gRPC headers and `messages` messages, then (0.2 s later)
    RST_STREAM."""

    def __init__(self, messages: int, code: ErrorCodes) -> None:
        self.messages = messages
        self.code = code
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        self.conn.initiate_connection()
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        for event in self.conn.receive_data(data):
            if isinstance(event, RequestReceived):
                sid = event.stream_id
                self.conn.send_headers(sid, [(b":status", b"200"),
                                             (b"content-type", b"application/grpc")])  # fmt: skip
                for _ in range(self.messages):
                    self.conn.send_data(sid, message(b"partial"))
                asyncio.get_running_loop().call_later(0.2, self._reset, sid)
        self.transport.write(self.conn.data_to_send())

    def _reset(self, stream_id: int) -> None:
        """Later: a client that got the reset at once might not pass the messages on."""
        assert self.transport is not None
        if not self.transport.is_closing():
            self.conn.reset_stream(stream_id, self.code)
            self.transport.write(self.conn.data_to_send())


class _Refuser(_Resetter):
    """Refuses every other stream (REFUSED_STREAM, before any response); answers the others
    with an empty gRPC OK (trailers-only)."""

    def __init__(self) -> None:
        super().__init__(0, ErrorCodes.REFUSED_STREAM)
        self.requests = 0

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        for event in self.conn.receive_data(data):
            if isinstance(event, RequestReceived):
                self.requests += 1
                if self.requests % 2:
                    self.conn.reset_stream(event.stream_id, ErrorCodes.REFUSED_STREAM)
                else:
                    self.conn.send_headers(event.stream_id, [
                        (b":status", b"200"), (b"content-type", b"application/grpc"),
                        (b"grpc-status", b"0")], end_stream=True)  # fmt: skip
        self.transport.write(self.conn.data_to_send())


@asynccontextmanager
async def refusing_server() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Refuser, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@asynccontextmanager
async def resetting_server(
    messages: int = 2, code: ErrorCodes = ErrorCodes.INTERNAL_ERROR
) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Resetter(messages, code), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def chunks(count: int, size: int) -> Iterator[bytes]:
    for i in range(count):
        yield bytes((65 + i % 26,)) * size
