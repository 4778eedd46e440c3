"""Health probes of mesh processes: an HTTP GET that must answer 200 (the proxies' and the
backend's admin `/health`), or a TCP connect (an app, whose only promise is to listen)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tracemesh.runner.plan import HOST, Probe


async def probe(check: Probe, timeout: float = 1.0) -> bool:
    try:
        return await asyncio.wait_for(_probe(check), timeout)
    except (OSError, TimeoutError, ValueError, IndexError):
        return False


async def _probe(check: Probe) -> bool:
    reader, writer = await asyncio.open_connection(HOST, check.port)
    try:
        if check.kind == "tcp":
            return True
        request = f"GET {check.path} HTTP/1.0\r\nHost: {HOST}\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        status = await reader.readline()
        return status.split()[1] == b"200"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def wait_healthy(check: Probe, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if await probe(check):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
