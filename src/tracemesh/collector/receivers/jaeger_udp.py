"""Jaeger agent UDP receiver: one Thrift `Agent.emitBatch` or `emitZipkinBatch` message per
datagram, compact (ports 6831 and 5775) or binary (6832), as jaeger-agent takes them.

The socket's readiness callback only moves datagrams into a bounded backlog (`queue_packets`);
one named task decodes and submits them, yielding to the event loop between datagrams. When the
backlog is full the receiver stops reading, so under overload the kernel drops the excess at no
cost to us, instead of the loop spending itself on reading datagrams it would throw away.
Like jaeger-agent, every port takes both methods; `kind` names the receiver in metrics.

UDP cannot answer, so every datagram that is not stored is counted in
`tracemesh_udp_packets_dropped{receiver,format,reason}` and logged at most once per reason every
10 seconds: `malformed`, `too_large`, `socket_buffer_full` (dropped by the kernel while we could
not keep up; Linux reports the count), `queue_full` (the sink's queue; the sink counts the spans
in `tracemesh_spans_dropped`) and `shutting_down` (the spans are counted here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections import deque
from typing import Any

from prometheus_client import Counter

from tracemesh.codecs import DecodeError
from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.jaeger_thrift import batch_from_thrift, decode_accelerated
from tracemesh.codecs.otlp_proto import DecodedBatch, batch_from_spans
from tracemesh.codecs.thrift_repair import repair_batch
from tracemesh.codecs.zipkin_thrift import spans_from_zipkin
from tracemesh.collector.pipeline import PipelineClosedError, QueueFullError
from tracemesh.collector.refusals import span_reason
from tracemesh.collector.sink import BatchSink
from tracemesh.model.batch import SpanBatch
from tracemesh.runtime.metrics import Metrics
from tracemesh.runtime.ratelog import RateLimitedLog
from tracemesh.runtime.tasks import TaskOwner

log = logging.getLogger("tracemesh.receivers.udp")

MAX_PACKET = 65000  # jaeger-agent's limit; clients split batches to fit
SOCKET_BUFFER_BYTES = 4 << 20
LOG_INTERVAL_SECONDS = 10.0
_READS_PER_CALLBACK = 32
_SO_RXQ_OVFL = 40  # Linux's number; Python's socket module does not name it
_ANCILLARY_SPACE = socket.CMSG_SPACE(4)
_METHODS: dict[str, type[ts.ThriftStruct]] = {
    ts.EMIT_BATCH: ts.EmitBatchArgs,
    ts.EMIT_ZIPKIN_BATCH: ts.EmitZipkinBatchArgs,
}
_RECEIVERS = {"jaeger": "jaeger_udp", "zipkin": "zipkin_udp"}


def decode_datagram(data: bytes, protocol: str) -> DecodedBatch:
    """Rows from one agent message of either method; DecodeError when it is not one."""
    fast = decode_accelerated(data, protocol, envelope=True)  # emitBatch, when not declined
    if fast is not None:
        return fast
    try:
        _, _, args = ts.decode_message(data, protocol, _METHODS, repair_batch)
    except ts.ThriftError as exc:
        raise DecodeError(str(exc)) from None
    if isinstance(args, ts.EmitBatchArgs):
        return batch_from_thrift(args.batch)
    assert isinstance(args, ts.EmitZipkinBatchArgs)
    decoded = spans_from_zipkin(args.spans or ())
    return DecodedBatch(batch_from_spans(decoded.spans), decoded.rejected, decoded.error)


class UdpReceiver:
    """Serves one UDP port; `port` is the bound port once started (0 asks for any)."""

    def __init__(
        self,
        sink: BatchSink,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        protocol: str,
        kind: str,
        max_packet: int = MAX_PACKET,
        queue_packets: int = 1000,
    ) -> None:
        if protocol not in ts.PROTOCOLS:
            raise ValueError(f"protocol must be one of {ts.PROTOCOLS}, not {protocol!r}")
        if kind not in _RECEIVERS:
            raise ValueError(f"kind must be one of {tuple(_RECEIVERS)}, not {kind!r}")
        self._sink = sink
        self._metrics = metrics
        self.host = host
        self._port = port
        self.protocol = protocol
        self.receiver = _RECEIVERS[kind]
        self.format = f"thrift_{protocol}"
        self._max_packet = max_packet
        self._backlog: deque[bytes | None] = deque()  # None: stop() wants the consumer to end
        self._backlog_max = max(1, queue_packets)
        self._wakeup = asyncio.Event()
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self._kernel_drops: int | None = None  # the socket's overflow counter, if it has one
        self._tasks = TaskOwner()
        self._consumer: asyncio.Task[Any] | None = None
        self._log = RateLimitedLog(log, LOG_INTERVAL_SECONDS)
        labels = (self.receiver, self.format)
        self._received = metrics.udp_packets_received.labels(*labels)
        self._dropped_spans = metrics.spans_dropped.labels(*labels)
        self._dropped: dict[str, Counter] = {}

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        if self._sock is not None:
            raise RuntimeError("receiver already started")
        sock = _bind_udp(self.host, self._port)
        self._port = sock.getsockname()[1]
        self._kernel_drops = 0 if _count_kernel_drops(sock) else None
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._resume()
        self._consumer = self._tasks.spawn(f"udp:{self.receiver}:{self._port}", self._consume())
        log.info("%s receiver (%s) listening on udp %s:%d", self.receiver, self.format,
                 self.host, self._port)  # fmt: skip

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the socket, then submit what is already queued (for up to `timeout` seconds)."""
        sock = self._sock
        if sock is not None:
            self._pause()
            sock.close()
            self._sock = None
        consumer = self._consumer
        if consumer is None:
            return
        self._backlog.append(None)  # the consumer finishes what came before, then ends
        self._wakeup.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.shield(consumer)
        await self._tasks.cancel_all()
        self._consumer = None

    # ---- socket side ---------------------------------------------------------------------------

    def _readable(self) -> None:
        """Move what the kernel holds into the backlog, a bounded number per call so other
        sockets get their turn; stop reading once the backlog is full."""
        sock = self._sock
        if sock is None:
            return
        size = self._max_packet + 1  # one byte more, to tell an oversized datagram
        for _ in range(_READS_PER_CALLBACK):
            if len(self._backlog) >= self._backlog_max:
                self._pause()
                return
            try:
                data, ancillary, _, _ = sock.recvmsg(size, _ANCILLARY_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. an ICMP error queued on the socket; carry on
                log.debug("udp socket error: %r", exc)
                return
            if ancillary and self._kernel_drops is not None:
                self._note_kernel_drops(ancillary)
            self._received_datagram(data)

    def _received_datagram(self, data: bytes) -> None:
        self._received.inc()
        if len(data) > self._max_packet:
            self._drop("too_large", f"datagram exceeds {self._max_packet} bytes")
        else:
            self._backlog.append(data)
            self._wakeup.set()

    def _note_kernel_drops(self, ancillary: list[tuple[int, int, bytes]]) -> None:
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_RXQ_OVFL and len(value) >= 4:
                total = int.from_bytes(value[:4], sys.byteorder)
                new = (total - (self._kernel_drops or 0)) & 0xFFFFFFFF
                self._kernel_drops = total
                if new:
                    detail = "the kernel dropped them while the backlog was full"
                    self._drop("socket_buffer_full", detail, new)

    def _pause(self) -> None:
        if self._reading and self._loop is not None and self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False

    def _resume(self) -> None:
        if not self._reading and self._loop is not None and self._sock is not None:
            self._loop.add_reader(self._sock.fileno(), self._readable)
            self._reading = True

    # ---- consumer ------------------------------------------------------------------------------

    async def _consume(self) -> None:
        backlog = self._backlog
        while True:
            if not backlog:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            data = backlog.popleft()
            if data is None:
                return
            self._handle(data)
            if not self._reading and len(backlog) <= self._backlog_max // 2:
                self._resume()
            await asyncio.sleep(0)  # let the loop read more datagrams and serve other ports

    def _handle(self, data: bytes) -> None:
        try:
            decoded = decode_datagram(data, self.protocol)
        except DecodeError as exc:
            self._drop("malformed", str(exc))
            return
        if decoded.rejected:
            reason = span_reason(decoded.error)
            self._metrics.spans_rejected.labels(self.receiver, self.format, reason).inc(
                decoded.rejected
            )
            self._log.warning(f"spans:{reason}", "%s: %d invalid span(s) dropped (%s), e.g. %s",
                              self.receiver, decoded.rejected, reason, decoded.error)  # fmt: skip
        self._submit(decoded.batch)

    def _submit(self, batch: SpanBatch) -> None:
        try:
            self._sink.submit(batch, self.receiver, self.format)
        except QueueFullError as exc:
            self._drop("queue_full", str(exc))  # the sink counted the spans
        except PipelineClosedError as exc:
            self._dropped_spans.inc(batch.span_count)
            self._drop("shutting_down", str(exc))

    def _drop(self, reason: str, detail: str, datagrams: int = 1) -> None:
        counter = self._dropped.get(reason)
        if counter is None:
            counter = self._dropped[reason] = self._metrics.udp_packets_dropped.labels(
                self.receiver, self.format, reason
            )
        counter.inc(datagrams)
        self._log.warning(reason, "%s (%s): dropped %d datagram(s) (%s): %s", self.receiver,
                          self.format, datagrams, reason, detail)  # fmt: skip


def _count_kernel_drops(sock: socket.socket) -> bool:
    """Ask Linux to report the socket's drop counter with each datagram (SO_RXQ_OVFL)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RXQ_OVFL, 1)
    except OSError:
        return False
    return True


def _bind_udp(host: str, port: int) -> socket.socket:
    """Bind now, so a busy port fails at startup with a clear error and port 0 gets a real one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):  # a bigger kernel buffer absorbs bursts; best effort
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on udp {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
