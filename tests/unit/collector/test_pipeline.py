"""The pipeline queues, merges and writes every accepted span, refuses when full, retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from tracemesh.collector.pipeline import (
    Pipeline,
    PipelineClosedError,
    QueueFullError,
    batch_bytes,
)
from tracemesh.model.batch import ResourceGroup, SpanBatch, SpanRow
from tracemesh.model.span import Resource, Scope
from tracemesh.runtime.metrics import Metrics
from tracemesh.storage.api import StorageError

_next_id = 0


def make_batch(spans: int, groups: int = 1) -> SpanBatch:
    """`spans` rows spread over `groups` resource groups, each with a unique span id."""
    global _next_id
    batch = SpanBatch()
    for g in range(groups):
        group = ResourceGroup(Resource({"service.name": f"svc{g}"}), Scope())
        for _ in range(spans // groups + (1 if g < spans % groups else 0)):
            _next_id += 1
            sid = _next_id.to_bytes(8, "big")
            group.rows.append(SpanRow(b"\1" * 16, sid, b"", "op", 1, 1, 2, 0, b"raw" + sid))
        batch.groups.append(group)
    return batch


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def span_ids(batch: SpanBatch) -> list[bytes]:
    return [row.span_id for group in batch.groups for row in group.rows]


class RecordingWriter:
    """Test double for the SpanWriter contract: records batches; can be paused or made to fail."""

    def __init__(self) -> None:
        self.batches: list[SpanBatch] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = 0
        self.error: Exception = StorageError("storage is down")

    async def write(self, batch: SpanBatch) -> None:
        await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise self.error
        self.batches.append(batch)

    @property
    def ids(self) -> list[bytes]:
        return [sid for batch in self.batches for sid in span_ids(batch)]


async def until(condition: Callable[[], object], timeout: float = 10) -> None:
    """Wait for `condition`, with a deadline: never a fixed sleep that a busy machine outlasts."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def run(
    test: Callable[[Pipeline, RecordingWriter, Metrics], Awaitable[None]], **options: float
) -> Metrics:
    """Run `test` against a started pipeline in a fresh event loop; stop it afterwards."""
    metrics = Metrics()

    async def main() -> None:
        writer = RecordingWriter()
        pipeline = Pipeline(writer, metrics, storage_name="rec", **options)  # type: ignore[arg-type]
        await pipeline.start()
        try:
            await test(pipeline, writer, metrics)
        finally:
            await pipeline.stop(timeout=2)

    asyncio.run(main())
    return metrics


def test_flush_writes_every_submitted_span_in_order_and_counts_it() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        sent = [make_batch(n, groups=2) for n in (3, 50, 1, 7)]
        for batch in sent:
            pipeline.submit(batch, "otlp_grpc", "proto")
        assert sample(metrics, "tracemesh_queue_length") == 61
        await pipeline.flush()
        assert writer.ids == [sid for batch in sent for sid in span_ids(batch)]
        assert sample(metrics, "tracemesh_queue_length") == 0
        assert sample(metrics, "tracemesh_spans_written_total", storage="rec") == 61
        assert pipeline.healthy

    metrics = run(test)
    labels = {"receiver": "otlp_grpc", "format": "proto"}
    assert sample(metrics, "tracemesh_spans_received_total", **labels) == 61
    assert sample(metrics, "tracemesh_queue_capacity") == 200_000


def test_batches_are_merged_up_to_batch_spans_without_copying_rows() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        sent = [make_batch(100) for _ in range(5)] + [make_batch(300)]
        for batch in sent:
            pipeline.submit(batch, "r", "f")
        await pipeline.flush()
        sizes = [b.span_count for b in writer.batches]
        assert sizes == [200, 200, 100, 300]  # a batch over the limit is written whole, alone
        assert writer.batches[0].groups[1].rows is sent[1].groups[0].rows
        assert writer.batches[3] is sent[5]

    run(test, batch_spans=250, flush_interval=0.0)


