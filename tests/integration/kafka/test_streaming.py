"""The streaming deployment end to end on a real broker: an OTLP client -> `collector --storage
kafka` -> topic -> `ingester` -> storage, in every encoding; ingesters sharing the partitions;
poison messages skipped; lag and throughput in /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Producer

from tests.e2e.server import Server, start
from tests.e2e.test_every_path import fetch, logical_trace, normalized, send_otlp_http
from tests.integration.kafka.harness import (
    assert_exactly_as_sent,
    collector,
    ingester,
    metric,
    send_all,
    traces,
    wait_stored,
)
from tests.servers.kafka import KafkaBroker
from tracemesh.codecs import DecodeError
from tracemesh.codecs.kafka_spans import ENCODINGS, decode, encode, jaeger_key
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.runtime.config import Config
from tracemesh.runtime.process import Process, ingester_config, make_storage

LOGICAL = bytes.fromhex("4b61666b612d7472616365000000aa01")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A plain all-in-one: what the logical trace reads back as without Kafka in between."""
    srv = start(Path(tmp_path_factory.mktemp("reference")))
    send_otlp_http(srv, logical_trace(LOGICAL))
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def pairs(
    broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[Server, Server]]]:
    """A collector and an ingester per encoding, each pair on its own topic, started at once."""
    tmp = tmp_path_factory.mktemp("pairs")
    for encoding in ENCODINGS:
        broker.create_topic(f"spans-{encoding}", 2)
    with ThreadPoolExecutor(2) as pool:  # more at once starve each other on a small CI box
        started = {
            encoding: (
                pool.submit(collector, tmp, broker, f"spans-{encoding}",
                            "--kafka.producer.encoding", encoding),
                pool.submit(ingester, tmp, broker, f"spans-{encoding}",
                            "--kafka.consumer.encoding", encoding),
            )
            for encoding in ENCODINGS
        }  # fmt: skip
        servers = {e: (c.result(), i.result()) for e, (c, i) in started.items()}
    yield servers
    for coll, ing in servers.values():
        assert coll.stop() == 0, coll.log()
        assert ing.stop() == 0, ing.log()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_spans_flow_from_an_otlp_client_through_kafka_into_storage(
    pairs: dict[str, tuple[Server, Server]], reference: Server, encoding: str
) -> None:
    coll, ing = pairs[encoding]
    sent = traces(0xE0 + ENCODINGS.index(encoding), 100)
    send_all(coll, sent)  # every request answered 200 only once Kafka acknowledged it
    send_otlp_http(coll, logical_trace(LOGICAL))
    assert_exactly_as_sent(wait_stored([ing], sent), sent)
    # The same trace reads back identically with and without Kafka in between.
    assert normalized(fetch(ing, LOGICAL.hex())) == normalized(fetch(reference, LOGICAL.hex()))
    assert metric(ing, "tracemesh_ingester_spans_total") == len(sent) + 2
    assert metric(ing, "tracemesh_ingester_poison_messages_total") == 0
    assert metric(ing, "tracemesh_ingester_commits_total") >= 1
    assert metric(coll, "tracemesh_spans_written_total") == len(sent) + 2


def test_the_collector_writes_what_jaegers_ingester_reads(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    """protobuf: one api_v2 Span per message, process embedded, keyed by the trace id string."""
    broker.create_topic("jaeger-wire", 2)
    coll = collector(tmp_path, broker, "jaeger-wire")
    try:
        sent = traces(0xD0, 5, spans_per_trace=2)
        send_all(coll, sent)
    finally:
        assert coll.stop() == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wire-reader",
                         "auto.offset.reset": "earliest", "log_level": 0})  # fmt: skip
    consumer.subscribe(["jaeger-wire"])
    messages = []
    deadline = time.monotonic() + 30
    while len(messages) < len(sent) and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(100, 0.5) if m.error() is None]
    consumer.close()
    assert len(messages) == len(sent)
    partitions: dict[bytes, set[int | None]] = {}
    for message in messages:
        value, key = message.value(), message.key()
        assert value is not None and key is not None
        (group,) = decode(value, "protobuf").batch.groups
        (row,) = group.rows
        assert key == jaeger_key(row.trace_id)
        assert group.resource.attributes["service.name"] == "shop"
        partitions.setdefault(key, set()).add(message.partition())
    assert all(len(p) == 1 for p in partitions.values())  # a trace stays in one partition


