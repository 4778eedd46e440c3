"""HTTP/2 cleartext (gRPC) through the proxy with a real grpcio client and server: every call
shape streams through as one exchange per stream, with gRPC's status read from the trailers;
local answers, retries, timeouts and upstream resets behave; hostile HTTP/2 ends in GOAWAY or
a refused stream, never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from dataclasses import replace
from typing import Any

import grpc
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    Event,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
)
from hpack import Encoder
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.integration.mesh.grpc_apps import (
    SERVICE,
    channel,
    chunks,
    echo_server,
    refusing_server,
    resetting_server,
)
from tests.integration.mesh.harness import FAST, Recorder, proxy, run, wait_for
from tests.integration.mesh.test_streaming import proxy_process
from tracemesh.mesh.handler import Exchange, Forward, Respond
from tracemesh.mesh.http1 import H2_PREFACE
from tracemesh.mesh.server import ServerConfig

KiB = 1024
MiB = 1024 * KiB


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"


def grpc_of(ex: Exchange) -> dict[str, str]:
    tags: dict[str, str] = ex.state["grpc"].tags
    return tags


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_call_shape_streams_through_one_exchange_per_stream() -> None:
    async def main() -> None:
        async with echo_server() as (up, _), proxy(Recorder(("127.0.0.1", up))) as proxied:
            handler = proxied.handler
            assert isinstance(handler, Recorder)
            async with channel(proxied.port) as ch:
                assert await ch.unary_unary(method("Reverse"))(b"abc", timeout=5) == b"cba"
                # server streaming: 6.4 MB in 100 messages
                got = [m async for m in ch.unary_stream(method("Repeat"))(b"100:65536")]
                assert len(got) == 100 and got[7] == b"\x07" * 65536
                # client streaming: 40 messages of 64 KiB
                total = await ch.stream_unary(method("Sum"))(chunks(40, 64 * KiB), timeout=10)
                assert total == str(40 * 64 * KiB).encode()
                # bidi: each answer before the next request
                call = ch.stream_stream(method("Shout"))()
                for word in (b"hey", b"there"):
                    await call.write(word)
                    assert await call.read() == word.upper()
                await call.done_writing()
                assert await call.code() == grpc.StatusCode.OK
            await wait_for(lambda: len(handler.ended) == 4)
            unary, repeat, total_ex, shout = handler.ended
            for ex in handler.ended:
                assert ex.request.version == b"2.0" and ex.status == 200 and ex.flags == "-"
                assert grpc_of(ex)["grpc.status_code"] == "0"
                assert grpc_of(ex)["grpc.content_type"] == "application/grpc"
            assert grpc_of(unary)["grpc.path"] == method("Reverse")
            assert repeat.response_bytes == 100 * (65536 + 5)  # gRPC frames: 5-byte prefix
            assert total_ex.request_bytes == 40 * (64 * KiB + 5)
            assert shout.request_bytes == shout.response_bytes == 5 + 3 + 5 + 5
            assert proxied.h2_pool.opened == 1  # one upstream connection, reused

    run(main())


def test_large_messages_both_ways() -> None:
    async def main() -> None:
        async with echo_server() as (up, _), proxy(Recorder(("127.0.0.1", up))) as proxied:
            payload = bytes(range(256)) * (12 * MiB // 256)
            async with channel(proxied.port) as ch:
                reply = await ch.unary_unary(method("Reverse"))(payload, timeout=30)
            assert reply == payload[::-1]

    run(main())


def test_many_concurrent_streams_on_one_connection() -> None:
    async def main() -> None:
        async with echo_server() as (up, _), proxy(Recorder(("127.0.0.1", up))) as proxied:
            handler = proxied.handler
            assert isinstance(handler, Recorder)
            async with channel(proxied.port) as ch:
                call = ch.unary_unary(method("Reverse"))
                texts = [b"call-%d" % i for i in range(300)]
                replies = await asyncio.gather(*(call(t, timeout=20) for t in texts))
            assert replies == [t[::-1] for t in texts]
            await wait_for(lambda: len(handler.ended) == 300)
            assert proxied.stats.connections == 1  # one client connection, 300 streams
            assert proxied.h2_pool.opened <= 2  # multiplexed upstream as well
            assert {ex.status for ex in handler.ended} == {200}

    run(main())


def test_grpc_status_from_trailers_and_envoys_error_rule() -> None:
    async def main() -> list[Exchange]:
        async with echo_server() as (up, _), proxy(Recorder(("127.0.0.1", up))) as proxied:
            handler = proxied.handler
            assert isinstance(handler, Recorder)
            async with channel(proxied.port) as ch:
                call = ch.unary_unary(method("Reverse"))
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await call(b"fail:try later", timeout=5)
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
                assert failed.value.details() == "try later"
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await call(b"bad:no such thing", timeout=5)
                assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            await wait_for(lambda: len(handler.ended) == 2)
            return handler.ended

    unavailable, invalid = run(main())
    assert unavailable.status == 200  # gRPC errors travel in trailers of an HTTP 200
    assert grpc_of(unavailable)["grpc.status_code"] == "14"
    assert grpc_of(unavailable)["grpc.message"] == "try later"
    assert unavailable.state["grpc"].error is True
    assert grpc_of(invalid)["grpc.status_code"] == "3"
    assert invalid.state["grpc"].error is False  # a client-side error, as Envoy sees it


def test_local_answers_are_trailers_only_grpc_statuses() -> None:
    async def main() -> None:
        handler = Recorder(services={"echo": ("127.0.0.1", closed_port())})
        async with proxy(handler) as proxied:
            async with channel(proxied.port, authority="nowhere") as ch:
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await ch.unary_unary(method("Reverse"))(b"x", timeout=5)
                assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED  # 404 NR -> 12
            async with channel(proxied.port, authority="echo") as ch:
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await ch.unary_unary(method("Reverse"))(b"x", timeout=5)
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE  # 503 UF -> 14
                assert "connection failure" in (failed.value.details() or "")
            await wait_for(lambda: len(handler.ended) == 2)
        no_route, unreachable = handler.ended
        assert (no_route.status, no_route.flags) == (200, "NR")
        assert grpc_of(no_route)["grpc.status_code"] == "12"
        assert (unreachable.status, unreachable.flags) == (200, "UF")
        assert grpc_of(unreachable)["grpc.status_code"] == "14"
        assert unreachable.state["grpc"].error is True

    run(main())


def test_plain_http2_local_answer_keeps_its_status() -> None:
    async def main() -> None:
        handler = Recorder(services={"echo": ("127.0.0.1", closed_port())})
        async with proxy(handler) as proxied:
            client = await RawH2.open(proxied.port)
            get = [(b":method", b"GET"), (b":path", b"/x"), (b":scheme", b"http")]
            events = await client.request([*get, (b":authority", b"nope")])
            heads = [e for e in events if isinstance(e, ResponseReceived)]
            assert heads and (b":status", b"404") in heads[0].headers
            client.close()

    run(main())


def test_retry_replays_the_request_body() -> None:
    async def main() -> None:
        async with echo_server() as (up, echo):
            handler = Recorder(("127.0.0.1", closed_port()))
            handler.retry_to = Forward("127.0.0.1", up)
            async with proxy(handler) as proxied, channel(proxied.port) as ch:
                assert await ch.unary_unary(method("Reverse"))(b"again", timeout=5) == b"niaga"
                await wait_for(lambda: handler.ended)
            (ex,) = handler.ended
            assert ex.attempts == 2 and ex.status == 200 and len(echo.seen) == 1

    run(main())


class Timed(Recorder):
    """Every call to `upstream` with a route timeout of `timeout` seconds."""

    def __init__(self, upstream: tuple[str, int], timeout: float) -> None:
        super().__init__(upstream)
        self.forward = Forward(*upstream, timeout=timeout)

    def on_request(self, exchange: Exchange) -> Forward:
        return self.forward


def test_route_timeout_is_ut_and_unavailable() -> None:
    async def main() -> None:
        async with echo_server() as (up, _):
            handler = Timed(("127.0.0.1", up), timeout=0.3)
            async with proxy(handler) as proxied, channel(proxied.port) as ch:
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await ch.unary_unary(method("Reverse"))(b"sleep:3", timeout=10)
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE  # 504 UT -> 14
                await wait_for(lambda: handler.ended)
            assert handler.ended[0].flags == "UT"

    run(main())


def test_grpc_calls_outlive_the_default_timeout_but_not_their_own() -> None:
    """As in Istio: no route timeout means none for gRPC (streams may be long); the call's own
    grpc-timeout still bounds it."""

    async def main() -> None:
        async with echo_server() as (up, _):
            handler = Recorder(("127.0.0.1", up))
            config = ServerConfig(tick=0.05, response_timeout=0.2)
            async with proxy(handler, config) as proxied, channel(proxied.port) as ch:
                assert await ch.unary_unary(method("Reverse"))(b"sleep:0.6") == b"6.0:peels"
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await ch.unary_unary(method("Reverse"))(b"sleep:3", timeout=0.5)
                assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                await wait_for(lambda: len(handler.ended) == 2)
            assert handler.ended[0].flags == "-"
            assert grpc_of(handler.ended[1])["grpc.timeout"].endswith(("m", "u", "n", "S"))

    run(main())


class Faulty(Recorder):
    """A fixed delay before every call; calls carrying `abort: <status>` are answered so."""

    def on_request(self, exchange: Exchange) -> Forward | Respond:
        for name, value in exchange.request.headers:
            if name == b"abort":
                return Respond(int(value), b"fault filter abort\n", flag="FI", delay=0.1)
        forward = super().on_request(exchange)
        assert isinstance(forward, Forward)
        return replace(forward, delay=0.2)


def test_injected_delay_and_abort() -> None:
    async def main() -> None:
        async with echo_server() as (up, _):
            handler = Faulty(("127.0.0.1", up))
            async with proxy(handler) as proxied, channel(proxied.port) as ch:
                call = ch.unary_unary(method("Reverse"))
                started = time.monotonic()
                assert await call(b"late", timeout=5) == b"etal"
                assert time.monotonic() - started >= 0.2
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await call(b"x", metadata=[("abort", "503")], timeout=5)
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
                assert failed.value.details() == "fault filter abort"
                await wait_for(lambda: len(handler.ended) == 2)
            delayed, aborted = handler.ended
            assert (delayed.status, delayed.flags) == (200, "DI")
            assert (aborted.status, aborted.flags) == (200, "DI,FI")
            assert grpc_of(aborted)["grpc.status_code"] == "14"

    run(main())


def test_upstream_reset_mid_stream_reaches_the_client() -> None:
    async def main() -> None:
        async with resetting_server(messages=2) as up:
            handler = Recorder(("127.0.0.1", up))
            async with proxy(handler) as proxied, channel(proxied.port) as ch:
                got: list[bytes] = []
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    async for item in ch.unary_stream(method("Repeat"))(b"9:9", timeout=5):
                        got.append(item)
                assert got == [b"partial", b"partial"]  # what came before the reset
                assert failed.value.code() == grpc.StatusCode.INTERNAL  # RST_STREAM code 2
                # the upstream connection survives a stream reset: the next call works the same
                with pytest.raises(grpc.aio.AioRpcError):
                    await ch.unary_unary(method("Reverse"))(b"x", timeout=5)
                await wait_for(lambda: len(handler.ended) == 2)
                assert proxied.h2_pool.opened == 1
            ex = handler.ended[0]
            assert (ex.status, ex.flags) == (200, "UR") and ex.response_bytes == 2 * 12

    run(main())


def test_a_refused_stream_is_sent_again() -> None:
    """REFUSED_STREAM means the upstream never processed it: the proxy sends it again, and the
    client never knows (what an upstream at its stream limit or going away answers)."""

    async def main() -> None:
        async with refusing_server() as up:
            handler = Recorder(("127.0.0.1", up))
            async with proxy(handler) as proxied, channel(proxied.port) as ch:
                for _ in range(3):
                    call = ch.unary_stream(method("Repeat"))(b"0:0", timeout=5)
                    assert [item async for item in call] == []
                    assert await call.code() == grpc.StatusCode.OK
                await wait_for(lambda: len(handler.ended) == 3)
            for ex in handler.ended:
                assert (ex.status, ex.flags, ex.attempts) == (200, "-", 1)
                assert grpc_of(ex)["grpc.status_code"] == "0"

    run(main())


def test_client_cancel_resets_the_upstream_stream() -> None:
    async def main() -> None:
        async with echo_server() as (up, _):
            handler = Recorder(("127.0.0.1", up))
            async with proxy(handler) as proxied, channel(proxied.port) as ch:
                call = ch.unary_stream(method("Repeat"))(b"100000:1024")
                assert len(await call.read()) == 1024
                call.cancel()
                await wait_for(lambda: handler.ended)
                assert handler.ended[0].flags == "DC"
                # and the connection goes on serving
                assert await ch.unary_unary(method("Reverse"))(b"ok", timeout=5) == b"ko"

    run(main())


# -- hostile HTTP/2 --


class RawH2:
    """An h2 client on a plain socket, for what grpcio would never send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))

    @classmethod
    async def open(cls, port: int) -> RawH2:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        client.conn.initiate_connection()
        writer.write(client.conn.data_to_send())
        return client

    async def events(self, until: type[Event], timeout: float = 5.0) -> list[Event]:
        """Read until an `until` event, EOF or `timeout`."""
        seen: list[Event] = []
        async with asyncio.timeout(timeout):
            while not any(isinstance(e, until) for e in seen):
                data = await self.reader.read(65536)
                if not data:
                    break
                seen += self.conn.receive_data(data)
                self.writer.write(self.conn.data_to_send())
        return seen

    async def request(self, headers: list[tuple[bytes, bytes]]) -> list[Event]:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, headers, end_stream=True)
        self.writer.write(self.conn.data_to_send())
        return await self.events(StreamEnded)

    def close(self) -> None:
        self.writer.close()