def test_a_small_batch_waits_at_most_flush_interval() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        began = loop_time()
        pipeline.submit(make_batch(5), "r", "f")
        await asyncio.sleep(0)  # the consumer wakes and starts lingering
        assert writer.batches == []  # still lingering for more spans
        await until(lambda: len(writer.ids) == 5)
        assert loop_time() - began >= 0.1  # it waited the whole flush interval, not longer

    run(test, flush_interval=0.1)


def test_a_full_batch_is_written_without_lingering() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        pipeline.submit(make_batch(40), "r", "f")
        pipeline.submit(make_batch(60), "r", "f")
        pipeline.submit(make_batch(10), "r", "f")
        await until(lambda: writer.batches)
        assert [b.span_count for b in writer.batches] == [100]  # the last 10 wait for more
        assert pipeline.queued_spans == 10

    run(test, batch_spans=100, flush_interval=30.0)


def test_flush_cuts_the_linger_short() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        pipeline.submit(make_batch(5), "r", "f")
        async with asyncio.timeout(1):
            await pipeline.flush()
        assert len(writer.ids) == 5

    run(test, flush_interval=30.0)


def test_flush_waits_only_for_what_was_submitted_before_it() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        await pipeline.flush()  # nothing queued: returns at once
        writer.gate.clear()
        pipeline.submit(make_batch(5), "r", "f")
        flush = asyncio.create_task(pipeline.flush())
        await asyncio.sleep(0.05)
        assert not flush.done()
        writer.gate.set()
        await flush
        assert len(writer.ids) == 5

    run(test)


def test_a_full_queue_refuses_without_blocking_and_counts_the_drop() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        writer.gate.clear()
        pipeline.submit(make_batch(60), "otlp_http", "json")
        await until(lambda: pipeline.queued_spans == 0)  # the consumer took it: blocked in write
        pipeline.submit(make_batch(60), "otlp_http", "json")
        pipeline.submit(make_batch(40), "otlp_http", "json")
        with pytest.raises(QueueFullError, match="queue full"):
            pipeline.submit(make_batch(1), "otlp_http", "json")
        assert pipeline.queued_spans == 100
        labels = {"receiver": "otlp_http", "format": "json"}
        assert sample(metrics, "tracemesh_spans_dropped_total", **labels) == 1
        writer.gate.set()
        await pipeline.flush()
        pipeline.submit(make_batch(1), "otlp_http", "json")  # room again
        await pipeline.flush()
        assert len(writer.ids) == 161

    run(test, queue_spans=100, batch_spans=1000, flush_interval=0.0)


def test_a_batch_larger_than_the_queue_fits_only_into_an_empty_queue() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        writer.gate.clear()
        pipeline.submit(make_batch(1), "r", "f")
        await until(lambda: pipeline.queued_spans == 0)  # the consumer took it: blocked in write
        pipeline.submit(make_batch(1), "r", "f")
        with pytest.raises(QueueFullError):
            pipeline.submit(make_batch(50), "r", "f")
        writer.gate.set()
        await pipeline.flush()
        pipeline.submit(make_batch(50), "r", "f")  # never refused forever
        await pipeline.flush()
        assert len(writer.ids) == 52

    run(test, queue_spans=10, flush_interval=0.0)


def test_empty_batches_are_ignored() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        pipeline.submit(SpanBatch(), "r", "f")
        pipeline.submit(make_batch(0), "r", "f")
        await pipeline.flush()
        assert writer.batches == []

    run(test)


def test_submit_is_refused_before_start_and_once_stop_began() -> None:
    async def main() -> None:
        writer = RecordingWriter()
        pipeline = Pipeline(writer, Metrics(), storage_name="rec")
        with pytest.raises(PipelineClosedError):
            pipeline.submit(make_batch(1), "r", "f")
        assert not pipeline.healthy
        await pipeline.start()
        assert pipeline.healthy
        await pipeline.stop()
        assert not pipeline.healthy
        with pytest.raises(PipelineClosedError):
            pipeline.submit(make_batch(1), "r", "f")
        await pipeline.stop()  # a second stop is harmless
        await pipeline.flush()

    asyncio.run(main())


