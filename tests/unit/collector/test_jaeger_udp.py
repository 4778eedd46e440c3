"""Agent UDP ports over real loopback sockets into the pipeline and memory storage: the real
jaeger-client on the compact port, binary and Zipkin datagrams, and hostile datagrams that are
counted, logged at a bounded rate and dropped while the port keeps serving."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import opentracing
import pytest
from jaeger_client.thrift_gen.agent import Agent as TheirAgent
from jaeger_client.thrift_gen.zipkincore import ttypes as z
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.Thrift import TMessageType
from thrift.transport.TTransport import TMemoryBuffer

from tests.unit.collector.harness import Collector
from tests.unit.collector.jaeger_tracers import jaeger_tracer
from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.jaeger_json import trace_json
from tracemesh.codecs.jaeger_thrift import emit_batch_message
from tracemesh.collector.pipeline import PipelineClosedError, QueueFullError
from tracemesh.collector.receivers import jaeger_udp
from tracemesh.collector.receivers.jaeger_udp import UdpReceiver
from tracemesh.model.batch import SpanBatch
from tracemesh.model.span import REF_TYPE_KEY, Event, Resource, Span, SpanKind, StatusCode
from tracemesh.runtime import ratelog
from tracemesh.runtime.metrics import Metrics

T0 = 1_700_000_000_000_000_000  # ns
DROPPED = "tracemesh_udp_packets_dropped_total"


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


@pytest.fixture
def start(collector: Collector) -> Iterator[Callable[..., UdpReceiver]]:
    started: list[UdpReceiver] = []

    def start(**options: Any) -> UdpReceiver:
        options = {"protocol": "compact", "kind": "jaeger", **options}
        receiver = UdpReceiver(collector.pipeline, collector.metrics, host="127.0.0.1", port=0,
                               **options)  # fmt: skip
        collector.call(receiver.start())
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        collector.call(receiver.stop())


def send(port: int, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for data in datagrams:
            sock.sendto(data, ("127.0.0.1", port))


def stored(collector: Collector, trace_id: bytes, count: int, timeout: float = 10) -> list[Span]:
    """The trace once it has `count` spans (UDP gives no acknowledgement to wait for)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = collector.trace(trace_id)
        if len(spans) >= count or time.monotonic() > deadline:
            assert len(spans) == count
            return spans
        time.sleep(0.02)


def model_spans(trace_id: bytes, count: int, service: str = "svc") -> list[Span]:
    resource = Resource({"service.name": service})
    return [Span(trace_id, (i + 1).to_bytes(8, "big"), f"op-{i}", T0, T0 + 5000, flags=1,
                 resource=resource, attributes={"i": i}) for i in range(count)]  # fmt: skip


def dropped(collector: Collector, reason: str, receiver: str = "jaeger_udp") -> float:
    return collector.sample(DROPPED, receiver=receiver, format="thrift_compact", reason=reason)


# ---- real clients ------------------------------------------------------------------------------


