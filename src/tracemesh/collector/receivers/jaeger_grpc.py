"""Jaeger gRPC receiver on port 14250: `jaeger.api_v2.CollectorService/PostSpans` and, when given a
strategy source, `jaeger.api_v2.SamplingManager/GetSamplingStrategy`.

Like the OTLP/gRPC receiver, the methods take raw bytes and decode them here, so malformed input
is INVALID_ARGUMENT with our message and a full queue is UNAVAILABLE with RetryInfo. Spans that
parse but cannot be stored (zero ids, negative duration) are dropped and counted in
`tracemesh_spans_rejected`: `PostSpansResponse` has no field to report them in.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError as ProtoDecodeError

from tracemesh.codecs import DecodeError
from tracemesh.codecs.jaeger_proto import DecodedSpans, decode_post_spans
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.codecs.proto.jaeger_sampling_pb2 import (
    SamplingStrategyParameters,
    SamplingStrategyResponse,
)
from tracemesh.collector.pipeline import PipelineClosedError, QueueFullError
from tracemesh.collector.receivers.grpc_server import start_grpc_server
from tracemesh.collector.receivers.otlp_grpc import _retry_trailers
from tracemesh.collector.receivers.otlp_http import OFFLOAD_BYTES
from tracemesh.collector.refusals import Refusals
from tracemesh.collector.sink import BatchSink
from tracemesh.model.batch import SpanBatch
from tracemesh.runtime.metrics import Metrics
from tracemesh.storage.api import StorageError

log = logging.getLogger("tracemesh.receivers.jaeger_grpc")

COLLECTOR_SERVICE = "jaeger.api_v2.CollectorService"
SAMPLING_SERVICE = "jaeger.api_v2.SamplingManager"
RECEIVER = "jaeger_grpc"
FORMAT = "proto"
MiB = 1 << 20
_EMPTY_RESPONSE = b""  # PostSpansResponse has no fields


class StrategySource(Protocol):
    def strategy_proto(self, service: str) -> SamplingStrategyResponse: ...


def _decode(request: bytes) -> tuple[SpanBatch, DecodedSpans]:
    decoded = decode_post_spans(request)
    batch = batch_from_spans(decoded.spans)
    batch.repaired = decoded.repaired
    return batch, decoded


class JaegerGrpcReceiver:
    """Serves Jaeger's collector gRPC API; `port` is the bound port once started (0 asks for any).
    `max_message_bytes` bounds one request (Jaeger's default is 4 MiB)."""

    def __init__(
        self,
        sink: BatchSink,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        sampling: StrategySource | None = None,
        max_message_bytes: int = 4 * MiB,
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self.host = host
        self.port = port
        self._sampling = sampling
        self._max_message = max_message_bytes
        self._server: Any = None
        self._refusals = Refusals(metrics, RECEIVER)

    async def start(self) -> None:
        post_spans = grpc.unary_unary_rpc_method_handler(self._post_spans)  # raw bytes
        handlers = [
            grpc.method_handlers_generic_handler(COLLECTOR_SERVICE, {"PostSpans": post_spans})
        ]
        if self._sampling is not None:
            get_strategy = grpc.unary_unary_rpc_method_handler(self._get_strategy)
            handlers.append(
                grpc.method_handlers_generic_handler(
                    SAMPLING_SERVICE, {"GetSamplingStrategy": get_strategy}
                )
            )
        self._server, self.port = await start_grpc_server(
            handlers, self.host, self.port, self._max_message
        )
        log.info("Jaeger gRPC receiver listening on %s:%d", self.host, self.port)

    async def stop(self, grace: float | None = 5.0) -> None:
        """Stop accepting calls; in-flight calls get `grace` seconds to finish."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def _post_spans(self, request: bytes, context: Any) -> bytes:
        try:
            if len(request) > OFFLOAD_BYTES:
                batch, decoded = await asyncio.to_thread(_decode, request)
            else:
                batch, decoded = _decode(request)
        except DecodeError as exc:
            self._refusals.request(FORMAT, "malformed", str(exc))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))  # raises
        if decoded.rejected:
            self._refusals.spans(FORMAT, decoded.rejected, decoded.error)
        try:
            written = self._sink.submit(batch, RECEIVER, FORMAT)
            if written is not None:
                await written
        except (QueueFullError, PipelineClosedError) as exc:
            self._failed("queue_full" if isinstance(exc, QueueFullError) else "shutting_down")
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc), _retry_trailers(str(exc)))
        except StorageError as exc:  # the storage that acknowledges (Kafka) did not
            self._failed("storage_unavailable")
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc), _retry_trailers(str(exc)))
        return _EMPTY_RESPONSE

    async def _get_strategy(self, request: bytes, context: Any) -> bytes:
        assert self._sampling is not None
        params = SamplingStrategyParameters()
        try:
            params.ParseFromString(request)
        except (ProtoDecodeError, RuntimeError, ValueError) as exc:
            self._metrics.sampling_requests.labels("grpc", "INVALID_ARGUMENT").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid request: {exc}")
        response = self._sampling.strategy_proto(params.serviceName)
        self._metrics.sampling_requests.labels("grpc", "OK").inc()
        return bytes(response.SerializeToString())

    def _failed(self, reason: str) -> None:
        self._refusals.request(FORMAT, reason)