GRPC_HEAD = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/test.Echo/Reverse"),
             (b":authority", b"echo"), (b"content-type", b"application/grpc")]  # fmt: skip


async def still_serves(port: int) -> None:
    async with channel(port) as ch:
        assert await ch.unary_unary(method("Reverse"))(b"alive", timeout=5) == b"evila"


async def read_to_close(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    data = b""
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(65536):
            data += chunk
    return data


def frame_types(data: bytes) -> list[int]:
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        types.append(data[3])
        data = data[9 + length :]
    return types


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x03\x08\x00\x00\x00\x00\x00abc",  # WINDOW_UPDATE of the wrong size
        b"\xff\xff\xff\x01\x05\x00\x00\x00\x01" + b"x" * 100,  # HEADERS over the frame size
        b"\x00\x00\x05\x00\x01\x00\x00\x00\x01hello",  # DATA on a stream never opened
        b"\x00\x00\x08\x01\x05\x00\x00\x00\x02" + b"\xff" * 8,  # even stream id, bad HPACK
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # HTTP/1 after the preface
    ],
)
def test_garbage_frames_get_goaway_and_a_close(garbage: bytes) -> None:
    async def main() -> None:
        async with echo_server() as (up, _), proxy(Recorder(("127.0.0.1", up))) as proxied:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxied.port)
            writer.write(H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + garbage)
            received = await read_to_close(reader)
            writer.close()
            assert 7 in frame_types(received)  # GOAWAY, then the proxy closed
            assert proxied.stats.bad_requests == 1
            await still_serves(proxied.port)

    run(main())


