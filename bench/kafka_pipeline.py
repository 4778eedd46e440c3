"""Streaming deployment benchmark: OTLP client -> collector -> Kafka -> ingester(s) -> memory store.

A real Kafka broker (KRaft, tests/servers/kafka.py) and real `tracemesh collector --storage kafka`
and `tracemesh ingester` processes on loopback. Requests are bench/ingest.py's: 1000 spans each
(100 traces x 10 spans, 10 attributes and 1 event a span), sent over OTLP/gRPC by 4 threads.
Each run uses a fresh topic with 4 partitions and reports:
  produce    spans/s the collector got acknowledged by Kafka (client wall time: every request
             is answered only after Kafka's acknowledgement)
  e2e        spans/s from the first request sent to the last span stored by the ingester(s),
             with ingesters running while the load is sent
  drain      spans/s a fresh group of as many ingesters stores the run's messages, copied by
             the bench into a new topic at full speed once the group settled (ingest alone)
  cpu/span   CPU time of the collector and of the ingesters per span (µs), from psutil
Run for 1 and 2 ingesters; medians of --runs. Usage:
  python bench/kafka_pipeline.py [--spans 100000] [--runs 3] [--encoding protobuf]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import psutil
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from tests.e2e.server import Server, start  # noqa: E402
from tests.integration.kafka.harness import metric  # noqa: E402
from tests.servers.kafka import KafkaBroker  # noqa: E402

from ingest import EXPORT, make_request  # noqa: E402

PARTITIONS = 4
SENDERS = 4


def cpu(srv: Server) -> float:
    times = psutil.Process(srv.proc.pid).cpu_times()
    return float(times.user + times.system)


def ingesters(tmp: Path, broker: KafkaBroker, topic: str, group: str, count: int,
              encoding: str) -> list[Server]:  # fmt: skip
    out = []
    for i in range(count):
        folder = tmp / f"{group}-{i}"
        folder.mkdir()
        out.append(start(folder, "--kafka.consumer.brokers", broker.bootstrap,
                         "--kafka.consumer.topic", topic, "--kafka.consumer.group-id", group,
                         "--kafka.consumer.encoding", encoding, "--memory.max-traces", "0",
                         command="ingester"))  # fmt: skip
    return out


def wait_ingested(servers: list[Server], spans: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while sum(metric(s, "tracemesh_ingester_spans_total") for s in servers) < spans:
        if time.monotonic() > deadline:
            raise RuntimeError("ingesters did not store every span in time")
        time.sleep(0.05)
    return time.monotonic()


def send(address: str, payloads: list[bytes]) -> None:
    """`SENDERS` threads, each with its own channel, share the payloads."""

    def worker(part: list[bytes]) -> None:
        with grpc.insecure_channel(address) as channel:
            export = channel.unary_unary(EXPORT)
            for body in part:
                export(body, timeout=60)

    threads = [threading.Thread(target=worker, args=(payloads[i::SENDERS],))
               for i in range(SENDERS)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def read_all(broker: KafkaBroker, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every message of the topic, keys kept."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"copy-{topic}",
                         "auto.offset.reset": "earliest", "log_level": 0})  # fmt: skip
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    total = sum(consumer.get_watermark_offsets(p, 10)[1] for p in parts)
    consumer.assign(parts)
    out: list[tuple[bytes | None, bytes | None]] = []
    while len(out) < total:
        out += [(m.key(), m.value()) for m in consumer.consume(10_000, 1.0) if not m.error()]
    consumer.close()
    return out


def drain(tmp: Path, broker: KafkaBroker, topic: str, count: int, encoding: str,
          spans: int) -> float:  # fmt: skip
    """Ingest rate alone: `count` fresh ingesters settle on an empty topic, then the bench copies
    the run's messages into it at full speed (a C client, raw bytes) and times the storing."""
    messages = read_all(broker, topic)
    target = f"{topic}-drain"
    broker.create_topic(target, PARTITIONS)
    drainers = ingesters(tmp, broker, target, f"drain-{topic}", count, encoding)
    try:
        deadline = time.monotonic() + 60
        while (
            sum(metric(s, "tracemesh_ingester_assigned_partitions") for s in drainers) < PARTITIONS
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the drain group never settled")
            time.sleep(0.1)
        time.sleep(1)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                             "log_level": 0})  # fmt: skip
        t0 = time.monotonic()
        for key, value in messages:
            while True:
                try:
                    producer.produce(target, value, key)
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush(60)
        return spans / (wait_ingested(drainers, spans) - t0)
    finally:
        for srv in drainers:
            srv.stop()


def run_once(tmp: Path, broker: KafkaBroker, run: int, count: int, payloads: list[bytes],
             encoding: str) -> dict[str, float]:  # fmt: skip
    spans = 1000 * len(payloads)
    topic = f"bench-{count}-{run}"
    broker.create_topic(topic, PARTITIONS)
    folder = tmp / f"collector-{topic}"
    folder.mkdir()
    coll = start(folder, "--storage", "kafka", "--kafka.producer.brokers", broker.bootstrap,
                 "--kafka.producer.topic", topic, "--kafka.producer.encoding", encoding,
                 command="collector")  # fmt: skip
    live = ingesters(tmp, broker, topic, f"live-{topic}", count, encoding)
    try:
        time.sleep(2)  # the group settles before the clock starts
        c0, i0 = cpu(coll), sum(cpu(s) for s in live)
        t0 = time.monotonic()
        send(coll.otlp_grpc, payloads)
        produced = time.monotonic()
        stored = wait_ingested(live, spans)
        c1, i1 = cpu(coll), sum(cpu(s) for s in live)
    finally:
        coll.stop()
        for srv in live:
            srv.stop()
    drained = drain(tmp, broker, topic, count, encoding, spans)
    return {
        "produce": spans / (produced - t0),
        "e2e": spans / (stored - t0),
        "drain": drained,
        "collector_cpu_us": (c1 - c0) / spans * 1e6,
        "ingester_cpu_us": (i1 - i0) / spans * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--encoding", default="protobuf")
    parser.add_argument("--ingesters", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    payloads = [make_request(seed)[0] for seed in range(args.spans // 1000)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "broker").mkdir()
        broker = KafkaBroker(tmp / "broker", partitions=PARTITIONS)
        broker.start()
        try:
            print(f"{args.spans} spans a run, {args.encoding}, {PARTITIONS} partitions, "
                  f"medians of {args.runs}")  # fmt: skip
            for count in args.ingesters:
                results = [run_once(tmp, broker, run, count, payloads, args.encoding)
                           for run in range(args.runs)]  # fmt: skip
                med = {k: statistics.median(r[k] for r in results) for k in results[0]}
                print(f"ingesters={count}: produce {med['produce']:,.0f} spans/s, "
                      f"e2e {med['e2e']:,.0f} spans/s, drain {med['drain']:,.0f} spans/s, "
                      f"cpu/span collector {med['collector_cpu_us']:.1f} µs, "
                      f"ingesters {med['ingester_cpu_us']:.1f} µs  "
                      f"(runs: e2e {[round(r['e2e']) for r in results]}, "
                      f"drain {[round(r['drain']) for r in results]})", flush=True)  # fmt: skip
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
