"""The storage contract suite's harness: every test runs once per backend on a fresh store.

Adding a backend is adding one entry to BACKENDS: a function from a scratch directory to an
unstarted `Storage`. Tests that need a capability a backend does not declare skip themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.contract import disk_backends
from tests.contract.harness import Backend
from tests.support.elastic import storage_for as elastic_storage
from tracemesh.storage.api import Storage
from tracemesh.storage.memory.config import MemoryConfig
from tracemesh.storage.memory.factory import MemoryStorage

BACKENDS: dict[str, Callable[[Path], Storage]] = {
    "memory": lambda _: MemoryStorage(MemoryConfig(max_traces=100_000)),
    "disk": disk_backends.in_log,
    "disk-blocks": disk_backends.in_blocks,
    # a real Elasticsearch (or OpenSearch) node, one per session: tests/support/search_node.py
    "elasticsearch": elastic_storage,
}


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop per test, shared by start, every call and close: client libraries of
    networked backends bind to the loop they were started on."""
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.fixture(params=sorted(BACKENDS))
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> Iterator[Backend]:
    """A started, empty backend (reopenable on the same directory); closed after the test."""
    make = BACKENDS[request.param]
    started = Backend(make(tmp_path), loop, reopen=lambda: make(tmp_path))
    loop.run_until_complete(started.storage.start())
    yield started
    loop.run_until_complete(started.storage.close())  # the instance a restart made, if any