def test_oversized_header_list_gets_goaway() -> None:
    async def main() -> None:
        async with echo_server() as (up, _), proxy(Recorder(("127.0.0.1", up))) as proxied:
            client = await RawH2.open(proxied.port)
            client.conn.send_headers(1, [*GRPC_HEAD, (b"x-big", b"v" * (80 * KiB))])
            client.writer.write(client.conn.data_to_send())
            events = await client.events(ConnectionTerminated)
            assert any(isinstance(e, ConnectionTerminated) for e in events)
            client.close()
            await still_serves(proxied.port)

    run(main())


def test_too_many_headers_is_431_on_that_stream_only() -> None:
    async def main() -> None:
        async with echo_server() as (up, _), proxy(Recorder(("127.0.0.1", up))) as proxied:
            client = await RawH2.open(proxied.port)
            many = [(b"x-h%d" % i, b"v") for i in range(150)]
            events = await client.request([*GRPC_HEAD[:4], *many])
            heads = [e for e in events if isinstance(e, ResponseReceived)]
            assert heads and (b":status", b"431") in heads[0].headers
            events = await client.request([*GRPC_HEAD[:4]])  # same connection: still served
            assert any(isinstance(e, ResponseReceived) for e in events)
            client.close()

    run(main())


def test_rapid_reset_gets_goaway() -> None:
    """HTTP/2 rapid reset (CVE-2023-44487): streams opened and reset at once, hundreds of them;
    the proxy closes the connection (ENHANCE_YOUR_CALM) and every upstream stream is cancelled."""

    async def main() -> None:
        async with echo_server() as (up, echo), proxy(Recorder(("127.0.0.1", up))) as proxied:
            client = await RawH2.open(proxied.port)
            await client.events(RemoteSettingsChanged)
            for _ in range(600):  # in batches, as a real attacker's writes come
                sid = client.conn.get_next_available_stream_id()
                client.conn.send_headers(sid, GRPC_HEAD)  # no END_STREAM: the server waits
                client.conn.reset_stream(sid)
                if sid % 40 == 1:
                    client.writer.write(client.conn.data_to_send())
            client.writer.write(client.conn.data_to_send())
            events = await client.events(ConnectionTerminated, timeout=10)
            (goaway,) = [e for e in events if isinstance(e, ConnectionTerminated)]
            assert goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
            client.close()
            await wait_for(lambda: not proxied.connections)
            handler = proxied.handler
            assert isinstance(handler, Recorder)
            assert len(handler.ended) <= 600 and {ex.flags for ex in handler.ended} <= {"DC", "DPE"}
            await still_serves(proxied.port)
            assert not echo.seen[:-1]  # no reset stream reached the app as a call

    run(main())


