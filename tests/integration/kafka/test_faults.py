"""Faults in the streaming deployment, each ending with every acknowledged span stored exactly as
sent: the broker restarting mid-ingest, an ingester killed with SIGKILL mid-batch, and the
ingester's storage going away for a while.

The last two need storage that outlives the ingester and can really fail. Memory storage dies
with its process and never fails, so there the ingester writes through `--storage kafka` to a
second topic (on a second broker for the outage): a real backend we ship, whose writes really
fail while its broker is down. A plain memory ingester then reads that topic back for counting.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server
from tests.integration.kafka.harness import (
    Sender,
    assert_exactly_as_sent,
    collector,
    ingester,
    metric,
    send_all,
    traces,
    wait_stored,
)
from tests.servers.kafka import KafkaBroker

pytestmark = pytest.mark.slow  # brokers restarted and processes killed: ~1-3 min together


def started(*starts: Callable[[], Server]) -> list[Server]:
    """Processes started two at a time: their startup is mostly waiting on imports."""
    with ThreadPoolExecutor(2) as pool:
        return [future.result() for future in [pool.submit(start) for start in starts]]


def wait_for(condition: object, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_broker_restart_mid_ingest_loses_no_acknowledged_span(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    broker.create_topic("restart", 2)
    coll, ing = started(lambda: collector(tmp_path, broker, "restart"),
                        lambda: ingester(tmp_path, broker, "restart"))  # fmt: skip
    sender = Sender(coll, traces(0xA1, 100, spans_per_trace=8)).start()
    try:
        wait_for(lambda: metric(ing, "tracemesh_ingester_spans_total") > 0, what="ingest")
        broker.stop()  # clean shutdown, then the same node on the same ports and data
        time.sleep(1)
        broker.start()
        wait_for(lambda: sender.done, 90, "the sender to finish")
        acknowledged = sender.stop()
        assert len(acknowledged) == 800  # the client retried whatever was refused meanwhile
        assert_exactly_as_sent(wait_stored([ing], acknowledged, 90), acknowledged)
    finally:
        sender.stop()
        for srv in (coll, ing):
            assert srv.stop() == 0, srv.log()


def test_an_ingester_killed_mid_batch_resumes_from_its_last_commit(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    broker.create_topic("kill-in", 2)
    broker.create_topic("kill-out", 2)
    coll = collector(tmp_path, broker, "kill-in")
    sent = traces(0xA2, 500, spans_per_trace=8)
    try:
        send_all(coll, sent, per_request=400)  # all acknowledged: on the brokers
    finally:
        assert coll.stop() == 0
    relay = ["--storage", "kafka", "--kafka.producer.brokers", broker.bootstrap,
             "--kafka.producer.topic", "kill-out", "--ingester.batch-messages", "50"]  # fmt: skip
    first = ingester(tmp_path, broker, "kill-in", *relay, group="relay")
    progress = 0.0
    while progress < 100:
        progress = metric(first, "tracemesh_ingester_spans_total")
        time.sleep(0.02)
    first.stop(signal.SIGKILL)
    assert first.proc.returncode == -signal.SIGKILL
    assert progress < len(sent), "the ingester finished before it could be killed mid-stream"
    second, reader = started(
        lambda: ingester(tmp_path, broker, "kill-in", *relay, group="relay"),
        lambda: ingester(tmp_path, broker, "kill-out", group="reader"),
    )
    try:
        found = wait_stored([reader], sent, 90)
        assert_exactly_as_sent(found, sent)
        # The restarted ingester began at the killed one's last commit, not at the start...
        assert metric(second, "tracemesh_ingester_spans_total") < len(sent)
        # ...and what the killed one stored after that commit came again, harmlessly.
        assert metric(reader, "tracemesh_ingester_spans_total") >= len(sent)
    finally:
        for srv in (second, reader):
            assert srv.stop() == 0, srv.log()


@pytest.fixture
def second_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    node = KafkaBroker(tmp_path_factory.mktemp("kafka-store"))
    node.start()
    yield node
    node.stop()


def test_a_storage_outage_holds_the_offsets_until_storage_is_back(
    broker: KafkaBroker, second_broker: KafkaBroker, tmp_path: Path
) -> None:
    broker.create_topic("outage-in", 2)
    second_broker.create_topic("outage-out", 2)
    coll, relay = started(
        lambda: collector(tmp_path, broker, "outage-in"),
        lambda: ingester(tmp_path, broker, "outage-in", "--storage", "kafka",
                         "--kafka.producer.brokers", second_broker.bootstrap,
                         "--kafka.producer.topic", "outage-out", "--kafka.producer.timeout", "2",
                         group="outage"),
    )  # fmt: skip
    sender = Sender(coll, traces(0xA3, 100, spans_per_trace=8), pause=0.1).start()
    try:
        wait_for(lambda: metric(relay, "tracemesh_ingester_spans_total") > 0, what="ingest")
        second_broker.stop()
        wait_for(lambda: metric(relay, "tracemesh_storage_write_failures_total") > 0, 30,
                 "the relay's storage writes to fail")  # fmt: skip
        assert httpx.get(relay.admin + "/health").status_code == 503  # reports the outage
        time.sleep(3)  # spans keep arriving and queue up in the topic meanwhile
        second_broker.start()
        wait_for(lambda: sender.done, 90, "the sender to finish")
        acknowledged = sender.stop()
        assert len(acknowledged) == 800
        reader = ingester(tmp_path, second_broker, "outage-out", group="reader")
        try:
            assert_exactly_as_sent(wait_stored([reader], acknowledged, 90), acknowledged)
        finally:
            assert reader.stop() == 0, reader.log()
        wait_for(lambda: httpx.get(relay.admin + "/health").status_code == 200, 30, "health")
    finally:
        sender.stop()
        for srv in (coll, relay):
            assert srv.stop() == 0, srv.log()
