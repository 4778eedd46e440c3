"""The proxy forwarding real HTTP between real clients and a real upstream on loopback."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.integration.mesh.harness import Recorder, exchange_raw, proxy, run, wait_for
from tests.integration.mesh.upstreams import bad_upstream, uvicorn_upstream


def test_many_concurrent_keep_alive_clients_all_answered_correctly() -> None:
    async def client(port: int, n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(40):
            body = f"client {n} request {i}".encode() * (i % 3)
            head = b"POST /echo/%d/%d?q=%d HTTP/1.1\r\nHost: svc\r\n" % (n, i, i)
            writer.write(head + b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            seen = json.loads(await reader.readexactly(length))
            assert (seen["path"], seen["query"]) == (f"/echo/{n}/{i}", f"q={i}")
            assert seen["body"].encode() == body
        writer.close()

    async def main() -> None:
        async with uvicorn_upstream() as port, proxy(Recorder(("127.0.0.1", port))) as server:
            await asyncio.gather(*(client(server.port, n) for n in range(50)))
            assert server.stats.requests == 2000
            assert server.stats.connections == 50
            # keep-alive upstream too: far fewer upstream connections than requests
            assert server.pool.opened <= 100

    run(main())


def test_request_headers_are_cleaned_and_host_kept() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port, proxy(Recorder(("127.0.0.1", port))) as server:
            request = (
                b"GET /echo HTTP/1.1\r\nHost: shop.example:8080\r\nConnection: keep-alive, X-Secret"
                b"\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization:"
                b" Basic eA==\r\nX-Kept: yes\r\nUpgrade: h2c\r\n\r\n"
            )
            reply, _ = await exchange_raw(server.port, request, timeout=1.0)
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert b"x-proxied: 1" in head  # added by the handler's on_response
            names = {k for k, _ in json.loads(body)["headers"]}
            assert {"host", "x-kept"} <= names
            assert not names & {"x-secret", "keep-alive", "te", "proxy-authorization", "upgrade"}
            assert ["host", "shop.example:8080"] in json.loads(body)["headers"]

    run(main())


def test_absolute_form_request_reaches_the_named_service() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            handler = Recorder(services={"api": ("127.0.0.1", port)})
            async with proxy(handler) as server:
                proxied = {
                    "http://": httpx.AsyncHTTPTransport(proxy=f"http://127.0.0.1:{server.port}")
                }
                async with httpx.AsyncClient(mounts=proxied) as http:
                    reply = await http.get("http://api/echo?x=1")
                assert reply.status_code == 200
                seen = reply.json()
                assert (seen["path"], seen["query"]) == ("/echo", "x=1")
                assert ["host", "api"] in seen["headers"]

    run(main())


def test_unknown_host_is_404_no_route() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            handler = Recorder(services={"api": ("127.0.0.1", port)})
            async with proxy(handler) as server:
                async with httpx.AsyncClient() as http:
                    url = f"http://127.0.0.1:{server.port}/echo"
                    reply = await http.get(url, headers={"host": "evil.example.com"})
                    assert reply.status_code == 404
                    assert (await http.get(url, headers={"host": "API:80"})).status_code == 200
                await wait_for(lambda: len(handler.ended) == 2)
                assert handler.ended[0].flags == "NR"
                assert handler.ended[1].flags == "-"

    run(main())


def test_pipelined_requests_answered_in_order() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port, proxy(Recorder(("127.0.0.1", port))) as server:
            requests = b"".join(
                b"POST /echo/%d HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n%d" % (i, i)
                for i in range(5)
            )
            last = b"GET /echo/last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            reply, closed = await exchange_raw(server.port, requests + last)
            assert closed
            bodies = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])
                      for part in reply.split(b"HTTP/1.1 200 OK")[1:]]  # fmt: skip
            assert [b["path"] for b in bodies] == [*(f"/echo/{i}" for i in range(5)), "/echo/last"]
            assert [b["body"] for b in bodies[:5]] == [str(i) for i in range(5)]

    run(main())


def test_chunked_bodies_both_ways_and_close_delimited_rechunked() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port, proxy(Recorder(("127.0.0.1", port))) as server:
            url = f"http://127.0.0.1:{server.port}"
            async with httpx.AsyncClient(base_url=url) as http:

                async def pieces():  # type: ignore[no-untyped-def]
                    for i in range(10):
                        yield b"piece %d;" % i

                reply = await http.post("/upload", content=pieces())
                assert reply.json()["bytes"] == len(b"".join(b"piece %d;" % i for i in range(10)))
                reply = await http.get("/download?size=300000&chunked=1")
                assert reply.headers["transfer-encoding"] == "chunked"
                assert len(reply.content) == 300000
        async with (
            bad_upstream() as port,
            proxy(Recorder(("127.0.0.1", port))) as server,
            httpx.AsyncClient() as http,
        ):
            reply = await http.get(f"http://127.0.0.1:{server.port}/close-delimited")
            assert reply.content == b"until-close body"
            assert reply.headers["transfer-encoding"] == "chunked"  # re-framed for 1.1

    run(main())


def test_http10_client_and_head_requests() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port, proxy(Recorder(("127.0.0.1", port))) as server:
            reply, closed = await exchange_raw(
                server.port, b"GET /download?size=5&chunked=1 HTTP/1.0\r\n\r\n"
            )
            assert closed and reply.startswith(b"HTTP/1.1 200")
            assert b"transfer-encoding" not in reply.lower()
            assert reply.endswith(b"\r\n\r\n" + bytes(range(5)))
            head = b"HEAD /download?size=1000 HTTP/1.1\r\nHost: a\r\n\r\n"
            get = b"GET /download?size=3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            reply, closed = await exchange_raw(server.port, head + get)
            assert closed
            first, second = reply.split(b"HTTP/1.1 200 OK")[1:]
            assert b"content-length: 1000" in first.lower() and first.endswith(b"\r\n\r\n")
            assert second.endswith(b"\r\n\r\n" + bytes(range(3)))

    run(main())


def test_expect_100_continue_is_relayed() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port, proxy(Recorder(("127.0.0.1", port))) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                         b"Expect: 100-continue\r\n\r\n")  # fmt: skip
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert interim.startswith(b"HTTP/1.1 100")
            writer.write(b"hello")
            final = await asyncio.wait_for(reader.readuntil(b"}"), 5)
            assert final.startswith(b"HTTP/1.1 200") and b'"bytes": 5' in final
            writer.close()

    run(main())


def test_exchange_reports_sizes_status_and_timings() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            handler = Recorder(("127.0.0.1", port))
            async with proxy(handler) as server, httpx.AsyncClient() as http:
                url = f"http://127.0.0.1:{server.port}/upload"
                reply = await http.post(url, content=b"x" * 1234)
                await wait_for(lambda: handler.ended)
            ex = handler.ended[0]
            assert (ex.status, ex.flags, ex.request_bytes) == (200, "-", 1234)
            assert ex.response_bytes == len(reply.content)
            assert ex.upstream == ("127.0.0.1", port) and ex.attempts == 1
            assert ex.start <= ex.upstream_start <= ex.response_start <= ex.end
            assert ex.start_ns > 1_600_000_000 * 10**9

    run(main())


def test_half_closed_client_gets_every_pipelined_answer() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port, proxy(Recorder(("127.0.0.1", port))) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo/2 HTTP/1.1\r\nHost: a\r\n\r\n"
            )
            writer.write_eof()  # like `printf ... | nc`: done sending, still reading
            reply = await asyncio.wait_for(reader.read(), 5)
            assert reply.count(b"HTTP/1.1 200 OK") == 2 and b"/echo/2" in reply
            writer.close()

    run(main())
