"""OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export` on grpc.aio.

The method is registered with no request deserializer, so the handler gets the raw request bytes
and decodes them itself: a malformed request becomes INVALID_ARGUMENT with our message (not a
generic gRPC INTERNAL), and the fast path (`batch_from_request`) never builds attribute dicts.
gzip (and deflate) from clients is undone by gRPC before the handler runs; the message size limit
applies to the decompressed message, so a compressed bomb ends in RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from tracemesh.codecs import DecodeError
from tracemesh.codecs.otlp_proto import DecodedBatch, decode_request
from tracemesh.codecs.protowire import encode_status
from tracemesh.collector.pipeline import PipelineClosedError, QueueFullError
from tracemesh.collector.receivers.grpc_server import start_grpc_server
from tracemesh.collector.receivers.otlp_http import OFFLOAD_BYTES
from tracemesh.collector.refusals import Refusals
from tracemesh.collector.sink import BatchSink
from tracemesh.runtime.metrics import Metrics
from tracemesh.storage.api import StorageError

log = logging.getLogger("tracemesh.receivers.otlp_grpc")

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
RECEIVER = "otlp_grpc"
FORMAT = "proto"
MiB = 1 << 20
RETRY_DELAY_SECONDS = 1

_UNAVAILABLE = 14  # google.rpc.Code
_RETRY_INFO_URL = "type.googleapis.com/google.rpc.RetryInfo"
# google.rpc.RetryInfo{retry_delay: Duration{seconds: RETRY_DELAY_SECONDS}}, hand-encoded.
_RETRY_INFO = b"\x0a\x02\x08" + bytes([RETRY_DELAY_SECONDS])
_EMPTY_RESPONSE = b""  # ExportTraceServiceResponse with partial_success unset


def _retry_trailers(message: str) -> tuple[tuple[str, bytes], ...]:
    """Backpressure hints in both places clients look: OTel Python reads the bare RetryInfo
    trailer, Go and Java read RetryInfo from the status details (grpc-status-details-bin)."""
    status = encode_status(_UNAVAILABLE, message, [(_RETRY_INFO_URL, _RETRY_INFO)])
    return (("google.rpc.retryinfo-bin", _RETRY_INFO), ("grpc-status-details-bin", status))


def _decode(request: bytes) -> DecodedBatch:
    return decode_request(request)


class OtlpGrpcReceiver:
    """Serves OTLP/gRPC trace export; `port` is the bound port once started (0 asks for any)."""

    def __init__(
        self,
        pipeline: BatchSink,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        max_message_bytes: int = 64 * MiB,
    ) -> None:
        self._pipeline = pipeline
        self._metrics = metrics
        self.host = host
        self.port = port
        self._max_message = max_message_bytes
        self._server: Any = None
        self._refusals = Refusals(metrics, RECEIVER)

    async def start(self) -> None:
        handler = grpc.unary_unary_rpc_method_handler(self._export)  # raw bytes in and out
        handlers = [grpc.method_handlers_generic_handler(SERVICE, {"Export": handler})]
        self._server, self.port = await start_grpc_server(
            handlers, self.host, self.port, self._max_message
        )
        log.info("OTLP/gRPC receiver listening on %s:%d", self.host, self.port)

    async def stop(self, grace: float | None = 5.0) -> None:
        """Stop accepting calls; in-flight calls get `grace` seconds to finish."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def _export(self, request: bytes, context: Any) -> bytes:
        try:
            if len(request) > OFFLOAD_BYTES:
                decoded = await asyncio.to_thread(_decode, request)
            else:
                decoded = _decode(request)
        except DecodeError as exc:
            self._refusals.request(FORMAT, "malformed", str(exc))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))  # raises
        try:
            written = self._pipeline.submit(decoded.batch, RECEIVER, FORMAT)
            if written is not None:
                await written
        except QueueFullError as exc:
            self._failed("queue_full")
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc), _retry_trailers(str(exc)))
        except PipelineClosedError as exc:
            self._failed("shutting_down")
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc), _retry_trailers(str(exc)))
        except StorageError as exc:  # the storage that acknowledges (Kafka) did not
            self._failed("storage_unavailable")
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc), _retry_trailers(str(exc)))
        if not decoded.rejected:
            return _EMPTY_RESPONSE
        self._refusals.spans(FORMAT, decoded.rejected, decoded.error)
        partial = ExportTracePartialSuccess(
            rejected_spans=decoded.rejected, error_message=decoded.error
        )
        return bytes(ExportTraceServiceResponse(partial_success=partial).SerializeToString())

    def _failed(self, reason: str) -> None:
        self._refusals.request(FORMAT, reason)
