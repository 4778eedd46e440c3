"""One real Kafka broker (KRaft, installed from the Maven registry) for every streaming test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.kafka import KafkaBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    node = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    node.start()
    yield node
    node.stop()
