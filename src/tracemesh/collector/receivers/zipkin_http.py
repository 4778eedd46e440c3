"""Zipkin receiver (port 9411): `POST /api/v2/spans` (JSON or proto3) and `POST /api/v1/spans`
(JSON or Thrift), as a Starlette app.

Success is `202 Accepted` with an empty body, which is what Zipkin reporters (Envoy included)
check for. Errors are plain text saying what was wrong: 400 undecodable body or bad span (the
whole request is refused, as by Zipkin and the OpenTelemetry Collector), 413 body over the limit
(checked while it streams in, and again while it is gunzipped), 415 a content type or encoding
this endpoint does not take, 503 with Retry-After when the pipeline is full or stopping. A request
without a Content-Type is read as JSON, as Zipkin's server and the Collector read it.

The body-size, content-header and gzip helpers are the OTLP/HTTP receiver's, so both ports refuse
the same way; large bodies are decoded in a worker thread for the same reason as there.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from tracemesh.codecs import DecodeError
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.codecs.zipkin_json import batch_from_json_v1, batch_from_json_v2
from tracemesh.codecs.zipkin_proto import batch_from_proto
from tracemesh.collector.pipeline import PipelineClosedError, QueueFullError
from tracemesh.collector.receivers.otlp_http import (
    DECOMPRESSORS,
    OFFLOAD_BYTES,
    RETRY_AFTER_SECONDS,
    Refused,
    content_headers,
    decompress,
    read_body,
)
from tracemesh.collector.refusals import Refusals
from tracemesh.collector.sink import BatchSink
from tracemesh.model.batch import SpanBatch
from tracemesh.runtime.metrics import Metrics
from tracemesh.storage.api import StorageError

log = logging.getLogger("tracemesh.receivers.zipkin")

RECEIVER = "zipkin"
V2_PATH, V1_PATH = "/api/v2/spans", "/api/v1/spans"
MiB = 1 << 20
JSON, PROTOBUF, THRIFT = b"application/json", b"application/x-protobuf", b"application/x-thrift"
# Media type -> metric format label, per path. No Content-Type at all means JSON.
_V2_FORMATS = {JSON: "json_v2", PROTOBUF: "proto_v2", b"": "json_v2"}
_V1_FORMATS = {
    JSON: "json_v1",
    THRIFT: "thrift_v1",
    b"application/vnd.apache.thrift.binary": "thrift_v1",
    b"": "json_v1",
}
_ACCEPTED = {V2_PATH: "application/json or application/x-protobuf",
             V1_PATH: "application/json or application/x-thrift"}  # fmt: skip


def decode(fmt: str, body: bytes) -> SpanBatch:
    """The body of one request as rows; DecodeError when it is not valid `fmt`."""
    if fmt == "json_v2":
        return batch_from_json_v2(body)
    if fmt == "proto_v2":
        return batch_from_proto(body)
    if fmt == "json_v1":
        return batch_from_json_v1(body)
    try:  # written separately; imported here so this module loads without it
        from tracemesh.codecs.zipkin_thrift import spans_from_zipkin_thrift
    except ImportError:
        raise Refused(415, "unsupported_media_type", "Zipkin Thrift is not available") from None
    return batch_from_spans(spans_from_zipkin_thrift(body, "binary"))


class ZipkinHttpReceiver:
    """The request handler behind `build_app`."""

    def __init__(self, sink: BatchSink, metrics: Metrics, *, max_body_bytes: int) -> None:
        self._sink = sink
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._refusals = Refusals(metrics, RECEIVER)

    async def v2(self, request: Request) -> Response:
        return await self._handle(request, _V2_FORMATS)

    async def v1(self, request: Request) -> Response:
        return await self._handle(request, _V1_FORMATS)

    async def _handle(self, request: Request, formats: dict[bytes, str]) -> Response:
        fmt = "unknown"
        try:
            ctype, encoding, length = content_headers(request.scope)
            fmt = formats.get(ctype, "unknown")
            if fmt == "unknown":
                shown = ctype.decode("latin-1")[:100]
                raise Refused(
                    415, "unsupported_media_type",
                    f"unsupported Content-Type {shown!r}; use {_ACCEPTED[request.url.path]}",
                )  # fmt: skip
            wbits = DECOMPRESSORS.get(encoding) if encoding not in (b"", b"identity") else 0
            if wbits is None:
                shown = encoding.decode("latin-1")[:100]
                raise Refused(415, "unsupported_encoding",
                               f"unsupported Content-Encoding {shown!r}; use gzip")  # fmt: skip
            body = await read_body(request, length, self._max_body)
            # Compressed bodies inflate ~5-10x, so they count as large sooner.
            if len(body) > (OFFLOAD_BYTES // 8 if wbits else OFFLOAD_BYTES):
                batch = await asyncio.to_thread(self._unpack, body, wbits, fmt)
            else:
                batch = self._unpack(body, wbits, fmt)
            await self._submit(batch, fmt)
        except Refused as refused:
            self._refusals.request(fmt, refused.reason, refused.message)
            return _refusal(refused)
        except ClientDisconnect:
            self._refusals.request(fmt, "disconnected")
            return Response(status_code=400)  # nobody is listening
        return Response(status_code=202)

    def _unpack(self, body: bytes, wbits: int, fmt: str) -> SpanBatch:
        """Inflate and decode; pure, so large bodies can run in a worker thread."""
        if wbits:
            body = decompress(body, wbits, self._max_body)
        try:
            return decode(fmt, body)
        except DecodeError as exc:
            raise Refused(400, "malformed", f"invalid Zipkin {fmt} body: {exc}") from None

    async def _submit(self, batch: SpanBatch, fmt: str) -> None:
        try:
            written = self._sink.submit(batch, RECEIVER, fmt)
            if written is not None:
                await written
        except QueueFullError as exc:
            raise Refused(503, "queue_full", str(exc)) from None
        except PipelineClosedError as exc:
            raise Refused(503, "shutting_down", str(exc)) from None
        except StorageError as exc:  # the storage that acknowledges (Kafka) did not
            raise Refused(503, "storage_unavailable", str(exc)) from None


def _refusal(refused: Refused) -> Response:
    headers = {}
    if refused.status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    elif refused.status == 413:
        # The rest of the body may be unread: ask the client to reconnect rather than read it.
        headers["Connection"] = "close"
    return Response(refused.message + "\n", refused.status, headers, "text/plain")


def build_app(sink: BatchSink, metrics: Metrics, *, max_body_bytes: int = 32 * MiB) -> Starlette:
    """The Zipkin HTTP receiver as an ASGI app (serve it with uvicorn, or mount it)."""
    receiver = ZipkinHttpReceiver(sink, metrics, max_body_bytes=max_body_bytes)
    return Starlette(
        routes=[
            Route(V2_PATH, receiver.v2, methods=["POST"]),
            Route(V1_PATH, receiver.v1, methods=["POST"]),
        ]
    )
