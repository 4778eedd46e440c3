"""`Ingester`: consume span messages in a consumer group, store them, then commit their offsets.

One loop: take up to `batch_messages` messages, decode them into one `SpanBatch`, write it to
storage (retrying a `StorageError` with backoff for as long as it takes), and only then commit
the next offsets. A crash anywhere before the commit redelivers the batch to whichever ingester
owns the partition next: at least once, and a duplicate is harmless (stores drop exact
duplicates on read). A message that does not decode is poison: counted, logged and skipped, so it
never blocks its partition. Several ingesters in one group split the topic's partitions.

The Kafka client's calls block, so they run in worker threads; decoding and writing run on the
event loop, one batch at a time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time

import orjson
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from tracemesh.codecs import DecodeError
from tracemesh.codecs.kafka_spans import decode
from tracemesh.collector.admission import admit
from tracemesh.ingester.config import IngesterConfig
from tracemesh.ingester.metrics import IngesterMetrics
from tracemesh.model.batch import ResourceGroup, SpanBatch
from tracemesh.runtime.metrics import Metrics
from tracemesh.runtime.tasks import TaskOwner
from tracemesh.storage.api import SpanWriter, StorageError

log = logging.getLogger("tracemesh.ingester")

POLL_SECONDS = 0.2  # how long one consume call waits for messages; bounds the stop delay
RATE_WINDOW = 10.0  # seconds the spans-per-second gauge averages over


class Ingester:
    def __init__(
        self,
        config: IngesterConfig,
        writer: SpanWriter,
        metrics: Metrics,
        *,
        storage_name: str,
        retry_backoff: float = 0.1,
        retry_backoff_max: float = 5.0,
    ) -> None:
        self.config = config
        self._writer = writer
        self._storage_name = storage_name
        self._retry_backoff = retry_backoff
        self._retry_backoff_max = retry_backoff_max
        self._consumer: Consumer | None = None
        self._loop: asyncio.Task[None] | None = None
        self._tasks = TaskOwner()
        self._stopping = asyncio.Event()
        self._failing = False  # the last storage write failed
        self._rate: collections.deque[tuple[float, int]] = collections.deque()

        self.metrics = IngesterMetrics(metrics.registry)
        topic = config.topic
        self._messages = self.metrics.messages.labels(topic)
        self._poison = self.metrics.poison.labels(topic)
        self._spans = self.metrics.spans.labels(topic)
        self._rejected = self.metrics.spans_rejected.labels(topic)
        self._commits = self.metrics.commits.labels(topic)
        self._commit_failures = self.metrics.commit_failures.labels(topic)
        self._written = metrics.spans_written.labels(storage_name)
        self._write_failures = metrics.write_failures.labels(storage_name)
        self._lost = metrics.spans_lost.labels(storage_name)
        self.spans_written = 0  # since start, duplicates included

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        conf = self.config.client_config()
        conf["stats_cb"] = self._on_stats
        conf["error_cb"] = lambda error: log.warning("Kafka consumer: %s", error)
        try:
            consumer = Consumer(conf)
            consumer.subscribe(
                [self.config.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
            )
        except KafkaException as exc:
            raise OSError(f"cannot start the Kafka consumer: {exc}") from None
        self._consumer = consumer
        self._loop = self._tasks.spawn("ingester", self._run(consumer))
        self._tasks.spawn("ingester-rate", self._measure_rate())
        log.info("ingesting topic %s (group %s, %s) from %s into %s", self.config.topic,
                 self.config.group_id, self.config.encoding, self.config.brokers,
                 self._storage_name)  # fmt: skip

    @property
    def healthy(self) -> bool:
        return self._loop is not None and not self._loop.done() and not self._failing

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand (its write and commit) within `timeout`, then leave the
        group. A batch cut off by the timeout is not committed: it is redelivered."""
        self._stopping.set()
        if self._loop is not None:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._loop)
            except TimeoutError:
                log.warning("ingester batch unfinished after %ss: left uncommitted", timeout)
        await self._tasks.cancel_all()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await asyncio.to_thread(consumer.close)

    # ---- the loop ------------------------------------------------------------------------------

    async def _run(self, consumer: Consumer) -> None:
        take = self.config.batch_messages
        while not self._stopping.is_set():
            messages = await asyncio.to_thread(consumer.consume, take, POLL_SECONDS)
            if not messages:
                continue
            batch, offsets = self._decode(messages)
            if batch.span_count and not await self._store(batch):
                return  # stopping during a storage outage: leave the batch uncommitted
            await self._commit(consumer, offsets)

    def _decode(self, messages: list[Message]) -> tuple[SpanBatch, list[TopicPartition]]:
        encoding = self.config.encoding
        groups: list[ResourceGroup] = []
        next_offsets: dict[tuple[str, int], int] = {}
        consumed = poison = rejected = 0
        for message in messages:
            error = message.error()
            if error is not None:
                log.warning("Kafka consumer: %s", error)
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            if topic is None or partition is None or offset is None:
                continue
            next_offsets[(topic, partition)] = offset + 1
            consumed += 1
            value = message.value()
            try:
                if not value:
                    raise DecodeError("empty message")
                decoded = decode(value, encoding)
            except DecodeError as exc:
                poison += 1
                if poison == 1:  # one line per batch: a flood of poison must not flood the log
                    log.warning("skipping undecodable message at %s[%d]@%d: %s", topic,
                                partition, offset, str(exc)[:300])  # fmt: skip
                continue
            groups.extend(decoded.batch.groups)
            rejected += decoded.rejected
        self._messages.inc(consumed)
        if poison:
            self._poison.inc(poison)
        if rejected:
            self._rejected.inc(rejected)
        # Spans written to Kafka by another producer never met a receiver's boundary: meet it here.
        admitted = admit(SpanBatch(groups))
        if admitted.refused:
            self._rejected.inc(sum(admitted.refused.values()))
            log.warning("refused %s span(s) by reason, e.g. %s", dict(admitted.refused),
                        admitted.example)  # fmt: skip
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        return admitted.batch, offsets

    async def _store(self, batch: SpanBatch) -> bool:
        """Write until it succeeds (True) or the ingester stops meanwhile (False)."""
        count = batch.span_count
        delay = self._retry_backoff
        while True:
            try:
                await self._writer.write(batch)
            except StorageError as exc:
                self._failing = True
                self._write_failures.inc()
                log.warning("writing %d spans to %s failed, retrying in %.1fs: %r", count,
                            self._storage_name, delay, exc)  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
                if self._stopping.is_set():
                    return False
                delay = min(delay * 2, self._retry_backoff_max)
                continue
            except Exception:
                # A bug, not an outage: retrying would fail forever and stall the partition.
                log.exception("writer %s raised unexpectedly; LOST %d spans", self._storage_name,
                              count)  # fmt: skip
                self._lost.inc(count)
                return True
            self._failing = False
            self._written.inc(count)
            self._spans.inc(count)
            self.spans_written += count
            return True

    async def _commit(self, consumer: Consumer, offsets: list[TopicPartition]) -> None:
        if not offsets:
            return
        try:
            await asyncio.to_thread(consumer.commit, offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Lost partitions or an unreachable coordinator: whoever reads them next starts at
            # the previous commit and stores this batch again, harmlessly.
            self._commit_failures.inc()
            log.warning("committing offsets failed (the batch will be redelivered): %s", exc)
        else:
            self._commits.inc()

    # ---- observing -----------------------------------------------------------------------------

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned partitions %s", sorted(p.partition for p in partitions))
        self.metrics.assigned_partitions.set(len(partitions))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked partitions %s", sorted(p.partition for p in partitions))
        self.metrics.assigned_partitions.set(0)
        self.metrics.lag.clear()

    def _on_stats(self, stats_json: str) -> None:
        """librdkafka's statistics (each second): consumer lag of the partitions we own."""
        try:
            stats = orjson.loads(stats_json)
            partitions = stats["topics"][self.config.topic]["partitions"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        self.metrics.lag.clear()
        for number, part in partitions.items():
            lag = part.get("consumer_lag", -1)
            if number != "-1" and part.get("fetch_state") == "active" and lag >= 0:
                self.metrics.lag.labels(self.config.topic, number).set(lag)

    async def _measure_rate(self) -> None:
        while True:
            now = time.monotonic()
            self._rate.append((now, self.spans_written))
            while now - self._rate[0][0] > RATE_WINDOW:
                self._rate.popleft()
            then, written = self._rate[0]
            if now > then:
                self.metrics.spans_per_second.set((self.spans_written - written) / (now - then))
            await asyncio.sleep(1.0)
