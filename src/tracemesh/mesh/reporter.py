"""Sends a proxy's spans to the collector in batches, from a background task, so that a slow or
absent collector never slows or fails a request: OTLP/gRPC (default), OTLP/HTTP protobuf, or
Zipkin v2 JSON (what Envoy's Zipkin tracer posts).

`report(span)` is all a request pays: an append to a bounded buffer. When the buffer is full the
span is dropped and counted (`dropped["buffer_full"]`). One task takes up to `batch_spans` spans
once that many wait or `flush_interval` has passed, encodes them (`otlp_encode.encode_request`,
bytes written directly, or the Zipkin encoder) and sends them; while the collector is unreachable
the same batch is retried with backoff and newer spans wait behind it, up to the bound. A collector
that refuses a batch for good (an HTTP 4xx other than 408/429, a gRPC INVALID_ARGUMENT...) or
rejects spans in a partial success loses them (`dropped["rejected"]`); spans still held when `stop`
runs out of time are `dropped["shutdown"]`. All methods must be called from the event loop the
reporter started in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

import grpc

from tracemesh.codecs.otlp_encode import encode_request
from tracemesh.codecs.zipkin_json import encode_spans as zipkin_json
from tracemesh.collector.agent import EXPORT, rejected_spans
from tracemesh.mesh.http_client import HttpClient, HttpError
from tracemesh.model.span import Span
from tracemesh.runtime.tasks import TaskOwner

log = logging.getLogger("tracemesh.mesh.reporter")

_RETRYABLE_GRPC = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)
_RETRYABLE_HTTP = frozenset({408, 429, 502, 503, 504})


class ReportProtocol(StrEnum):
    GRPC = "grpc"  # OTLP/gRPC TraceService/Export, endpoint host:port (default :4317)
    HTTP = "http"  # OTLP/HTTP protobuf, endpoint http://host:port[/v1/traces] (default :4318)
    ZIPKIN = "zipkin"  # Zipkin v2 JSON, endpoint http://host:port[/api/v2/spans] (default :9411)


class SpanSink(Protocol):
    """Where finished spans go; `report` must return at once."""

    def report(self, span: Span) -> None: ...


class _Refused(Exception):
    """The collector refused the batch for good: retrying cannot help."""


class _Sender(Protocol):
    async def send(self, spans: Sequence[Span]) -> int:
        """Send one batch; the number of spans the collector rejected. Raises `_Refused` for a
        permanent refusal, any other exception for a failure worth retrying."""
        ...

    async def close(self) -> None: ...


class Reporter:
    """A bounded span buffer and the task that drains it to one collector."""

    def __init__(
        self,
        endpoint: str,
        protocol: ReportProtocol | str = ReportProtocol.GRPC,
        *,
        queue_spans: int = 10_000,
        batch_spans: int = 256,
        flush_interval: float = 1.0,
        timeout: float = 5.0,
        backoff: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        if queue_spans < 1 or batch_spans < 1:
            raise ValueError("queue_spans and batch_spans must be positive")
        self.protocol = ReportProtocol(protocol)
        self.endpoint = endpoint
        self.bound = queue_spans
        self._batch_spans = batch_spans
        self._flush_interval = flush_interval
        self._timeout = timeout
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._queue: deque[Span] = deque()
        self._inflight = 0
        self._wakeup: asyncio.Event | None = None
        self._closing = False
        self._tasks = TaskOwner()
        self._task: asyncio.Task[None] | None = None
        self._sender: _Sender | None = None
        self.sent = 0  # spans the collector acknowledged
        self.failures = 0  # send attempts that failed (and were retried)
        self.dropped: dict[str, int] = {"buffer_full": 0, "rejected": 0, "shutdown": 0}
        self.reachable = True  # false from a failed send until the next success

    @property
    def held(self) -> int:
        """Spans buffered or in flight."""
        return len(self._queue) + self._inflight

    def report(self, span: Span) -> None:
        if self._closing or len(self._queue) + self._inflight >= self.bound:
            self.dropped["buffer_full" if not self._closing else "shutdown"] += 1
            return
        self._queue.append(span)
        if len(self._queue) >= self._batch_spans and self._wakeup is not None:
            self._wakeup.set()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("reporter already started")
        self._sender = _make_sender(self.protocol, self.endpoint, self._timeout)
        self._wakeup = asyncio.Event()
        self._task = self._tasks.spawn(f"span-reporter:{self.endpoint}", self._run())
        log.info("reporting spans to %s (%s)", self.endpoint, self.protocol.value)

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every span reported so far was sent or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.held and time.monotonic() < deadline:
            if self._wakeup is not None:
                self._wakeup.set()
            await asyncio.sleep(0.01)
        return not self.held

    async def stop(self, timeout: float = 5.0) -> None:
        """Send what is held for up to `timeout` seconds, then drop (and count) the rest."""
        if self._task is None:
            return
        await self.flush(timeout)
        self._closing = True
        held = self.held  # the batch in flight too: cancelling the send loses it
        await self._tasks.cancel_all()
        self._queue.clear()
        self._inflight = 0
        if held:
            self.dropped["shutdown"] += held
            log.warning("dropped %d spans at shutdown: the collector at %s did not take them",
                        held, self.endpoint)  # fmt: skip
        if self._sender is not None:
            await self._sender.close()

    async def _run(self) -> None:
        assert self._wakeup is not None and self._sender is not None
        wakeup = self._wakeup
        while True:
            if len(self._queue) < self._batch_spans:
                wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await wakeup.wait()
            if not self._queue:
                continue
            count = min(len(self._queue), self._batch_spans)
            batch = [self._queue.popleft() for _ in range(count)]
            self._inflight = count
            try:
                await self._send(self._sender, batch)
            finally:
                self._inflight = 0

    async def _send(self, sender: _Sender, batch: list[Span]) -> None:
        delay = self._backoff
        while True:
            try:
                rejected = await sender.send(batch)
            except _Refused as exc:
                self.dropped["rejected"] += len(batch)
                log.error("the collector at %s refused %d spans: %s", self.endpoint, len(batch),
                          exc)  # fmt: skip
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                if self.reachable:
                    log.warning("cannot report spans to %s (%s); holding %d and retrying",
                                self.endpoint, exc, self.held)  # fmt: skip
                self.reachable = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)
                continue
            if not self.reachable:
                log.info("the collector at %s is reachable again", self.endpoint)
            self.reachable = True
            self.dropped["rejected"] += rejected
            self.sent += len(batch) - rejected
            return


def _make_sender(protocol: ReportProtocol, endpoint: str, timeout: float) -> _Sender:
    if protocol is ReportProtocol.GRPC:
        return _GrpcSender(endpoint, timeout)
    default_path = "/v1/traces" if protocol is ReportProtocol.HTTP else "/api/v2/spans"
    url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if url.scheme != "http" or not url.hostname or url.port is None:
        raise ValueError(f"the {protocol.value} endpoint must be http://host:port[/path], "
                         f"got {endpoint!r}")  # fmt: skip
    return _HttpSender(protocol, HttpClient(url.hostname, url.port, timeout=timeout),
                       url.path or default_path)  # fmt: skip


class _GrpcSender:
    def __init__(self, target: str, timeout: float) -> None:
        self._timeout = timeout
        self._channel = grpc.aio.insecure_channel(
            target.removeprefix("http://"),
            options=[("grpc.initial_reconnect_backoff_ms", 100),
                     ("grpc.max_reconnect_backoff_ms", 5000)],
        )  # fmt: skip
        self._export: Any = self._channel.unary_unary(EXPORT)

    async def send(self, spans: Sequence[Span]) -> int:
        request = encode_request(spans)
        try:
            response: bytes = await self._export(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RETRYABLE_GRPC:
                raise
            raise _Refused(f"{exc.code().name}: {exc.details()}") from None
        return rejected_spans(response)

    async def close(self) -> None:
        await self._channel.close()


class _HttpSender:
    def __init__(self, protocol: ReportProtocol, client: HttpClient, path: str) -> None:
        self._protocol = protocol
        self._client = client
        self._path = path

    async def send(self, spans: Sequence[Span]) -> int:
        if self._protocol is ReportProtocol.ZIPKIN:
            body, kind = zipkin_json(spans), "application/json"
        else:
            body, kind = encode_request(spans), "application/x-protobuf"
        response = await self._client.request("POST", self._path, body, [("content-type", kind)])
        if 200 <= response.status < 300:
            if self._protocol is ReportProtocol.HTTP:
                return rejected_spans(response.body)
            return 0
        if response.status in _RETRYABLE_HTTP or response.status >= 500:
            raise HttpError(f"HTTP {response.status}")
        raise _Refused(f"HTTP {response.status}: {response.body[:200]!r}")

    async def close(self) -> None:
        await self._client.close()
