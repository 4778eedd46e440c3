"""A minimal asyncio HTTP/1.1 client for the proxy's own calls (span reports, sampling
strategies): one keep-alive connection to one server, one request at a time, every step under a
timeout, responses parsed by `http1.ResponseParser` and capped in size.

It exists so the data plane needs no HTTP client library; it is not for application traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from tracemesh.mesh.http1 import END, Invalid, ResponseHead, ResponseParser

MAX_RESPONSE_BYTES = 1 << 20


class HttpError(Exception):
    """The server could not be reached or did not answer with HTTP in time."""


class _Stale(Exception):
    """A kept-alive connection turned out closed before any answer: try once more, afresh."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class HttpClient:
    """Requests to `http://host:port`; reconnects when the connection is gone."""

    def __init__(self, host: str, port: int, *, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """Send one request and read its whole response; HttpError on any failure (the
        connection is then dropped, so the next request starts afresh)."""
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout):
                    try:
                        return await self._exchange(method, path, body, headers)
                    except _Stale:
                        await self.close()
                        return await self._exchange(method, path, body, headers)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, HttpError) as exc:
                await self.close()
                if isinstance(exc, HttpError):
                    raise
                reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
                raise HttpError(f"http://{self.host}:{self.port}{path}: {reason}") from None

    async def _exchange(
        self, method: str, path: str, body: bytes, headers: Sequence[tuple[str, str]]
    ) -> Response:
        fresh = self._writer is None
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body or method in ("POST", "PUT"):
            lines.append(f"content-length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self._writer.write(head + body)
        parser = ResponseParser()
        parser.start(method.encode())
        got: ResponseHead | None = None
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                data = await self._reader.read(65536)
            except ConnectionResetError:
                if fresh or got is not None:
                    raise
                raise _Stale from None
            if not data:
                events = parser.eof()
                if not events and got is None and not fresh:
                    raise _Stale
            else:
                events = parser.feed(data)
            for event in events:
                if isinstance(event, ResponseHead):
                    if event.status >= 200:
                        got = event
                elif isinstance(event, bytes):
                    size += len(event)
                    if size > MAX_RESPONSE_BYTES:
                        raise HttpError(f"response larger than {MAX_RESPONSE_BYTES} bytes")
                    parts.append(event)
                elif event is END and got is not None:
                    if not got.keep_alive:
                        await self.close()
                    return Response(got.status, got.headers, b"".join(parts))
                elif isinstance(event, Invalid):
                    raise HttpError(f"bad response from {self.host}:{self.port}: {event.reason}")
            if not data:
                raise HttpError(f"{self.host}:{self.port} closed the connection mid-response")

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
