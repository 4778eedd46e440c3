"""Tests against the session's real Elasticsearch/OpenSearch node (tests/support/search_node.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.search_node import SearchNode, shared_node


@pytest.fixture(scope="session")
def node() -> SearchNode:
    return shared_node()  # stopped when the session ends (tests/conftest.py)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()