def test_stop_writes_everything_queued_first() -> None:
    async def main() -> None:
        writer = RecordingWriter()
        pipeline = Pipeline(writer, Metrics(), storage_name="rec", flush_interval=30.0)
        await pipeline.start()
        writer.gate.clear()
        for _ in range(10):
            pipeline.submit(make_batch(1000), "r", "f")
        asyncio.get_running_loop().call_later(0.05, writer.gate.set)
        async with asyncio.timeout(2):
            await pipeline.stop()
        assert len(writer.ids) == 10_000
        assert pipeline.spans_lost == 0

    asyncio.run(main())


def test_storage_errors_are_retried_until_the_write_succeeds() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        writer.fail_next = 3
        pipeline.submit(make_batch(10), "r", "f")
        await until(
            lambda: sample(metrics, "tracemesh_storage_write_failures_total", storage="rec")
        )
        assert not pipeline.healthy  # failing right now
        await pipeline.flush()
        assert len(writer.ids) == 10
        assert pipeline.healthy
        assert sample(metrics, "tracemesh_storage_write_failures_total", storage="rec") == 3
        assert sample(metrics, "tracemesh_spans_written_total", storage="rec") == 10
        assert pipeline.spans_lost == 0

    run(test, retry_backoff=0.02, retry_attempts=5)


def test_giving_up_is_logged_loudly_and_counted_and_the_consumer_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        writer.fail_next = 3
        pipeline.submit(make_batch(10), "r", "f")
        await pipeline.flush()
        assert pipeline.spans_lost == 10
        assert sample(metrics, "tracemesh_spans_lost_total", storage="rec") == 10
        assert sample(metrics, "tracemesh_storage_write_failures_total", storage="rec") == 3
        pipeline.submit(make_batch(4), "r", "f")
        await pipeline.flush()
        assert len(writer.ids) == 4

    with caplog.at_level(logging.WARNING, logger="tracemesh.pipeline"):
        run(test, retry_backoff=0.001, retry_attempts=3)
    assert any(r.levelno == logging.ERROR and "LOST 10" in r.getMessage() for r in caplog.records)


def test_an_unexpected_writer_exception_is_not_retried_and_does_not_kill_the_consumer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        writer.fail_next, writer.error = 1, TypeError("bug")
        pipeline.submit(make_batch(3), "r", "f")
        await pipeline.flush()
        assert pipeline.spans_lost == 3
        assert not pipeline.healthy
        pipeline.submit(make_batch(2), "r", "f")
        await pipeline.flush()
        assert len(writer.ids) == 2
        assert pipeline.healthy

    with caplog.at_level(logging.ERROR, logger="tracemesh.pipeline"):
        run(test)
    assert any("raised unexpectedly" in r.getMessage() for r in caplog.records)


def test_stop_gives_up_after_its_timeout_and_counts_what_it_could_not_write() -> None:
    async def main() -> None:
        writer = RecordingWriter()
        metrics = Metrics()
        pipeline = Pipeline(writer, metrics, storage_name="rec", batch_spans=5)
        await pipeline.start()
        writer.gate.clear()  # storage hangs forever
        for _ in range(3):
            pipeline.submit(make_batch(5), "r", "f")
        waiter = asyncio.create_task(pipeline.flush())
        await asyncio.sleep(0.01)
        async with asyncio.timeout(2):
            await pipeline.stop(timeout=0.1)
        await waiter  # flush waiters are released, not left hanging
        assert pipeline.spans_lost == 15
        assert sample(metrics, "tracemesh_queue_length") == 0

    asyncio.run(main())


def test_confirm_resolves_each_batch_only_once_it_is_written() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        writer.gate.clear()
        first = pipeline.submit(make_batch(3), "r", "f")
        second = pipeline.submit(make_batch(2), "r", "f")
        assert first is not None and second is not None
        await asyncio.sleep(0.05)
        assert not first.done() and not second.done()  # storage has not taken them yet
        writer.gate.set()
        await asyncio.wait_for(asyncio.gather(first, second), 2)
        assert len(writer.ids) == 5

    run(test, confirm=True, flush_interval=0.001)


