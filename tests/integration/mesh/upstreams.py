"""Real upstream servers on loopback for the proxy tests: a uvicorn app that echoes, streams,
counts and sleeps, and a raw asyncio server that misbehaves on purpose (resets, garbage)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
PIECE = 64 * 1024


def pattern(size: int) -> bytes:
    """Deterministic bytes, so a body can be checked by CRC without keeping it."""
    block = bytes(range(256)) * (PIECE // 256)
    return (block * (size // PIECE + 1))[:size]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path == "/upload":
        count, crc = 0, 0
        while True:
            message = await receive()
            body = message.get("body", b"")
            count += len(body)
            crc = zlib.crc32(body, crc)
            if not message.get("more_body"):
                break
        await respond(send, 200, json.dumps({"bytes": count, "crc": crc}).encode())
    elif path == "/download":
        size = int(query.get("size", "0"))
        headers = [(b"content-type", b"application/octet-stream")]
        if query.get("chunked") != "1":
            headers.append((b"content-length", str(size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        block = pattern(PIECE)
        sent = 0
        while sent < size:
            piece = block[: min(PIECE, size - sent)]
            sent += len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": sent < size})
        if size == 0:
            await send({"type": "http.response.body", "body": b""})
    elif path == "/sleep":
        await asyncio.sleep(float(query.get("s", "1")))
        await respond(send, 200, b"slept")
    elif path == "/status":
        await respond(send, int(query.get("code", "200")), b"status")
    else:  # /echo and anything else: what arrived, as JSON
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen = {
            "method": scope["method"],
            "path": path,
            "query": scope["query_string"].decode(),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": body.decode("latin-1"),
        }
        await respond(send, 200, json.dumps(seen).encode(), [(b"x-upstream", b"uvicorn")])


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    head = [(b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def uvicorn_upstream(asgi: ASGIApp | None = None) -> AsyncIterator[int]:
    """Serve `asgi` (by default `app`) on a free loopback port in the running loop; yields the
    port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(asgi or app, http="httptools", lifespan="off", log_level="critical",
                            timeout_keep_alive=30)  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = server.force_exit = True  # don't wait out sleeping handlers
        await task


async def _misbehave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    served = 0
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1]
            if target == b"/flaky-keepalive" and served:  # as if its idle timeout just fired
                writer.close()
                return
            served += 1
            if target == b"/reset-mid-body":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
                await writer.drain()
                await asyncio.sleep(0.05)
                _reset(writer)
                return
            if target == b"/reset-before-head":
                _reset(writer)
                return
            if target == b"/close-delimited":
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close body")
                await writer.drain()
                writer.close()
                return
            if target == b"/garbage":
                writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
                await writer.drain()
                writer.close()
                return
            if target == b"/switch":  # a websocket-like upgrade, then echo in capitals
                writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             b"Upgrade: shout\r\n\r\n")  # fmt: skip
                while data := await reader.read(65536):
                    writer.write(data.upper())
                writer.close()
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@asynccontextmanager
async def bad_upstream() -> AsyncIterator[int]:
    server = await asyncio.start_server(_misbehave, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
