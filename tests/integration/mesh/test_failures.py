"""What the proxy does when the upstream is slow, down, resets, or talks nonsense; retries through
the handler; clean shutdown."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx

from tests.integration.mesh.harness import FAST, Recorder, exchange_raw, proxy, run, wait_for
from tests.integration.mesh.upstreams import bad_upstream, closed_port, uvicorn_upstream
from tracemesh.mesh.handler import Forward


def test_slow_upstream_is_504_upstream_timeout() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            handler = Recorder(("127.0.0.1", port))
            config = dataclasses.replace(FAST, response_timeout=0.3)
            async with proxy(handler, config) as server, httpx.AsyncClient() as http:
                base = f"http://127.0.0.1:{server.port}"
                reply = await http.get(f"{base}/sleep?s=3")
                assert reply.status_code == 504
                assert b"upstream request timeout" in reply.content
                assert (await http.get(f"{base}/sleep?s=0.01")).status_code == 200  # still serving
                await wait_for(lambda: len(handler.ended) == 2)
            assert handler.ended[0].flags == "UT" and handler.ended[0].status == 504
            assert 0.25 < handler.ended[0].duration < 1.0

    run(main())


def test_upstream_down_is_503_connect_failure() -> None:
    async def main() -> None:
        handler = Recorder(("127.0.0.1", closed_port()))
        async with proxy(handler) as server, httpx.AsyncClient() as http:
            reply = await http.get(f"http://127.0.0.1:{server.port}/x")
            assert reply.status_code == 503
            assert b"connection failure" in reply.content
            await wait_for(lambda: handler.ended)
        assert handler.ended[0].flags == "UF"

    run(main())


def test_connect_failure_retried_where_the_handler_says() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            handler = Recorder(("127.0.0.1", closed_port()))
            handler.retry_to = Forward("127.0.0.1", port)
            async with proxy(handler) as server, httpx.AsyncClient() as http:
                reply = await http.get(f"http://127.0.0.1:{server.port}/echo")
                assert reply.status_code == 200
                await wait_for(lambda: handler.ended)
            assert handler.ended[0].attempts == 2 and handler.ended[0].flags == "-"

    run(main())


def test_bad_status_retried_where_the_handler_says() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            handler = Recorder(("127.0.0.1", port))
            handler.retry_status = 503
            handler.retry_to = Forward("127.0.0.1", port, path=b"/status?code=201")
            async with proxy(handler) as server, httpx.AsyncClient() as http:
                reply = await http.get(f"http://127.0.0.1:{server.port}/status?code=503")
                assert reply.status_code == 201
                # a request with a body cannot be replayed: the 503 goes through
                posted = await http.post(f"http://127.0.0.1:{server.port}/status?code=503",
                                         content=b"body")  # fmt: skip
                assert posted.status_code == 503

    run(main())


def test_upstream_reset_mid_response_closes_that_client_only() -> None:
    async def main() -> None:
        async with bad_upstream() as port:
            handler = Recorder(("127.0.0.1", port))
            async with proxy(handler) as server:

                async def healthy() -> None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                    for _ in range(20):
                        writer.write(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
                        head = await reader.readuntil(b"\r\n\r\n")
                        assert head.startswith(b"HTTP/1.1 200") and await reader.readexactly(2)
                        await asyncio.sleep(0.01)
                    writer.close()

                busy = asyncio.create_task(healthy())
                request = b"GET /reset-mid-body HTTP/1.1\r\nHost: a\r\n\r\n"
                reply, closed = await exchange_raw(server.port, request)
                assert closed
                assert reply.startswith(b"HTTP/1.1 200 OK") and b"content-length: 1000000" in reply
                assert len(reply.split(b"\r\n\r\n", 1)[1]) < 1000000
                await busy
                reply, closed = await exchange_raw(
                    server.port, b"GET /reset-before-head HTTP/1.1\r\nHost: a\r\n\r\n", timeout=1
                )
                assert reply.startswith(b"HTTP/1.1 503") and not closed  # keep-alive goes on
                await wait_for(lambda: len(handler.ended) == 22)
            flags = sorted({ex.flags for ex in handler.ended})
            assert flags == ["-", "UC"]

    run(main())


def test_upstream_protocol_errors_are_502() -> None:
    async def main() -> None:
        async with bad_upstream() as port:
            handler = Recorder(("127.0.0.1", port))
            async with proxy(handler) as server, httpx.AsyncClient() as http:
                reply = await http.get(f"http://127.0.0.1:{server.port}/garbage")
                assert reply.status_code == 502
                await wait_for(lambda: handler.ended)
            assert handler.ended[0].flags == "UPE"

    run(main())


def test_client_disconnect_mid_request_is_reported() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            handler = Recorder(("127.0.0.1", port))
            async with proxy(handler) as server:
                _, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
                await asyncio.sleep(0.2)
                writer.close()
                await wait_for(lambda: handler.ended)
            assert handler.ended[0].flags == "DC" and handler.ended[0].request_bytes == 3

    run(main())


def test_stop_finishes_in_flight_requests_and_refuses_new_ones() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            handler = Recorder(("127.0.0.1", port))
            async with proxy(handler) as server, httpx.AsyncClient() as http:
                url = f"http://127.0.0.1:{server.port}"
                slow = asyncio.create_task(http.get(f"{url}/sleep?s=0.5"))
                await wait_for(lambda: server.stats.requests == 1)
                stopping = asyncio.create_task(server.stop(timeout=5))
                await asyncio.sleep(0.1)
                assert not server.serving
                reply = await slow
                assert reply.status_code == 200 and reply.headers["connection"] == "close"
                await stopping
                try:
                    await http.get(f"{url}/echo")
                    raise AssertionError("a stopped proxy answered")
                except httpx.ConnectError:
                    pass

    run(main())


def test_stop_cuts_requests_past_the_deadline() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            handler = Recorder(("127.0.0.1", port))
            async with proxy(handler) as server:
                request = b"GET /sleep?s=5 HTTP/1.1\r\nHost: a\r\n\r\n"
                pending = asyncio.create_task(exchange_raw(server.port, request))
                await wait_for(lambda: server.stats.requests == 1)
                await server.stop(timeout=0.2)
                reply, closed = await pending
                assert closed and reply == b""
            assert handler.ended[0].flags == "DC"

    run(main())


def test_pooled_connection_closed_by_the_upstream_is_retried_transparently() -> None:
    async def main() -> None:
        async with bad_upstream() as port:
            handler = Recorder(("127.0.0.1", port))
            async with proxy(handler) as server, httpx.AsyncClient() as http:
                url = f"http://127.0.0.1:{server.port}/flaky-keepalive"
                for _ in range(3):  # each reuse finds the upstream gone, then a fresh one works
                    assert (await http.get(url)).content == b"ok"
                await wait_for(lambda: len(handler.ended) == 3)
                assert server.pool.opened == 3
            assert [ex.flags for ex in handler.ended] == ["-", "-", "-"]
            assert [ex.attempts for ex in handler.ended] == [1, 1, 1]

    run(main())


def test_idle_upstream_connections_are_closed_after_their_timeout() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            config = dataclasses.replace(FAST, upstream_idle_timeout=0.2)
            async with proxy(Recorder(("127.0.0.1", port)), config) as server:
                async with httpx.AsyncClient() as http:
                    await http.get(f"http://127.0.0.1:{server.port}/echo")
                assert server.pool.idle_count == 1
                await wait_for(lambda: server.pool.idle_count == 0, timeout=2)

    run(main())
