"""Large bodies stream through without being held whole (the proxy's RSS barely moves), and
upgraded connections pass through as byte tunnels, HTTP/2 (gRPC) ones stream by stream."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import psutil

from tests.integration.mesh.harness import Recorder, exchange_raw, proxy, run, wait_for
from tests.integration.mesh.upstreams import PIECE, bad_upstream, pattern, uvicorn_upstream

SIZE = 50 * 1024 * 1024
MiB = 1024 * 1024


@asynccontextmanager
async def proxy_process(upstream_port: int) -> AsyncIterator[tuple[int, psutil.Process]]:
    """The proxy in its own process, so its RSS is its own."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tracemesh.mesh.static", "--listen", f"127.0.0.1:{port}",
         "--upstream", f"127.0.0.1:{upstream_port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        for _ in range(500):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.02)
        yield port, psutil.Process(child.pid)
    finally:
        child.terminate()
        _, err = child.communicate(timeout=10)
        assert child.returncode == 0, err.decode()


async def upload(port: int, *, chunked: bool) -> dict[str, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % SIZE
    writer.write(b"POST /upload HTTP/1.1\r\nHost: a\r\n%b\r\n\r\n" % framing)
    block = pattern(PIECE)
    for _ in range(SIZE // PIECE):
        writer.write(b"%x\r\n%b\r\n" % (PIECE, block) if chunked else block)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    result: dict[str, int] = json.loads(await reader.readexactly(length))
    writer.close()
    return result


async def download(port: int, *, chunked: bool) -> tuple[int, int]:
    """Read a 50 MB response slowly enough that the proxy must pause its upstream."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    flag = b"1" if chunked else b"0"
    writer.write(b"GET /download?size=%d&chunked=%b HTTP/1.1\r\nHost: a\r\n\r\n" % (SIZE, flag))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    count, crc = 0, 0
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            count += size
            crc = zlib.crc32(data[:-2], crc)
    else:
        while count < SIZE:
            data = await reader.read(MiB)
            count += len(data)
            crc = zlib.crc32(data, crc)
    writer.close()
    return count, crc


def test_50mb_streams_both_ways_with_bounded_memory() -> None:
    async def main() -> None:
        async with uvicorn_upstream() as up, proxy_process(up) as (port, process):
            await exchange_raw(port, b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            baseline = process.memory_info().rss
            peak = baseline

            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, process.memory_info().rss)
                    await asyncio.sleep(0.02)

            sampler = asyncio.create_task(sample())
            expected_crc = zlib.crc32(pattern(SIZE))
            for chunked in (False, True):
                assert await upload(port, chunked=chunked) == {"bytes": SIZE, "crc": expected_crc}
                assert await download(port, chunked=chunked) == (SIZE, expected_crc)
            sampler.cancel()
            growth = (peak - baseline) / MiB
            assert growth < 30, f"proxy RSS grew {growth:.1f} MiB moving 4 x 50 MiB"

    run(main())


def test_upgrade_becomes_a_tunnel() -> None:
    async def main() -> None:
        async with bad_upstream() as up:
            handler = Recorder(("127.0.0.1", up))
            async with proxy(handler) as server:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(b"GET /switch HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                             b"Upgrade: shout\r\n\r\nearly bytes ")  # fmt: skip
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101")
                assert b"upgrade: shout" in head.lower() and b"connection: upgrade" in head
                writer.write(b"then more")
                assert await reader.readexactly(21) == b"EARLY BYTES THEN MORE"
                writer.write_eof()
                assert await reader.read() == b""
                writer.close()
                await wait_for(lambda: handler.ended)
            assert handler.ended[0].status == 101 and handler.ended[0].request_bytes == 21

    run(main())


def test_grpc_over_h2c_is_proxied_per_stream() -> None:
    async def main() -> None:
        server = grpc.aio.server()
        echo = grpc.unary_unary_rpc_method_handler(lambda request, context: request[::-1])
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Echo", {"Reverse": echo}),)
        )
        up = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        handler = Recorder(("127.0.0.1", up))
        try:
            async with proxy(handler) as proxied:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{proxied.port}") as channel:
                    call = channel.unary_unary("/test.Echo/Reverse")
                    for text in (b"hello", b"tracemesh"):
                        assert await call(text, timeout=5) == text[::-1]
                await wait_for(lambda: handler.ended)
                await wait_for(lambda: len(handler.ended) == 2)
            for ex in handler.ended:  # one exchange per stream, not one opaque tunnel
                assert (ex.request.method, ex.request.target) == (b"POST", b"/test.Echo/Reverse")
                assert ex.request.version == b"2.0" and ex.status == 200
                assert ex.state["grpc"].tags["grpc.status_code"] == "0"
            assert [ex.request_bytes for ex in handler.ended] == [5 + 5, 5 + 9]  # gRPC frames
        finally:
            await server.stop(None)

    run(main())