def test_two_ingesters_split_the_partitions_and_each_trace_stays_whole(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    broker.create_topic("split", 4)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(collector, tmp_path, broker, "split")] + [
            pool.submit(ingester, tmp_path, broker, "split", group="split") for _ in range(2)
        ]
        coll, first, second = (f.result() for f in futures)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the group settles: 2 partitions each
            owned = [metric(s, "tracemesh_ingester_assigned_partitions") for s in (first, second)]
            if owned == [2, 2]:
                break
            time.sleep(0.2)
        assert owned == [2, 2]
        sent = traces(0xC0, 200)
        send_all(coll, sent)
        found = wait_stored([first, second], sent)
        assert_exactly_as_sent(found, sent)
        counts = [metric(s, "tracemesh_ingester_spans_total") for s in (first, second)]
        assert sum(counts) == len(sent) and all(counts)  # both worked, nothing twice
        with httpx.Client() as client:
            for trace_id in {s.trace_id for s in sent}:
                holders = [
                    len(r.json()["data"][0]["spans"])
                    for r in (client.get(f"{s.query}/api/traces/{trace_id.hex()}")
                              for s in (first, second))
                    if r.status_code == 200
                ]  # fmt: skip
                assert holders == [3], "a trace must be stored whole by one ingester"
    finally:
        for srv in (coll, first, second):
            assert srv.stop() == 0, srv.log()


POISON = [b"\xff\xff\xff", b"{", b"\x0a\x05abc", b"", b"\x12\x03\x01\x02\x03", b"\x0a\xff\xff\xff"]


def test_poison_messages_are_counted_and_skipped_and_never_block_the_partition(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    broker.create_topic("poison", 1)  # one partition: poison sits between good messages
    sent = traces(0xB0, 30, spans_per_trace=2)
    good = encode(batch_from_spans(sent), "protobuf")
    producer = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 0})
    undecodable = 0
    for i, (key, value) in enumerate(good):
        producer.produce("poison", value, key)
        bad = POISON[i % len(POISON)]
        producer.produce("poison", bad, b"junk")
        try:
            decode(bad, "protobuf")
        except DecodeError:
            undecodable += 1
    assert producer.flush(30) == 0
    ing = ingester(tmp_path, broker, "poison")
    try:
        assert_exactly_as_sent(wait_stored([ing], sent), sent)
        deadline = time.monotonic() + 20
        while metric(ing, "tracemesh_ingester_messages_total") < 2 * len(good):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert metric(ing, "tracemesh_ingester_poison_messages_total") == undecodable > 0
        rejected = metric(ing, "tracemesh_ingester_spans_rejected_total")
        assert undecodable + rejected >= len(good)  # every junk message was refused somehow
        assert metric(ing, "tracemesh_ingester_spans_total") == len(sent)
        deadline = time.monotonic() + 20  # the offsets moved past the poison: no lag left
        while metric(ing, "tracemesh_ingester_consumer_lag") or not _has_lag_sample(ing):
            assert time.monotonic() < deadline, "consumer lag never reached 0"
            time.sleep(0.5)
        assert httpx.get(ing.admin + "/health").status_code == 200
    finally:
        assert ing.stop() == 0, ing.log()


def _has_lag_sample(srv: Server) -> bool:
    return "tracemesh_ingester_consumer_lag{" in httpx.get(srv.admin + "/metrics").text


def test_the_kafka_store_cannot_be_queried_and_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="write-only"):
        Process(Config(storage="kafka"), "all-in-one")
    with pytest.raises(ValueError, match="encoding"):
        make_storage(Config(storage="kafka", kafka_producer_encoding="avro"))
    with pytest.raises(ValueError, match="compression"):
        make_storage(Config(storage="kafka", kafka_producer_compression="brotli"))
    with pytest.raises(ValueError, match="encoding"):
        ingester_config(Config(kafka_consumer_encoding="thrift"))
