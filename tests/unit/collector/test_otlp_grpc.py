"""OTLP/gRPC receiver over real loopback sockets: the OpenTelemetry SDK exporter (plain and gzip),
hostile requests from a raw channel, partial success, backpressure; plus property tests of the
protobuf decode path the receiver runs."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.unit.codecs.strategies import spans as span_strategy
from tests.unit.collector.harness import (
    Collector,
    MiB,
    sdk_spans,
    span_ids_of,
    trace_id_of,
    valid_request,
)
from tracemesh.codecs import DecodeError
from tracemesh.codecs.otlp_proto import (
    DecodedBatch,
    batch_from_request,
    decode_request,
    parse_request,
    request_from_spans,
)
from tracemesh.collector.receivers import otlp_grpc
from tracemesh.collector.receivers.otlp_grpc import OtlpGrpcReceiver


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def assert_still_serving(collector: Collector) -> None:
    trace_id = os.urandom(16)
    assert collector.export(valid_request(2, trace_id).SerializeToString(), timeout=10) == b""
    assert len(collector.trace(trace_id)) == 2


# ---- the real OpenTelemetry exporter ------------------------------------------------------------


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_the_otel_sdk_exporter_delivers_every_span(
    collector: Collector, compression: grpc.Compression
) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"127.0.0.1:{collector.grpc.port}", insecure=True, compression=compression
    )
    spans = sdk_spans(200)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    stored = collector.trace(trace_id_of(spans))
    assert sorted(s.span_id for s in stored) == span_ids_of(spans)
    child = next(s for s in stored if s.name == "op-3")
    assert child.attributes["attr.9"] == "x" * 10
    assert child.events[0].name == "tick"
    assert child.resource.service_name == "shop"
    labels = {"receiver": "otlp_grpc", "format": "proto"}
    assert collector.sample("tracemesh_spans_received_total", **labels) == 200


def test_gzip_from_the_exporter_really_is_compressed_on_the_wire(collector: Collector) -> None:
    """Count the bytes a relay forwards: gzip must shrink them, and the server must accept it."""
    relay = ByteCountingRelay(collector.grpc.port)
    try:
        sent: dict[grpc.Compression, int] = {}
        for compression in (grpc.Compression.NoCompression, grpc.Compression.Gzip):
            exporter = OTLPSpanExporter(
                endpoint=f"127.0.0.1:{relay.port}", insecure=True, compression=compression
            )
            before = relay.bytes
            spans = sdk_spans(300, attr_size=200)
            assert exporter.export(spans) is SpanExportResult.SUCCESS
            exporter.shutdown()
            sent[compression] = relay.bytes - before
            assert len(collector.trace(trace_id_of(spans))) == 300
        assert sent[grpc.Compression.Gzip] * 5 < sent[grpc.Compression.NoCompression]
    finally:
        relay.close()


class ByteCountingRelay:
    """A TCP relay on loopback that counts client-to-server bytes (one thread per direction)."""

    def __init__(self, target_port: int) -> None:
        self.bytes = 0
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(65536):
                if count:
                    self.bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


# ---- hostile input: each gets its error and the server keeps serving ---------------------------


@pytest.mark.parametrize(
    "body",
    [
        valid_request(50).SerializeToString()[:-7],  # truncated
        random.Random(7).randbytes(4096),
        b"\x0a\xff\xff\xff\xff\x0f",  # a length far past the end
    ],
    ids=["truncated", "random", "bad-length"],
)
def test_malformed_protobuf_is_invalid_argument(collector: Collector, body: bytes) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        collector.export(body, timeout=10)
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid OTLP protobuf" in raised.value.details()
    labels = {"receiver": "otlp_grpc", "format": "proto", "reason": "malformed"}
    assert collector.sample("tracemesh_receiver_requests_failed_total", **labels) == 1
    assert_still_serving(collector)


def test_a_message_over_the_limit_is_resource_exhausted() -> None:
    collector = Collector(max_message_bytes=1 * MiB)
    try:
        request = valid_request(1)
        request.resource_spans[0].scope_spans[0].spans[0].name = "n" * (2 * MiB)
        with pytest.raises(grpc.RpcError) as raised:
            collector.export(request.SerializeToString(), timeout=10)
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert_still_serving(collector)
    finally:
        collector.close()


def test_a_gzip_bomb_is_refused_on_its_decompressed_size() -> None:
    collector = Collector(max_message_bytes=1 * MiB)
    try:
        request = valid_request(1)
        request.resource_spans[0].scope_spans[0].spans[0].name = "a" * (50 * MiB)
        with pytest.raises(grpc.RpcError) as raised:
            collector.export(
                request.SerializeToString(), compression=grpc.Compression.Gzip, timeout=20
            )
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in raised.value.details()
        assert_still_serving(collector)
    finally:
        collector.close()


def test_invalid_spans_are_rejected_with_partial_success_and_the_rest_stored(
    collector: Collector,
) -> None:
    request = valid_request(2, trace_id=b"\x05" * 16)
    spans = request.resource_spans[0].scope_spans[0].spans
    bad = [
        dict(trace_id=bytes(16), span_id=b"\x01" * 8),  # all-zero trace id
        dict(trace_id=b"\x05" * 16, span_id=bytes(8)),  # all-zero span id
        dict(trace_id=b"\x05" * 5, span_id=b"\x02" * 8),  # wrong length
        dict(trace_id=b"\x05" * 16, span_id=b"\x03" * 7),
    ]
    for ids in bad:
        spans.add(name="bad", start_time_unix_nano=10, end_time_unix_nano=20, **ids)
    spans.add(  # ends before it starts: kept as Jaeger does, its end corrected
        name="negative", trace_id=b"\x05" * 16, span_id=b"\x04" * 8,
        start_time_unix_nano=2_000, end_time_unix_nano=1_000,
    )  # fmt: skip
    response = ExportTraceServiceResponse.FromString(
        collector.export(request.SerializeToString(), timeout=10)
    )
    assert response.partial_success.rejected_spans == 4
    assert "invalid trace id" in response.partial_success.error_message
    stored = collector.trace(b"\x05" * 16)
    assert [s.name for s in stored] == ["s0", "s1", "negative"]
    assert (stored[2].start_ns, stored[2].end_ns) == (2_000, 2_000)
    assert stored[2].warnings == [
        "end time was 1000 ns before the start time; end set to the start"
    ]
    labels = {"receiver": "otlp_grpc", "format": "proto"}
    assert collector.sample("tracemesh_spans_rejected_total", **labels) == 4
    assert collector.sample("tracemesh_spans_received_total", **labels) == 3
    corrected = {**labels, "correction": "negative_duration"}
    assert collector.sample("tracemesh_spans_corrected_total", **corrected) == 1


def test_an_empty_request_succeeds(collector: Collector) -> None:
    assert collector.export(b"", timeout=10) == b""
    assert ExportTraceServiceResponse.FromString(b"").HasField("partial_success") is False


def test_a_one_megabyte_attribute_value_is_accepted(collector: Collector) -> None:
    request = valid_request(1, trace_id=b"\x09" * 16)
    attr = request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="blob")
    attr.value.string_value = "z" * MiB
    assert collector.export(request.SerializeToString(), timeout=10) == b""
    (span,) = collector.trace(b"\x09" * 16)
    assert span.attributes["blob"] == "z" * MiB


def test_large_requests_are_decoded_off_the_event_loop(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding 16 MB takes a good part of a second: on the loop it would stall every client."""
    threads: list[str] = []

    def spy(request: bytes) -> DecodedBatch:
        threads.append(threading.current_thread().name)
        return decode_request(request)

    monkeypatch.setattr(otlp_grpc, "decode_request", spy)
    small = valid_request(1, b"\x0a" * 16)
    big = valid_request(1, b"\x0b" * 16)
    big.resource_spans[0].scope_spans[0].spans[0].name = "n" * (2 * MiB)
    for request in (small, big):
        assert collector.export(request.SerializeToString(), timeout=10) == b""
    assert threads[0] == "collector"  # the loop's thread
    assert threads[1] != "collector"
    assert len(collector.trace(b"\x0b" * 16)) == 1