def test_bad_preface_is_http1_400() -> None:
    async def main() -> Any:
        async with proxy(Recorder(("127.0.0.1", closed_port())), FAST) as proxied:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxied.port)
            writer.write(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
            received = await read_to_close(reader)
            writer.close()
            assert received.startswith(b"HTTP/1.1 400")

    run(main())


def test_large_streams_do_not_grow_the_proxy() -> None:
    """64 MiB down and 64 MiB up through a proxy in its own process, the client reading slowly:
    flow control keeps what the proxy holds to its windows, so its RSS barely moves."""

    async def main() -> None:
        async with echo_server() as (up, _), proxy_process(up) as (port, process):
            base = process.memory_info().rss
            peak = base

            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, process.memory_info().rss)
                    await asyncio.sleep(0.02)

            sampler = asyncio.create_task(sample())
            async with channel(port) as ch:
                received = 0
                async for item in ch.unary_stream(method("Repeat"))(b"1024:65536", timeout=60):
                    received += len(item)
                    if received % (8 * MiB) == 0:
                        await asyncio.sleep(0.1)  # a slow reader now and then
                assert received == 64 * MiB
                total = await ch.stream_unary(method("Sum"))(chunks(1024, 64 * KiB), timeout=60)
                assert total == str(64 * MiB).encode()
            sampler.cancel()
            assert peak - base < 24 * MiB, f"the proxy grew by {(peak - base) / MiB:.1f} MiB"

    run(main())


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream.to_bytes(4, "big")
        + (payload)
    )