def test_real_jaeger_client_spans_are_stored(
    collector: Collector, start: Callable[..., UdpReceiver]
) -> None:
    receiver = start()
    with jaeger_tracer(receiver.port, "shop") as tracer:
        with tracer.start_active_span("checkout", tags={"span.kind": "server"}) as root_scope:
            root = root_scope.span
            root.set_tag("cart.items", 3)
            root.set_tag("cart.total", 19.99)
            root.set_tag("vip", False)
            root.set_tag("note", "<script>alert(1)</script>")
            root.log_kv({"event": "validated", "rules": 12})
            with tracer.start_active_span("charge", tags={"span.kind": "client"}) as charge:
                charge.span.set_tag("error", True)
                charge.span.log_kv({"event": "error", "message": "card declined"})
                with tracer.start_active_span("db.query") as query:
                    query.span.set_tag("db.statement", "SELECT 1")
        tracer.start_span("email", references=[opentracing.follows_from(root.context)]).finish()
    trace_id = root.context.trace_id.to_bytes(16, "big")
    spans = {s.name: s for s in stored(collector, trace_id, 4)}

    assert spans["charge"].parent_span_id == spans["checkout"].span_id
    assert spans["db.query"].parent_span_id == spans["charge"].span_id
    assert spans["email"].parent_span_id == spans["checkout"].span_id
    assert spans["email"].links[0].attributes == {REF_TYPE_KEY: "follows_from"}
    checkout = spans["checkout"]
    assert checkout.kind is SpanKind.SERVER
    assert {k: checkout.attributes[k] for k in ("cart.items", "cart.total", "vip", "note")} == {
        "cart.items": 3, "cart.total": 19.99, "vip": False, "note": "<script>alert(1)</script>",
    }  # fmt: skip
    assert checkout.events[0].name == "validated" and checkout.events[0].attributes == {"rules": 12}
    assert spans["charge"].status.code is StatusCode.ERROR
    assert spans["charge"].events[0] == Event(spans["charge"].events[0].time_ns, "error",
                                              {"message": "card declined"})  # fmt: skip
    assert checkout.resource.attributes["service.name"] == "shop"
    shown = trace_json(list(spans.values()))
    assert shown["processes"]["p1"]["serviceName"] == "shop"  # type: ignore[index]

    labels = {"receiver": "jaeger_udp", "format": "thrift_compact"}
    assert collector.sample("tracemesh_spans_received_total", **labels) == 4
    assert collector.sample("tracemesh_udp_packets_received_total", **labels) >= 1
    assert dropped(collector, "malformed") == 0


def test_binary_port(collector: Collector, start: Callable[..., UdpReceiver]) -> None:
    receiver = start(protocol="binary")
    trace_id = b"\x8f" * 16  # both halves negative as i64
    send(receiver.port, emit_batch_message(model_spans(trace_id, 3), "binary"))
    spans = stored(collector, trace_id, 3)
    assert sorted(s.attributes["i"] for s in spans) == [0, 1, 2]  # type: ignore[type-var]
    labels = {"receiver": "jaeger_udp", "format": "thrift_binary"}
    assert collector.sample("tracemesh_spans_received_total", **labels) == 3


def test_zipkin_port_and_either_method_on_any_port(
    collector: Collector, start: Callable[..., UdpReceiver]
) -> None:
    receiver = start(kind="zipkin")
    endpoint = z.Endpoint(ipv4=0x7F000001, port=80, service_name="legacy")
    span = z.Span(trace_id=77, name="GET", id=5, annotations=[
        z.Annotation(1_700_000_000_000_000, "sr", endpoint),
        z.Annotation(1_700_000_000_000_900, "ss", endpoint)])  # fmt: skip
    trans = TMemoryBuffer()
    prot = TCompactProtocol(trans)
    prot.writeMessageBegin("emitZipkinBatch", TMessageType.ONEWAY, 1)
    TheirAgent.emitZipkinBatch_args(spans=[span]).write(prot)
    prot.writeMessageEnd()
    send(receiver.port, bytes(trans.getvalue()))
    (zipkin_span,) = stored(collector, (77).to_bytes(16, "big"), 1)
    assert zipkin_span.kind is SpanKind.SERVER and zipkin_span.service_name == "legacy"
    assert zipkin_span.duration_ns == 900_000

    jaeger_trace = b"\x01" * 16
    send(receiver.port, emit_batch_message(model_spans(jaeger_trace, 2), "compact"))
    stored(collector, jaeger_trace, 2)
    labels = {"receiver": "zipkin_udp", "format": "thrift_compact"}
    assert collector.sample("tracemesh_spans_received_total", **labels) == 3


# ---- hostile datagrams -------------------------------------------------------------------------


def test_hostile_datagrams_are_counted_logged_and_dropped(
    collector: Collector, start: Callable[..., UdpReceiver], caplog: pytest.LogCaptureFixture
) -> None:
    receiver = start()
    good = emit_batch_message(model_spans(b"\x02" * 16, 2), "compact")
    hostile = [
        good[:10],
        good[:40],
        good[:-1],  # truncated
        b"\x00" + os.urandom(64_999),  # 65 KB of junk
        emit_batch_message(model_spans(b"\x03" * 16, 2), "binary"),  # wrong protocol
        good.replace(b"emitBatch", b"emitBatcX"),  # wrong method
        b"",  # empty
        b"\x82\x81\x01\x09emitBatch\x1c\x29\xfc\xff\xff\xff\x07",  # 2^31 spans claimed
    ]
    with caplog.at_level(logging.WARNING, logger="tracemesh.receivers.udp"):
        send(receiver.port, *hostile)
        send(receiver.port, good)
        spans = stored(collector, b"\x02" * 16, 2)
    assert len(spans) == 2
    assert dropped(collector, "malformed") == len(hostile)
    warnings = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(warnings) == 1  # at most one line per reason every 10 seconds
    assert "jaeger_udp (thrift_compact): dropped 1 datagram(s) (malformed): " in warnings[0]
    assert collector.sample("tracemesh_spans_received_total", receiver="jaeger_udp",
                            format="thrift_compact") == 2  # fmt: skip