# ---- backpressure -------------------------------------------------------------------------------


def full_collector() -> Collector:
    """A collector whose 10-span queue holds spans for a minute unless flushed."""
    return Collector(queue_spans=10, flush_interval=60.0)


def test_a_full_queue_is_unavailable_with_retry_info() -> None:
    collector = full_collector()
    try:
        collector.export(valid_request(6).SerializeToString(), timeout=10)
        with pytest.raises(grpc.RpcError) as raised:
            collector.export(valid_request(6).SerializeToString(), timeout=10)
        error = raised.value
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert "queue full" in error.details()
        trailers = dict(error.trailing_metadata())
        retry = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
        assert retry.retry_delay.seconds == 1
        status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert status.details[0].Unpack(retry)
        assert retry.retry_delay.seconds == 1
        labels = {"receiver": "otlp_grpc", "format": "proto"}
        assert collector.sample("tracemesh_spans_dropped_total", **labels) == 6
        collector.flush()
        assert collector.export(valid_request(6).SerializeToString(), timeout=10) == b""
    finally:
        collector.close()


def test_the_otel_sdk_honours_retry_info_and_delivers_once_there_is_room() -> None:
    collector = full_collector()
    try:
        collector.export(valid_request(6).SerializeToString(), timeout=10)
        exporter = OTLPSpanExporter(
            endpoint=f"127.0.0.1:{collector.grpc.port}", insecure=True, timeout=10
        )
        spans = sdk_spans(5)
        threading.Timer(0.3, collector.flush).start()  # room appears while the SDK waits
        started = time.monotonic()
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert time.monotonic() - started >= 0.7  # it waited ~RetryInfo's 1 s, not 0
        exporter.shutdown()
        assert len(collector.trace(trace_id_of(spans))) == 5
    finally:
        collector.close()