FRAMES = st.builds(
    frame,
    st.integers(0, 10),  # DATA ... CONTINUATION, and an unknown type
    st.integers(0, 255),
    st.sampled_from([0, 1, 2, 3, 5, 2**31 - 1]),
    st.binary(max_size=48),
)
HEADERS_1 = frame(1, 0x4, 1, Encoder().encode(GRPC_HEAD))  # a valid request head on stream 1


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")), deadline=None)
@given(st.lists(st.one_of(FRAMES, st.just(HEADERS_1)), min_size=1, max_size=8))
def test_random_frames_never_break_the_proxy(frames: list[bytes]) -> None:
    """Whatever frames follow the preface, the proxy answers, resets, or sends GOAWAY: no
    exception escapes into the event loop, and it goes on serving."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: errors.append(context))
        handler = Recorder(("127.0.0.1", closed_port()))
        async with proxy(handler) as proxied:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxied.port)
            writer.write(H2_PREFACE + frame(4, 0, 0, b"") + b"".join(frames))
            with contextlib.suppress(TimeoutError, ConnectionError):
                await read_to_close(reader, timeout=0.3)
            writer.close()
            client = await RawH2.open(proxied.port)  # a fresh connection is served as ever
            events = await client.request([*GRPC_HEAD, (b"x-after", b"fuzz")])
            assert any(isinstance(e, ResponseReceived) for e in events)
            client.close()
        assert not errors, errors

    run(main())
