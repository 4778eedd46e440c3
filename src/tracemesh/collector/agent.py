"""The forwarding half of `tracemesh agent`: a bounded span buffer drained to a collector over
OTLP/gRPC, which keeps every buffered span while the collector is away.

Receivers hand batches to `Forwarder.submit` (it is a `BatchSink`). One task sends them on as
`TraceService/Export` requests built straight from the rows: each group's resource and scope are
encoded once and each span's stored OTLP bytes (`SpanRow.raw`) are copied in as they are. A request
leaves the buffer only when the collector acknowledges it: on UNAVAILABLE, a deadline or a broken
connection the same request is retried with exponential backoff (or the collector's RetryInfo
delay) for as long as it takes, while new spans queue behind it up to the bound; when the buffer is
full, `submit` raises `QueueFullError` and counts the spans as dropped. A collector that refuses a
request for good (INVALID_ARGUMENT, UNIMPLEMENTED...) or rejects some spans in a partial success
makes those spans lost: counted in `tracemesh_spans_lost{storage="collector"}` and logged.
All methods must be called from the event loop the forwarder was started in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from prometheus_client import Counter

from tracemesh.codecs.otlp_proto import attributes_to_pb
from tracemesh.codecs.protowire import fields, length_delimited
from tracemesh.collector.pipeline import PipelineClosedError, QueueFullError
from tracemesh.model.batch import ResourceGroup, SpanBatch
from tracemesh.model.span import Resource, Scope
from tracemesh.runtime.metrics import Metrics
from tracemesh.runtime.tasks import TaskOwner

log = logging.getLogger("tracemesh.agent.forwarder")

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOST_LABEL = "collector"
MiB = 1 << 20
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.DATA_LOSS,
    }
)


class Forwarder:
    """Buffers up to `queue_spans` spans and exports them to the OTLP/gRPC receiver at
    `collector` (a gRPC target, `host:port`) in requests of at most `batch_spans` spans and
    `max_request_bytes` bytes, waiting up to `flush_interval` for a request to fill. Each call
    has `timeout` seconds; failed calls are retried after `backoff` doubling up to `backoff_max`."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        collector: str,
        queue_spans: int = 100_000,
        batch_spans: int = 2_000,
        max_request_bytes: int = 3 * MiB,
        flush_interval: float = 0.1,
        timeout: float = 10.0,
        backoff: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        if queue_spans < 1 or batch_spans < 1:
            raise ValueError("queue_spans and batch_spans must be positive")
        self.endpoint = collector
        self._metrics = metrics
        self._bound = queue_spans
        self._batch_spans = batch_spans
        self._max_bytes = max_request_bytes
        self._flush_interval = flush_interval
        self._timeout = timeout
        self._backoff = backoff
        self._backoff_max = backoff_max

        self._queue: deque[ResourceGroup] = deque()
        self._queued = 0  # spans in _queue
        self._inflight = 0  # spans taken off the queue, not yet acknowledged
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._failing = False
        self._tasks = TaskOwner()
        self._sender: asyncio.Task[None] | None = None
        self._channel: Any = None
        self._export: Any = None
        self.spans_lost = 0

        self._received: dict[tuple[str, str], Counter] = {}
        self._dropped: dict[tuple[str, str], Counter] = {}
        self._sent = metrics.forwarder_spans_sent
        metrics.forwarder_buffer_capacity.set(queue_spans)
        metrics.forwarder_buffer_length.set(0)

    # ---- receiver side -------------------------------------------------------------------------

    def submit(self, batch: SpanBatch, receiver: str, fmt: str) -> None:
        """Buffer `batch` or raise at once: `QueueFullError` when it does not fit (a batch larger
        than the whole buffer is taken only into an empty one), `PipelineClosedError` when
        stopping."""
        if self._closing or self._sender is None or self._sender.done():
            raise PipelineClosedError("the forwarder is not running")
        count = batch.span_count
        if count == 0:
            return
        held = self._queued + self._inflight
        if held + count > self._bound and held:
            _child(self._dropped, self._metrics.spans_dropped, receiver, fmt).inc(count)
            raise QueueFullError(
                f"agent buffer full ({held} of {self._bound} spans held for {self.endpoint}); "
                "retry later"
            )
        self._queue.extend(batch.groups)
        self._queued += count
        self._metrics.forwarder_buffer_length.set(held + count)
        _child(self._received, self._metrics.spans_received, receiver, fmt).inc(count)
        self._idle.clear()
        if self._queued == count or self._queued >= self._batch_spans:
            self._wakeup.set()

    @property
    def held_spans(self) -> int:
        """Spans buffered or in flight."""
        return self._queued + self._inflight

    @property
    def healthy(self) -> bool:
        """Running, and the last export (if any) reached the collector."""
        running = self._sender is not None and not self._sender.done() and not self._closing
        return running and not self._failing

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._sender is not None:
            raise RuntimeError("forwarder already started")
        reconnect_ms = max(int(self._backoff * 1000), 100)
        options = [
            ("grpc.initial_reconnect_backoff_ms", reconnect_ms),
            ("grpc.min_reconnect_backoff_ms", reconnect_ms),
            ("grpc.max_reconnect_backoff_ms", max(int(self._backoff_max * 1000), reconnect_ms)),
            ("grpc.max_send_message_length", -1),
        ]
        self._channel = grpc.aio.insecure_channel(self.endpoint, options=options)
        self._export = self._channel.unary_unary(EXPORT)  # raw bytes in and out
        self._sender = self._tasks.spawn(f"forwarder:{self.endpoint}", self._run())
        log.info("forwarding spans to the collector at %s (OTLP/gRPC)", self.endpoint)

    async def flush(self) -> None:
        """Return once every span submitted so far is acknowledged or given up."""
        await self._idle.wait()

    async def stop(self, flush_timeout: float = 10.0) -> None:
        """Refuse new spans and send what is held; spans still held when `flush_timeout` runs
        out (the collector is down, say) are logged and counted as lost."""
        self._closing = True
        self._wakeup.set()
        sender = self._sender
        try:
            if sender is not None and not sender.done():
                async with asyncio.timeout(flush_timeout):
                    await asyncio.shield(sender)
        except TimeoutError:
            await self._tasks.cancel_all()
            held = self._queued + self._inflight
            if held:
                self._lose(held, f"the collector did not take them within {flush_timeout}s")
            self._queue.clear()
            self._queued = self._inflight = 0
        finally:
            self._metrics.forwarder_buffer_length.set(0)
            self._idle.set()
            if self._channel is not None:
                await self._channel.close()
                self._channel = None

    # ---- sender --------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._linger()
            groups = self._take()
            count = sum(len(g.rows) for g in groups)
            await self._send(encode_request(groups), count)
            self._inflight = 0
            self._metrics.forwarder_buffer_length.set(self._queued)
            if not self._queued:
                self._idle.set()

    async def _linger(self) -> None:
        """Wait up to flush_interval for a full request, so the collector gets fewer, larger."""
        deadline = time.monotonic() + self._flush_interval
        while self._queued < self._batch_spans and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()

    def _take(self) -> list[ResourceGroup]:
        """Move up to batch_spans spans (and max_request_bytes) from the queue into flight,
        splitting a group when only part of it fits; at least one span always goes."""
        taken: list[ResourceGroup] = []
        spans = size = 0
        queue = self._queue
        while queue and spans < self._batch_spans:
            group = queue[0]
            fit = 0
            for row in group.rows[: self._batch_spans - spans]:
                if size + len(row.raw) > self._max_bytes and (spans or fit):
                    break
                size += len(row.raw) + 8  # + tags, lengths and the enclosing messages
                fit += 1
            if fit == 0:
                break
            if fit == len(group.rows):
                taken.append(queue.popleft())
            else:
                taken.append(ResourceGroup(group.resource, group.scope, group.rows[:fit]))
                queue[0] = ResourceGroup(group.resource, group.scope, group.rows[fit:])
            spans += fit
            if fit < len(group.rows):
                break
        self._queued -= spans
        self._inflight = spans
        return taken

    async def _send(self, request: bytes, count: int) -> None:
        """Export until acknowledged or refused for good; never gives up on a reachable-later
        collector (stop() bounds the wait)."""
        delay = self._backoff
        attempts = 0
        while True:
            attempts += 1
            try:
                response: bytes = await self._export(request, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                self._metrics.forwarder_send_failures.labels(code.name).inc()
                self._failing = True
                hint = _retry_delay(exc)
                if code not in _RETRYABLE and hint is None:
                    self._lose(count, f"the collector refused them: {code.name} {exc.details()}")
                    return
                if attempts == 1:
                    log.warning(
                        "collector at %s unavailable (%s: %s); holding %d spans and retrying",
                        self.endpoint, code.name, exc.details(), self._queued + count,
                    )  # fmt: skip
                await asyncio.sleep(min(max(delay, hint or 0.0), self._backoff_max))
                delay = min(delay * 2, self._backoff_max)
                continue
            if attempts > 1:
                log.info(
                    "collector at %s reachable again after %d attempts", self.endpoint, attempts
                )
            self._failing = False
            rejected = rejected_spans(response)
            if rejected:
                self._lose(rejected, "the collector rejected them as invalid (partial success)")
            self._sent.inc(count - rejected)
            return

    def _lose(self, count: int, why: str) -> None:
        self.spans_lost += count
        self._metrics.spans_lost.labels(LOST_LABEL).inc(count)
        log.error(
            "LOST %d spans bound for the collector at %s: %s (%d lost so far)",
            count, self.endpoint, why, self.spans_lost,
        )  # fmt: skip


# ---- request encoding ---------------------------------------------------------------------------


def encode_request(groups: Sequence[ResourceGroup]) -> bytes:
    """A serialized ExportTraceServiceRequest with one ResourceSpans per group, the spans copied
    from their stored bytes. ExportTraceServiceRequest.resource_spans = 1; ResourceSpans.resource
    = 1, .scope_spans = 2, .schema_url = 3; ScopeSpans.scope = 1, .spans = 2, .schema_url = 3."""
    out = bytearray()
    for group in groups:
        scope_spans = bytearray(length_delimited(1, _scope_bytes(group.scope)))
        for row in group.rows:
            scope_spans += length_delimited(2, row.raw)
        if group.scope.schema_url:
            scope_spans += length_delimited(3, group.scope.schema_url.encode())
        resource_spans = length_delimited(1, _resource_bytes(group.resource))
        resource_spans += length_delimited(2, bytes(scope_spans))
        if group.resource.schema_url:
            resource_spans += length_delimited(3, group.resource.schema_url.encode())
        out += length_delimited(1, resource_spans)
    return bytes(out)


def _resource_bytes(resource: Resource) -> bytes:
    pb = PbResource(dropped_attributes_count=resource.dropped_attributes_count)
    attributes_to_pb(resource.attributes, pb.attributes)
    return bytes(pb.SerializeToString())


def _scope_bytes(scope: Scope) -> bytes:
    pb = InstrumentationScope(
        name=scope.name,
        version=scope.version,
        dropped_attributes_count=scope.dropped_attributes_count,
    )
    attributes_to_pb(scope.attributes, pb.attributes)
    return bytes(pb.SerializeToString())


def rejected_spans(response: bytes) -> int:
    """`partial_success.rejected_spans` of a serialized ExportTraceServiceResponse (0 if none)."""
    if not response:
        return 0
    try:
        return int(ExportTraceServiceResponse.FromString(response).partial_success.rejected_spans)
    except Exception:  # an unreadable acknowledgement is still an acknowledgement
        return 0


def _retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The delay of a `google.rpc.RetryInfo` trailer (as our collector sends it), if any."""
    for key, value in error.trailing_metadata() or ():
        if key == "google.rpc.retryinfo-bin" and isinstance(value, bytes):
            with contextlib.suppress(Exception):
                for begin, end in fields(value, 0, len(value), 1):
                    delay = Duration.FromString(value[begin:end])
                    return float(delay.seconds + delay.nanos / 1e9)
    return None


def _child(
    cache: dict[tuple[str, str], Counter], family: Counter, receiver: str, fmt: str
) -> Counter:
    child = cache.get((receiver, fmt))
    if child is None:
        child = cache[(receiver, fmt)] = family.labels(receiver, fmt)
    return child
