"""The bounded queue between receivers and storage: receivers submit batches, one task writes them.

The queue is bounded three ways: in spans, in bytes (the spans' OTLP bytes plus the rows' own
overhead) and in time: it refuses when its oldest batch has waited `max_wait` seconds, or when
what is queued would take longer than that to write at the rate storage has shown while busy.
When a batch does not fit, `submit` refuses at once with `QueueFullError` and the receiver tells
the client to retry later (HTTP 503, gRPC UNAVAILABLE): a span is either refused or acknowledged,
an acknowledged span waits in memory seconds rather than minutes, and every one is written or,
only after bounded retries fail, counted and logged as lost.
With `confirm=True` (storage that is the durable hand-off: Kafka, the disk store) `submit` also
returns a future that resolves once the batch is written, or fails with `StorageError`: receivers
await it and acknowledge the client only then.
All methods must be called from the event loop the pipeline was started in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import NamedTuple

from prometheus_client import Counter

from tracemesh.collector.admission import admit
from tracemesh.model.batch import SpanBatch
from tracemesh.runtime.metrics import Metrics
from tracemesh.runtime.ratelog import RateLimitedLog
from tracemesh.runtime.tasks import TaskOwner
from tracemesh.storage.api import SpanWriter, StorageError

log = logging.getLogger("tracemesh.pipeline")
ROW_OVERHEAD = 200  # bytes a queued span costs beyond its OTLP bytes (row tuple, ids, name)
RATE_WEIGHT = 0.3  # weight of the newest write in the storage rate's moving average
MEASURED_WRITE = 1000  # a write this large measures storage's rate even with nothing queued


class _Queued(NamedTuple):
    batch: SpanBatch
    spans: int
    size: int  # bytes, as counted against `queue_bytes`
    since: float  # time.monotonic() when it was queued


def batch_bytes(batch: SpanBatch) -> int:
    """What `batch` holds in memory, about: its spans' OTLP bytes plus a row's overhead each."""
    total = 0
    for group in batch.groups:
        rows = group.rows
        total += sum(len(row.raw) for row in rows) + ROW_OVERHEAD * len(rows)
    return total


class QueueFullError(Exception):
    """The queue has no room for the batch now; the client should retry later."""


class PipelineClosedError(Exception):
    """The pipeline is stopping and takes no more spans; the client should retry elsewhere."""


class Pipeline:
    """A span-bounded FIFO of `SpanBatch` drained by one consumer task into a `SpanWriter`.

    The consumer merges queued batches into writes of up to `batch_spans` spans (no rows are
    copied: groups are concatenated). When fewer are queued it waits up to `flush_interval` for
    more, unless `flush()` or `stop()` asks for everything now. A failed write (StorageError) is
    retried with exponential backoff, `retry_attempts` times in all, then its spans are logged
    and counted as lost; the consumer carries on with the next batch.
    """

    def __init__(
        self,
        writer: SpanWriter,
        metrics: Metrics,
        *,
        storage_name: str,
        queue_spans: int = 200_000,
        queue_bytes: int = 256 * 1024 * 1024,
        max_wait: float = 0.0,
        batch_spans: int = 10_000,
        flush_interval: float = 0.05,
        retry_attempts: int = 8,
        retry_backoff: float = 0.1,
        retry_backoff_max: float = 5.0,
        confirm: bool = False,
    ) -> None:
        if queue_spans < 1 or batch_spans < 1 or queue_bytes < 1:
            raise ValueError("queue_spans, queue_bytes and batch_spans must be positive")
        if max_wait < 0:
            raise ValueError("max_wait must be >= 0 (0: no time bound)")
        self._writer = writer
        self._metrics = metrics
        self._storage_name = storage_name
        self._queue_spans = queue_spans
        self._queue_bytes = queue_bytes
        self._measured = False  # _rate is a measurement, not the start-up assumption
        self._max_wait = max_wait
        # spans/s storage took while busy; 0 until measured (then only the oldest batch's age
        # bounds the time, so a fast store never refuses on a guess)
        self._rate = 0.0
        self._refused = False  # a batch was refused since the current write began
        self._batch_spans = batch_spans
        self._flush_interval = flush_interval
        self._retry_attempts = max(1, retry_attempts)
        self._retry_backoff = retry_backoff
        self._retry_backoff_max = retry_backoff_max

        self._queue: deque[_Queued] = deque()
        self._queued = 0  # spans in _queue
        self._queued_bytes = 0
        self._submitted = 0  # batches ever enqueued
        self._finished = 0  # batches written or given up, in FIFO order
        self._inflight = 0  # spans taken off the queue and being written
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._confirm = confirm
        self._confirm_waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._tasks = TaskOwner()
        self._consumer: asyncio.Task[None] | None = None
        self._closing = False
        self._failing = False  # the last write attempt failed
        self.spans_lost = 0
        self._log = RateLimitedLog(log)

        # Metric children looked up once: `.labels()` costs more than the increment itself.
        self._received: dict[tuple[str, str], Counter] = {}
        self._dropped: dict[tuple[str, str], Counter] = {}
        self._written = metrics.spans_written.labels(storage_name)
        self._write_failures = metrics.write_failures.labels(storage_name)
        metrics.queue_capacity.set(queue_spans)
        metrics.queue_length.set(0)

    # ---- receiver side -------------------------------------------------------------------------

    def submit(self, batch: SpanBatch, receiver: str, fmt: str) -> asyncio.Future[None] | None:
        """Enqueue `batch` (the pipeline owns it from now on) or raise without blocking. With
        `confirm`, the returned future tells when the batch is written (see the module doc).

        A batch larger than the whole queue is admitted into an empty queue, so that no request
        is refused forever; otherwise the bound is strict.
        """
        if self._closing or self._consumer is None or self._consumer.done():
            raise PipelineClosedError("the pipeline is not running")
        batch = self._admit(batch, receiver, fmt)
        count = batch.span_count
        if count == 0:
            return None
        queued = self._queued
        size = batch_bytes(batch)
        now = time.monotonic()
        full = self._full(count, size, now) if queued else None
        if full is not None:
            self._refused = True
            self._counter(self._dropped, self._metrics.spans_dropped, receiver, fmt).inc(count)
            raise QueueFullError(f"queue full ({full}); retry later")
        self._queue.append(_Queued(batch, count, size, now))
        self._queued = queued + count
        self._queued_bytes += size
        self._submitted += 1
        self._metrics.queue_length.set(self._queued)
        self._counter(self._received, self._metrics.spans_received, receiver, fmt).inc(count)
        # Wake the consumer only when it has something new to do: start lingering, or write now.
        if (queued == 0 or self._queued >= self._batch_spans) and self._wakeup is not None:
            self._wakeup.set()
        if not self._confirm:
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)  # a UDP receiver never awaits it
        self._confirm_waiters.append((self._submitted, future))
        return future

    def _admit(self, batch: SpanBatch, receiver: str, fmt: str) -> SpanBatch:
        """The ingest boundary (`collector.admission`), counted and logged per receiver."""
        admitted = admit(batch)
        if batch.repaired:
            self._metrics.spans_corrected.labels(receiver, fmt, "invalid_utf8").inc(batch.repaired)
        for correction, count in admitted.corrected.items():
            self._metrics.spans_corrected.labels(receiver, fmt, correction).inc(count)
        for reason, count in admitted.refused.items():
            self._metrics.spans_rejected.labels(receiver, fmt, reason).inc(count)
            self._log.warning(f"{receiver}:{fmt}:{reason}",
                              "%s (%s): %d span(s) refused (%s), e.g. %s",
                              receiver, fmt, count, reason, admitted.example)  # fmt: skip
        return admitted.batch

    def _full(self, count: int, size: int, now: float) -> str | None:
        """Why a batch of `count` spans and `size` bytes does not fit now, or None."""
        queued = self._queued
        if queued + count > self._queue_spans:
            return f"{queued} of {self._queue_spans} spans queued"
        if self._queued_bytes + size > self._queue_bytes:
            return f"{self._queued_bytes} of {self._queue_bytes} bytes queued"
        if self._max_wait > 0:
            waited = now - self._queue[0].since
            if waited > self._max_wait:
                return f"the oldest batch has waited {waited:.1f}s, over {self._max_wait:.1f}s"
            backlog = queued + self._inflight + count
            if self._rate > 0 and backlog > self._rate * self._max_wait:
                return (f"{backlog} spans would take {backlog / self._rate:.1f}s to write at "
                        f"{self._rate:.0f} spans/s, over {self._max_wait:.1f}s")  # fmt: skip
        return None

    @property
    def queued_spans(self) -> int:
        return self._queued

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def write_rate(self) -> float:
        """Spans per second storage took while busy (0 until measured)."""
        return self._rate

    @property
    def healthy(self) -> bool:
        """Running, consumer alive and the last write succeeded."""
        return (
            self._consumer is not None
            and not self._consumer.done()
            and not self._closing
            and not self._failing
        )

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._consumer is not None:
            raise RuntimeError("pipeline already started")
        self._wakeup = asyncio.Event()
        self._consumer = self._tasks.spawn(f"pipeline:{self._storage_name}", self._run())

    async def flush(self) -> None:
        """Return once every batch submitted before this call is written (or given up)."""
        target = self._submitted
        if self._finished >= target:
            return
        if self._consumer is None or self._consumer.done():
            raise RuntimeError("pipeline is not running; nothing will drain the queue")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((target, future))
        self._wake()
        await future

    async def stop(self, timeout: float = 10.0) -> None:
        """Refuse new spans, write everything queued, then return. Spans still queued when
        `timeout` runs out are logged and counted as lost."""
        self._closing = True
        consumer = self._consumer
        if consumer is None:
            return
        self._wake()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(consumer)
        except TimeoutError:
            await self._tasks.cancel_all()
            if self._queued or self._inflight:
                self._lose(self._queued + self._inflight, f"stop timed out after {timeout}s")
                self._queue.clear()
                self._inflight = 0
                self._queued = 0
                self._queued_bytes = 0
                self._metrics.queue_length.set(0)
        finally:
            self._finished = self._submitted
            self._release_flush_waiters()
            self._release_confirmed(StorageError("the collector stopped before writing"))

    # ---- consumer ------------------------------------------------------------------------------

    async def _run(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                wakeup.clear()
                await wakeup.wait()
                continue
            await self._linger(wakeup)
            batch, batches = self._take()
            self._inflight = batch.span_count
            began = time.monotonic()
            self._refused = False
            error = await self._write(batch)
            if error is None and (self._queue or self._refused or self._inflight >= MEASURED_WRITE):
                # storage was the bottleneck for this write: its rate is a capacity sample
                sample = self._inflight / max(time.monotonic() - began, 1e-6)
                measured = self._measured
                self._measured = True
                self._rate = sample if not measured else (
                    RATE_WEIGHT * sample + (1 - RATE_WEIGHT) * self._rate
                )  # fmt: skip
            self._inflight = 0
            self._finished += batches
            self._release_flush_waiters()
            self._release_confirmed(error)

    async def _linger(self, wakeup: asyncio.Event) -> None:
        """Wait up to flush_interval for a full batch, so storage gets fewer, larger writes."""
        deadline = time.monotonic() + self._flush_interval
        while self._queued < self._batch_spans and not self._closing and not self._flush_waiters:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await wakeup.wait()

    def _take(self) -> tuple[SpanBatch, int]:
        """Pop batches up to batch_spans (at least one) and merge them without copying rows.
        With a time bound, a write is also at most half of max_wait's worth at storage's rate:
        the spans at its end wait for all of it."""
        queue = self._queue
        limit = self._batch_spans
        if self._max_wait > 0 and self._rate > 0:
            limit = max(MEASURED_WRITE, min(limit, int(self._rate * self._max_wait / 2)))
        first, total, size, _ = queue.popleft()
        batches = 1
        if queue and total + queue[0].spans <= limit:
            groups = list(first.groups)
            while queue and total + queue[0].spans <= limit:
                item = queue.popleft()
                groups.extend(item.batch.groups)
                total += item.spans
                size += item.size
                batches += 1
            first = SpanBatch(groups)
        self._queued -= total
        self._queued_bytes -= size
        self._metrics.queue_length.set(self._queued)
        return first, batches

    async def _write(self, batch: SpanBatch) -> StorageError | None:
        """None once written; else the error, after the spans were given up."""
        count = batch.span_count
        delay = self._retry_backoff
        for attempt in range(1, self._retry_attempts + 1):
            try:
                await self._writer.write(batch)
            except StorageError as exc:
                self._failing = True
                self._write_failures.inc()
                if attempt == self._retry_attempts:
                    self._lose(count, f"storage failed {attempt} times, last: {exc!r}")
                    return exc
                log.warning(
                    "writing %d spans to %s failed (attempt %d of %d), retrying in %.2fs: %r",
                    count, self._storage_name, attempt, self._retry_attempts, delay, exc,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_backoff_max)
            except Exception:
                # A bug, not an outage: retrying would fail the same way. Keep the consumer alive.
                self._failing = True
                self._write_failures.inc()
                log.exception("writer %s raised unexpectedly", self._storage_name)
                self._lose(count, "writer raised an unexpected exception")
                return StorageError("the storage writer failed unexpectedly")
            else:
                self._failing = False
                self._written.inc(count)
                return None
        return None  # unreachable: the last attempt returns

    # ---- helpers -------------------------------------------------------------------------------

    def _lose(self, count: int, why: str) -> None:
        if self._confirm:  # the clients hear of it and resend: refused, not lost
            log.error("%d spans not written to %s, their clients are told to retry: %s",
                      count, self._storage_name, why)  # fmt: skip
            return
        self.spans_lost += count
        self._metrics.spans_lost.labels(self._storage_name).inc(count)
        log.error(
            "LOST %d acknowledged spans bound for %s: %s (%d lost so far)",
            count, self._storage_name, why, self.spans_lost,
        )  # fmt: skip

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _release_flush_waiters(self) -> None:
        if not self._flush_waiters:
            return
        done = self._finished
        pending = []
        for target, future in self._flush_waiters:
            if target <= done:
                if not future.done():
                    future.set_result(None)
            else:
                pending.append((target, future))
        self._flush_waiters = pending

    def _release_confirmed(self, error: StorageError | None) -> None:
        waiters, done = self._confirm_waiters, self._finished
        while waiters and waiters[0][0] <= done:
            future = waiters.popleft()[1]
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    @staticmethod
    def _counter(
        cache: dict[tuple[str, str], Counter], family: Counter, receiver: str, fmt: str
    ) -> Counter:
        child = cache.get((receiver, fmt))
        if child is None:
            child = cache[(receiver, fmt)] = family.labels(receiver, fmt)
        return child


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a failure seen, so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()
