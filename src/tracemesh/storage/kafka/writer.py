"""The Kafka writer: a span batch becomes messages on the topic, acknowledged by every replica.

`write()` returns only once Kafka acknowledged every message of the batch (acks=all, idempotent
producer), so what the pipeline calls written is on the brokers. A failure anywhere (a delivery
timeout while the brokers are away, a full client queue for longer than the timeout, a fatal
producer error) raises `StorageError`: the caller retries the whole batch, and a span delivered
twice is harmless (the ingester's stores drop exact duplicates on read).

librdkafka delivers acknowledgements through `poll()`, which a dedicated thread calls; a batch's
callbacks count down under a lock and the last one wakes the writing coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tracemesh.codecs.kafka_spans import encode
from tracemesh.model.batch import SpanBatch
from tracemesh.storage.api import StorageError
from tracemesh.storage.kafka.config import KafkaProducerConfig

log = logging.getLogger("tracemesh.kafka")


class _Delivery:
    """One batch's outstanding acknowledgements; called on the poll thread."""

    __slots__ = ("error", "future", "lock", "loop", "remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.remaining = count
        self.error: KafkaError | None = None
        self.lock = threading.Lock()

    def __call__(self, error: KafkaError | None, _message: Message) -> None:
        with self.lock:
            if error is not None and self.error is None:
                self.error = error
            self.remaining -= 1
            done = self.remaining == 0
        if done:
            self._wake()

    def abandon(self, count: int) -> None:
        """`count` messages were never handed to the client: stop waiting for them."""
        with self.lock:
            self.remaining -= count
            done = self.remaining == 0
        if done:
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class KafkaWriter:
    def __init__(self, config: KafkaProducerConfig) -> None:
        self.config = config
        self._producer: Producer | None = None
        self._fatal: KafkaError | None = None
        self._poller: threading.Thread | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()  # guards swapping the producer under the poll thread
        self.messages_written = 0

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._producer = self._new_producer()
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _new_producer(self) -> Producer:
        conf = self.config.client_config()
        conf["error_cb"] = self._on_error
        try:
            return Producer(conf)
        except KafkaException as exc:
            raise StorageError(f"cannot create the Kafka producer: {exc}") from None

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
            log.error("Kafka producer failed fatally, it will be recreated: %s", error)
        else:
            log.warning("Kafka producer: %s", error)

    def _poll(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                producer = self._producer
            if producer is None:
                return
            producer.poll(0.1)

    async def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout`), then stop."""
        producer = self._producer
        if producer is not None:
            left = await asyncio.to_thread(producer.flush, timeout)
            if left:
                log.error("closing the Kafka producer with %d messages undelivered", left)
        self._closed.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, 5.0)
        self._producer = None

    async def check(self) -> bool:
        """The brokers answer a metadata request for the topic."""
        producer = self._producer
        if producer is None:
            return False
        try:
            await asyncio.to_thread(producer.list_topics, self.config.topic, 2.0)
        except KafkaException:
            return False
        return True

    # ---- writing -------------------------------------------------------------------------------

    async def write(self, batch: SpanBatch) -> None:
        messages = encode(batch, self.config.encoding)
        if not messages:
            return
        producer = self._usable_producer()
        loop = asyncio.get_running_loop()
        delivery = _Delivery(loop, len(messages))
        topic = self.config.topic
        deadline = time.monotonic() + self.config.timeout
        for index, (key, value) in enumerate(messages):
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=delivery)
                    break
                except BufferError:  # the in-flight bound: wait for acknowledgements
                    if time.monotonic() > deadline:
                        delivery.abandon(len(messages) - index)
                        raise StorageError(
                            f"Kafka producer queue stayed full for {self.config.timeout}s"
                        ) from None
                    await asyncio.sleep(0.005)
                except KafkaException as exc:
                    delivery.abandon(len(messages) - index)
                    raise StorageError(f"Kafka refused a message: {exc}") from None
        await delivery.future
        if delivery.error is not None:
            raise StorageError(f"Kafka did not acknowledge every message: {delivery.error}")
        self.messages_written += len(messages)

    def _usable_producer(self) -> Producer:
        if self._producer is None:
            raise StorageError("the Kafka writer is not running")
        if self._fatal is not None:  # e.g. an idempotence sequence gap: a new producer id fixes it
            with self._lock:
                old, self._producer = self._producer, self._new_producer()
                self._fatal = None
            old.purge()  # its messages fail with _PURGE_QUEUE: their writes raise and are retried
            old.poll(0)  # serve those callbacks: nothing else polls the old producer now
        return self._producer
