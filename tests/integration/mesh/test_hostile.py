"""Request smuggling and oversized heads, sent as raw bytes: refused with the right status, the
connection closed, and the proxy still serving everyone else."""

from __future__ import annotations

import pytest

from tests.integration.mesh.harness import Recorder, exchange_raw, proxy, run
from tests.integration.mesh.upstreams import uvicorn_upstream

GET = b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"
SMUGGLING = {
    "cl+te": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + GET,
    "te+cl": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 4\r\n\r\n0\r\n\r\n" + GET,
    "double cl": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40"
    b"\r\n\r\nabcd" + GET,
    "same cl twice": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
    b"Content-Length: 4\r\n\r\nabcd",
    "cl list": b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd",
    "te chunked, identity": b"POST /echo HTTP/1.1\r\nHost: a\r\n"
    b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "te identity": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nabcd",
    "te twice": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te space before colon": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked"
    b"\r\n\r\n0\r\n\r\n",
    "obs-fold": b"GET /echo HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n X-B: 2\r\n\r\n",
    "bare lf": b"GET /echo HTTP/1.1\nHost: a\n\n",
    "bare lf in headers": b"GET /echo HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n",
    "bare cr": b"GET /echo HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n",
    "bad header name": b"GET /echo HTTP/1.1\r\nHost: a\r\nX(A): 1\r\n\r\n",
    "nul in value": b"GET /echo HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    "two hosts": b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no host": b"GET /echo HTTP/1.1\r\n\r\n",
    "bad chunk size": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4 \r\nabcd\r\n0\r\n\r\n",
    "chunk lf only": b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\nabcd\n0\n\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_smuggling_attempt_refused_with_400_and_closed(name: str) -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port:
            handler = Recorder(("127.0.0.1", port))
            async with proxy(handler) as server:
                reply, closed = await exchange_raw(server.port, SMUGGLING[name], timeout=3)
                assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:200]
                assert b"connection: close" in reply
                assert reply.count(b"HTTP/1.1") == 1  # nothing smuggled through
                assert closed
                # refused at the head, before the handler; or, for bad chunk framing, mid-body
                assert all(ex.flags == "DPE" for ex in handler.ended)
                reply, _ = await exchange_raw(server.port, GET, timeout=0.5)
                assert reply.startswith(b"HTTP/1.1 200")  # and everyone else is still served

    run(main())


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /echo HTTP/1.1\r\nHost: a\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n", 431),
        (b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Huge: " + b"a" * 10_000_000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
        (b"GET /echo HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET /echo\r\n\r\n", 505),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET https://a/echo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET http://user@a/echo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ],
    ids=["101 headers", "70 KB header", "10 MB header", "9 KB target", "CONNECT", "HTTP/2.0",
         "HTTP/0.9", "gzip chunked", "https URL", "userinfo"],
)  # fmt: skip
def test_oversized_and_unsupported_requests(request_bytes: bytes, status: int) -> None:
    async def main() -> None:
        async with uvicorn_upstream() as port, proxy(Recorder(("127.0.0.1", port))) as server:
            reply, closed = await exchange_raw(server.port, request_bytes, timeout=5)
            assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:100]
            assert closed
            reply, _ = await exchange_raw(server.port, GET, timeout=0.5)
            assert reply.startswith(b"HTTP/1.1 200")

    run(main())


def test_slow_head_is_408() -> None:
    import dataclasses

    from tests.integration.mesh.harness import FAST

    async def main() -> None:
        config = dataclasses.replace(FAST, head_timeout=0.3)
        async with uvicorn_upstream() as port, proxy(Recorder(("127.0.0.1", port)), config) as srv:
            reply, closed = await exchange_raw(srv.port, b"GET /echo HTTP/1.1\r\nHo", timeout=3)
            assert reply.startswith(b"HTTP/1.1 408") and closed

    run(main())