def test_confirm_fails_the_waiting_clients_instead_of_counting_spans_lost() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        writer.fail_next = 2
        failed = pipeline.submit(make_batch(4), "r", "f")
        assert failed is not None
        with pytest.raises(StorageError):
            await asyncio.wait_for(failed, 2)
        assert pipeline.spans_lost == 0  # refused to the client, who resends: not lost
        written = pipeline.submit(make_batch(1), "r", "f")
        assert written is not None
        await asyncio.wait_for(written, 2)
        assert len(writer.ids) == 1

    run(test, confirm=True, retry_attempts=2, retry_backoff=0.001)


def test_without_confirm_submit_returns_nothing_to_wait_for() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        assert pipeline.submit(make_batch(1), "r", "f") is None

    run(test)


def test_bytes_bound_refuses_before_the_span_bound() -> None:
    size = batch_bytes(make_batch(100))

    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        writer.gate.clear()  # storage stalls: everything stays queued
        pipeline.submit(make_batch(100), "otlp", "proto")
        await asyncio.sleep(0.05)  # the consumer takes it and blocks in write
        pipeline.submit(make_batch(100), "otlp", "proto")
        pipeline.submit(make_batch(100), "otlp", "proto")
        assert pipeline.queued_bytes == 2 * size
        with pytest.raises(QueueFullError, match="bytes queued"):
            pipeline.submit(make_batch(100), "otlp", "proto")
        writer.gate.set()
        await pipeline.flush()
        assert pipeline.queued_bytes == 0 and len(writer.ids) == 300

    run(test, queue_spans=100_000, queue_bytes=int(2.5 * size), flush_interval=0)


def test_time_bound_refuses_once_the_oldest_batch_waited_too_long() -> None:
    async def test(pipeline: Pipeline, writer: RecordingWriter, metrics: Metrics) -> None:
        writer.gate.clear()
        pipeline.submit(make_batch(10), "otlp", "proto")
        await asyncio.sleep(0.05)
        pipeline.submit(make_batch(10), "otlp", "proto")  # queued behind the stalled write
        pipeline.submit(make_batch(10), "otlp", "proto")  # fresh: still fits
        await asyncio.sleep(0.35)
        with pytest.raises(QueueFullError, match="has waited"):
            pipeline.submit(make_batch(10), "otlp", "proto")
        writer.gate.set()
        await pipeline.flush()
        pipeline.submit(make_batch(10), "otlp", "proto")  # drained: accepted again
        await pipeline.flush()
        assert len(writer.ids) == 40

    run(test, queue_spans=100_000, max_wait=0.3, flush_interval=0)


def test_time_bound_refuses_what_storage_could_not_write_in_time() -> None:
    class SlowWriter(RecordingWriter):
        async def write(self, batch: SpanBatch) -> None:
            await asyncio.sleep(batch.span_count / 10_000)  # 10,000 spans/s
            await super().write(batch)

    async def main() -> None:
        writer = SlowWriter()
        pipeline = Pipeline(writer, Metrics(), storage_name="slow", queue_spans=1_000_000,
                            max_wait=0.5, batch_spans=1000, flush_interval=0)  # fmt: skip
        await pipeline.start()
        refused = accepted = 0
        try:
            for _ in range(60):  # 60,000 spans offered in ~0.6 s: 6 s of writing
                try:
                    pipeline.submit(make_batch(1000), "otlp", "proto")
                    accepted += 1
                except QueueFullError:
                    refused += 1
                await asyncio.sleep(0.01)
            assert 5_000 < pipeline.write_rate < 20_000  # measured while busy
            assert pipeline.queued_spans <= pipeline.write_rate * 0.5 + 1000
            await pipeline.flush()
        finally:
            await pipeline.stop(timeout=5)
        assert refused > 0 and accepted >= 5
        assert len(writer.ids) == accepted * 1000  # every accepted span written

    asyncio.run(main())
