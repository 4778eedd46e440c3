"""What every role's process shares: the `Listener` it keeps per bound port, and running it until
SIGINT or SIGTERM with an orderly start and stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("tracemesh")


@dataclass
class Listener:
    """Something bound to a port; `intake` listeners take spans and stop before the flush."""

    name: str
    where: str
    stop: Callable[[], Awaitable[None]]
    serving: Callable[[], bool]
    intake: bool


class Role(Protocol):
    listeners: list[Listener]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def run_until_signalled(process: Role, banner: Callable[[], str]) -> None:
    """Start `process` (stopping what started if that fails), log `banner()` and where it
    listens, wait for SIGINT or SIGTERM, then stop it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await process.start()
    except BaseException:
        await process.stop()
        raise
    log.info("%s", banner())
    width = max(len(item.name) for item in process.listeners)
    for item in process.listeners:
        log.info("  %s  %s", item.name.ljust(width), item.where)
    await stop.wait()
    log.info("shutting down: stopping intake, flushing spans")
    await process.stop()
    log.info("stopped")