def test_a_stopping_pipeline_answers_unavailable(collector: Collector) -> None:
    collector.call(collector.pipeline.stop())
    with pytest.raises(grpc.RpcError) as raised:
        collector.export(valid_request(1).SerializeToString(), timeout=10)
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE


# ---- lifecycle ----------------------------------------------------------------------------------


def test_port_zero_reports_the_bound_port_and_a_busy_port_fails_loudly(
    collector: Collector,
) -> None:
    assert collector.grpc.port > 0
    other = OtlpGrpcReceiver(
        collector.pipeline, collector.metrics, host="127.0.0.1", port=collector.grpc.port
    )
    with pytest.raises(OSError, match="cannot listen"):
        collector.call(other.start())


# ---- properties of the decode path the receiver runs --------------------------------------------


@settings(max_examples=300)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_nothing_but_decode_error(data: bytes) -> None:
    try:
        decoded = batch_from_request(parse_request(data))
    except DecodeError:
        return
    assert decoded.rejected >= 0


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=400), st.data())
def test_corrupted_valid_requests_raise_nothing_but_decode_error(
    noise: bytes, data: st.DataObject
) -> None:
    wire = bytearray(valid_request(5).SerializeToString())
    at = data.draw(st.integers(0, len(wire)))
    mode = data.draw(st.sampled_from(["insert", "overwrite", "truncate"]))
    if mode == "insert":
        wire[at:at] = noise
    elif mode == "overwrite":
        wire[at : at + len(noise)] = noise
    else:
        del wire[at:]
    with contextlib.suppress(DecodeError):
        batch_from_request(parse_request(bytes(wire)))


def is_valid(span: trace_pb2.Span) -> bool:
    """The OTLP rules the receiver enforces, written independently of the codec."""
    return (
        len(span.trace_id) in (8, 16)
        and any(span.trace_id)
        and len(span.span_id) == 8
        and any(span.span_id)
        and len(span.parent_span_id) in (0, 8)
        and span.start_time_unix_nano > 0
    )  # an end before the start is corrected by `collector.admission`, not refused


id_bytes = st.sampled_from([0, 5, 8, 16]).flatmap(
    lambda n: st.binary(min_size=n, max_size=n) | st.just(bytes(n))
)


@st.composite
def mixed_requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    """Generated spans, some broken: bad or zero ids, negative durations, no start time."""
    request = request_from_spans(draw(st.lists(span_strategy(), min_size=1, max_size=4)))
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                if draw(st.booleans()):
                    span.trace_id = draw(id_bytes)
                if draw(st.booleans()):
                    span.span_id = draw(id_bytes)
                if draw(st.booleans()):
                    span.end_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                if draw(st.integers(0, 9)) == 0:
                    span.start_time_unix_nano = 0
    return request


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_requests())
def test_every_valid_span_is_accepted_intact_and_every_invalid_one_counted(
    request: ExportTraceServiceRequest,
) -> None:
    sent = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    valid = [s for s in sent if is_valid(s)]
    decoded = batch_from_request(parse_request(request.SerializeToString()))
    rows = [row for group in decoded.batch.groups for row in group.rows]
    assert decoded.rejected == len(sent) - len(valid)
    assert bool(decoded.error) == bool(decoded.rejected)
    assert len(rows) == len(valid)
    for row, span in zip(rows, valid, strict=True):
        assert row.span_id == span.span_id
        assert row.trace_id[-len(span.trace_id) :] == span.trace_id and len(row.trace_id) == 16
        assert (row.start_ns, row.end_ns, row.name) == (
            span.start_time_unix_nano, span.end_time_unix_nano, span.name,
        )  # fmt: skip
        back = trace_pb2.Span.FromString(row.raw)
        back.trace_id = span.trace_id  # a 64-bit id is widened on ingest; all else is unchanged
        assert back == span


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_requests())
def test_over_the_wire_the_response_and_storage_agree_with_the_rules(
    shared_collector: Collector, request: ExportTraceServiceRequest
) -> None:
    sent = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    response = ExportTraceServiceResponse.FromString(
        shared_collector.export(request.SerializeToString(), timeout=10)
    )
    rejected = len(sent) - sum(map(is_valid, sent))
    assert response.partial_success.rejected_spans == rejected
    for span in filter(is_valid, sent):
        trace_id = span.trace_id.rjust(16, b"\0")
        assert span.span_id in {s.span_id for s in shared_collector.trace(trace_id)}


@pytest.fixture(scope="module")
def shared_collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()
