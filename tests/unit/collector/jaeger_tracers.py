"""Real jaeger-client tracers for tests, reporting over UDP to a port of ours and shut down
cleanly: spans flushed, the client's IO thread stopped, its loop and socket closed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jaeger_client import Config, Tracer

PROCESS_TAGS = {"ip": "10.1.2.3", "hostname": "test-host"}  # set, so the client probes no NICs


@contextmanager
def jaeger_tracer(port: int, service: str, **options: Any) -> Iterator[Tracer]:
    """A tracer that samples everything; its spans are all sent once the block ends."""
    config = Config(
        {
            "sampler": {"type": "const", "param": 1},
            "local_agent": {"reporting_host": "127.0.0.1", "reporting_port": port},
            "logging": False,
            "tags": dict(PROCESS_TAGS),
            **options,
        },
        service_name=service,
        validate=True,
    )
    tracer = config.new_tracer()
    try:
        yield tracer
    finally:
        close_tracer(tracer)


def close_tracer(tracer: Tracer, timeout: float = 10.0) -> None:
    # close() makes its result future in the calling thread, whose event loop asyncio would
    # create implicitly and never close: give it one we close ourselves.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        flushed = tracer.close()
        deadline = time.monotonic() + timeout
        while not flushed.done():  # completed by the client's IO thread
            if time.monotonic() > deadline:
                raise TimeoutError("jaeger-client did not flush its spans")
            time.sleep(0.01)
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    channel = tracer.reporter._channel
    thread_loop = channel._thread_loop
    io_loop = thread_loop._io_loop
    io_loop.add_callback(io_loop.stop)  # thread-safe, unlike stop() itself
    thread_loop._thread.join(timeout)
    io_loop.close(all_fds=True)
    channel.close()