def test_oversized_datagrams(collector: Collector, start: Callable[..., UdpReceiver]) -> None:
    receiver = start(max_packet=1000)
    big = emit_batch_message(model_spans(b"\x04" * 16, 40), "compact")
    assert len(big) > 1000
    small = emit_batch_message(model_spans(b"\x05" * 16, 1), "compact")
    send(receiver.port, big, small)
    stored(collector, b"\x05" * 16, 1)
    assert dropped(collector, "too_large") == 1
    assert collector.trace(b"\x04" * 16) == []


def test_invalid_spans_in_a_good_datagram_are_rejected(
    collector: Collector, start: Callable[..., UdpReceiver]
) -> None:
    receiver = start()
    batch = ts.Batch(ts.Process("svc"), [
        ts.Span(traceIdLow=9, spanId=0, startTime=1, duration=1),  # zero span id
        ts.Span(traceIdLow=9, spanId=1, operationName="ok", startTime=10**15, duration=1),
    ])  # fmt: skip
    send(receiver.port, ts.encode_message("emitBatch", 0, ts.EmitBatchArgs(batch), "compact"))
    stored(collector, (9).to_bytes(16, "big"), 1)
    labels = {"receiver": "jaeger_udp", "format": "thrift_compact"}
    assert collector.sample("tracemesh_spans_rejected_total", **labels) == 1


def test_full_pipeline_drops_and_counts() -> None:
    collector = Collector(queue_spans=2, flush_interval=30)  # the first batch lingers: queue full
    try:
        receiver = UdpReceiver(collector.pipeline, collector.metrics, host="127.0.0.1", port=0,
                               protocol="compact", kind="jaeger")  # fmt: skip
        collector.call(receiver.start())
        send(receiver.port, emit_batch_message(model_spans(b"\x06" * 16, 2), "compact"))
        wait_until(lambda: collector.pipeline.queued_spans == 2)
        send(receiver.port, emit_batch_message(model_spans(b"\x07" * 16, 2), "compact"))
        wait_until(lambda: dropped(collector, "queue_full") == 1)
        labels = {"receiver": "jaeger_udp", "format": "thrift_compact"}
        assert collector.sample("tracemesh_spans_dropped_total", **labels) == 2
        collector.call(collector.pipeline.stop())
        send(receiver.port, emit_batch_message(model_spans(b"\x08" * 16, 3), "compact"))
        wait_until(lambda: dropped(collector, "shutting_down") == 1)
        assert collector.sample("tracemesh_spans_dropped_total", **labels) == 5
        assert len(collector.call(collector.storage.reader().get_trace(b"\x06" * 16))) == 2
        collector.call(receiver.stop())
    finally:
        collector.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ---- the backlog and the socket, without a network ---------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.batches: list[SpanBatch] = []

    def submit(self, batch: SpanBatch, receiver: str, fmt: str) -> None:
        self.batches.append(batch)


