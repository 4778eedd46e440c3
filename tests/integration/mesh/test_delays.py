"""Waiting before a try or an answer: an injected delay (flagged DI) before an abort or before
forwarding, and a retry's backoff (not flagged), with the client reading or going away."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import httpx

from tests.integration.mesh.harness import Recorder, proxy, run, wait_for
from tests.integration.mesh.upstreams import closed_port, uvicorn_upstream
from tracemesh.mesh.handler import Exchange, Forward, Respond


class Answering(Recorder):
    """Answers every request itself, after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(("127.0.0.1", 1))
        self.delay = delay

    def on_request(self, exchange: Exchange) -> Forward | Respond:
        return Respond(503, b"fault filter abort\n", flag="FI", delay=self.delay)


def test_delayed_abort_answers_after_the_delay_and_drops_the_body() -> None:
    async def main() -> None:
        handler = Answering(0.2)
        async with proxy(handler) as server, httpx.AsyncClient() as http:
            started = time.monotonic()
            reply = await http.post(f"http://127.0.0.1:{server.port}/x", content=b"b" * 100_000)
            assert time.monotonic() - started >= 0.19
            assert (reply.status_code, reply.text) == (503, "fault filter abort\n")
            again = await http.get(f"http://127.0.0.1:{server.port}/y")  # same connection
            assert again.status_code == 503
            await wait_for(lambda: len(handler.ended) == 2)
        first = handler.ended[0]
        assert (first.flags, first.status, first.attempts) == ("DI,FI", 503, 0)
        assert first.request_bytes == 100_000 and first.duration >= 0.19

    run(main())


def test_client_resetting_during_a_delayed_answer_ends_the_exchange_once() -> None:
    """Reading is paused while the request waits (its end is queued), so the reset is seen when
    the answer is written: the exchange ends once, then, and the proxy serves on."""

    async def main() -> None:
        handler = Answering(0.3)
        async with proxy(handler) as server, httpx.AsyncClient() as http:
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            await wait_for(lambda: handler.ended)
            await asyncio.sleep(0.4)
            assert (await http.get(f"http://127.0.0.1:{server.port}/")).status_code == 503
            await wait_for(lambda: len(handler.ended) == 2)
        assert handler.ended[0].flags.startswith("DI,") and len(handler.ended) == 2

    run(main())


def test_client_half_closing_during_a_delayed_answer_still_gets_it() -> None:
    async def main() -> None:
        handler = Answering(0.2)
        async with proxy(handler) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            writer.write_eof()
            reply = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            assert reply.startswith(b"HTTP/1.1 503 ")
            await wait_for(lambda: handler.ended)
        assert [e.flags for e in handler.ended] == ["DI,FI"]

    run(main())


def test_retry_backoff_waits_without_a_delay_flag() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            handler = Recorder(("127.0.0.1", closed_port()))
            handler.retry_to = Forward("127.0.0.1", port, backoff=0.2)
            async with proxy(handler) as server, httpx.AsyncClient() as http:
                started = time.monotonic()
                reply = await http.get(f"http://127.0.0.1:{server.port}/echo")
                assert reply.status_code == 200 and time.monotonic() - started >= 0.19
                await wait_for(lambda: handler.ended)
        assert handler.ended[0].flags == "-" and handler.ended[0].attempts == 2

    run(main())