def test_a_full_backlog_pauses_reading_and_stop_drains_it() -> None:
    async def scenario() -> tuple[Recorder, Metrics, list[bool]]:
        sink, metrics = Recorder(), Metrics()
        receiver = UdpReceiver(sink, metrics, host="127.0.0.1", port=0, protocol="compact",
                               kind="jaeger", queue_packets=2)  # fmt: skip
        await receiver.start()
        datagrams = [emit_batch_message(model_spans(bytes([i + 1]) * 16, 1)) for i in range(5)]
        send(receiver.port, *datagrams)  # all in the kernel before the loop looks
        receiver._readable()
        reading = [receiver._reading, len(receiver._backlog) == 2]
        for _ in range(200):  # the consumer drains, resumes reading, reads the rest
            await asyncio.sleep(0.005)
            if len(sink.batches) == 5:
                break
        reading.append(receiver._reading)
        await receiver.stop()
        return sink, metrics, reading

    sink, metrics, reading = asyncio.run(scenario())
    assert reading == [False, True, True]
    assert [b.span_count for b in sink.batches] == [1] * 5
    assert (
        metrics.registry.get_sample_value(
            "tracemesh_udp_packets_received_total",
            {"receiver": "jaeger_udp", "format": "thrift_compact"},
        )
        == 5
    )


def test_kernel_drops_are_counted() -> None:
    async def scenario() -> float | None:
        metrics = Metrics()
        receiver = UdpReceiver(Recorder(), metrics, host="127.0.0.1", port=0, protocol="compact",
                               kind="jaeger")  # fmt: skip
        await receiver.start()
        assert receiver._sock is not None
        receiver._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        receiver._pause()  # as when the backlog is full
        send(receiver.port, *[emit_batch_message(model_spans(b"\x01" * 16, 20))] * 20)
        receiver._resume()
        await asyncio.sleep(0.2)
        # Linux stamps the drop count on datagrams queued after the drops: send one more.
        send(receiver.port, emit_batch_message(model_spans(b"\x02" * 16, 1)))
        await asyncio.sleep(0.2)
        await receiver.stop()
        labels = {"receiver": "jaeger_udp", "format": "thrift_compact"}
        return metrics.registry.get_sample_value(
            DROPPED, {**labels, "reason": "socket_buffer_full"}
        )

    dropped_by_kernel = asyncio.run(scenario())
    assert dropped_by_kernel is not None and dropped_by_kernel > 0


class Refusing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def submit(self, batch: SpanBatch, receiver: str, fmt: str) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "reason", "spans_dropped"),
    [
        (QueueFullError("full"), "queue_full", 0),  # the sink counts those spans itself
        (PipelineClosedError("closed"), "shutting_down", 1),
    ],
)
def test_refusing_sinks(error: Exception, reason: str, spans_dropped: float) -> None:
    metrics = Metrics()
    receiver = UdpReceiver(Refusing(error), metrics, host="127.0.0.1", port=0,
                           protocol="compact", kind="jaeger")  # fmt: skip
    receiver._handle(emit_batch_message(model_spans(b"\x01" * 16, 1)))
    labels = {"receiver": "jaeger_udp", "format": "thrift_compact"}
    assert metrics.registry.get_sample_value(DROPPED, {**labels, "reason": reason}) == 1
    assert metrics.registry.get_sample_value("tracemesh_spans_dropped_total", labels) == (
        spans_dropped
    )


def test_rate_limited_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [100.0]
    monkeypatch.setattr(ratelog.time, "monotonic", lambda: now[0])
    limited = ratelog.RateLimitedLog(jaeger_udp.log, 10.0)
    with caplog.at_level(logging.WARNING, logger="tracemesh.receivers.udp"):
        for _ in range(50):
            limited.warning("malformed", "bad %s", "datagram")
        limited.warning("too_large", "big")
        now[0] += 11
        limited.warning("malformed", "bad %s", "again")
    assert [r.getMessage() for r in caplog.records] == [
        "bad datagram", "big", "bad again (and 49 more like it in the last 11s)",
    ]  # fmt: skip


def test_ports_and_bind_errors() -> None:
    async def scenario() -> None:
        first = UdpReceiver(Recorder(), Metrics(), host="127.0.0.1", port=0, protocol="binary",
                            kind="zipkin")  # fmt: skip
        await first.start()
        assert first.port > 0
        second = UdpReceiver(Recorder(), Metrics(), host="127.0.0.1", port=first.port,
                             protocol="binary", kind="zipkin")  # fmt: skip
        with pytest.raises(OSError, match=f"cannot listen on udp 127.0.0.1:{first.port}"):
            await second.start()
        await first.stop()

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="protocol"):
        UdpReceiver(Recorder(), Metrics(), host="::1", port=0, protocol="json", kind="jaeger")
