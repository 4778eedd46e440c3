"""Jaeger collector's HTTP port (14268): `POST /api/traces` takes a Thrift `Batch` (binary protocol,
no message envelope) as jaeger-client's HTTP senders post it, and `GET /api/sampling?service=`
serves sampling strategies when a strategy source is given.

`POST /api/traces` answers `202 Accepted` with an empty body, as Jaeger does. Errors are plain
text saying what was wrong: 400 for a Content-Type other than `application/x-thrift` or
`application/vnd.apache.thrift.binary` (parameters ignored), an unknown Content-Encoding or a body
that is not a Thrift Batch; 413 for a body over the limit (checked while it streams in and again
while it is gunzipped); 503 with Retry-After when the pipeline is full or stopping (Jaeger answers
500; clients that retry do better with 503). Spans inside a good Batch that no store could index
are dropped and counted in `tracemesh_spans_rejected`; the rest are stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tracemesh.codecs import DecodeError
from tracemesh.codecs.jaeger_thrift import decode_batch
from tracemesh.codecs.otlp_proto import DecodedBatch
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
from tracemesh.runtime.metrics import Metrics
from tracemesh.storage.api import StorageError

log = logging.getLogger("tracemesh.receivers.jaeger_http")

RECEIVER = "jaeger_http"
FORMAT = "thrift_binary"
TRACES_PATH, SAMPLING_PATH = "/api/traces", "/api/sampling"
THRIFT_TYPES = frozenset((b"application/x-thrift", b"application/vnd.apache.thrift.binary"))
SERVICE_ONCE = "'service' parameter must be provided once\n"


class StrategySource(Protocol):
    """What `/api/sampling` asks (tracemesh.sampling.strategies.StrategyStore is one)."""

    def strategy_json(self, service: str) -> dict[str, object]: ...


def build_app(
    sink: BatchSink,
    metrics: Metrics,
    *,
    max_body_bytes: int,
    sampling: StrategySource | None = None,
) -> Starlette:
    receiver = JaegerHttpReceiver(sink, metrics, max_body_bytes=max_body_bytes)
    routes = [
        Route(TRACES_PATH, receiver.traces, methods=["POST"]),
        Route(SAMPLING_PATH, _sampling_endpoint(sampling, metrics), methods=["GET"]),
    ]
    return Starlette(routes=routes)


class JaegerHttpReceiver:
    """The `POST /api/traces` handler behind `build_app`."""

    def __init__(self, sink: BatchSink, metrics: Metrics, *, max_body_bytes: int) -> None:
        self._sink = sink
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._refusals = Refusals(metrics, RECEIVER)

    async def traces(self, request: Request) -> Response:
        fmt = "unknown"
        try:
            ctype, encoding, length = content_headers(request.scope)
            if ctype not in THRIFT_TYPES:
                shown = ctype.decode("latin-1")[:100] or "none"
                raise Refused(
                    400, "unsupported_media_type",
                    f"unsupported Content-Type {shown!r}; use application/x-thrift or "
                    "application/vnd.apache.thrift.binary (a binary-protocol jaeger.thrift Batch)",
                )  # fmt: skip
            fmt = FORMAT
            wbits = DECOMPRESSORS.get(encoding) if encoding not in (b"", b"identity") else 0
            if wbits is None:
                shown = encoding.decode("latin-1")[:100]
                raise Refused(400, "unsupported_encoding",
                               f"unsupported Content-Encoding {shown!r}; use gzip")  # fmt: skip
            body = await read_body(request, length, self._max_body)
            # Compressed bodies inflate ~5-10x, so they count as large sooner.
            if len(body) > (OFFLOAD_BYTES // 8 if wbits else OFFLOAD_BYTES):
                decoded = await asyncio.to_thread(self._unpack, body, wbits)
            else:
                decoded = self._unpack(body, wbits)
            await self._submit(decoded)
        except Refused as refused:
            self._refusals.request(fmt, refused.reason, refused.message)
            return _refusal(refused)
        except ClientDisconnect:
            self._refusals.request(fmt, "disconnected")
            return Response(status_code=400)  # nobody is listening
        return Response(status_code=202)

    def _unpack(self, body: bytes, wbits: int) -> DecodedBatch:
        """Inflate and decode; pure, so large bodies can run in a worker thread."""
        if wbits:
            body = decompress(body, wbits, self._max_body)
        try:
            return decode_batch(body, "binary")
        except DecodeError as exc:
            raise Refused(400, "malformed", f"Unable to process request body: {exc}") from None

    async def _submit(self, decoded: DecodedBatch) -> None:
        try:
            written = self._sink.submit(decoded.batch, RECEIVER, FORMAT)
            if written is not None:
                await written
        except QueueFullError as exc:
            raise Refused(503, "queue_full", str(exc)) from None
        except PipelineClosedError as exc:
            raise Refused(503, "shutting_down", str(exc)) from None
        except StorageError as exc:  # the storage that acknowledges (Kafka) did not
            raise Refused(503, "storage_unavailable", str(exc)) from None
        # Counted only once accepted: a refused request comes back and would count twice.
        if decoded.rejected:
            self._refusals.spans(FORMAT, decoded.rejected, decoded.error)


def _refusal(refused: Refused) -> Response:
    response = PlainTextResponse(refused.message + "\n", status_code=refused.status)
    if refused.status == 503:
        response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
    elif refused.status == 413:
        # The rest of the body may be unread: have the client reconnect rather than read it.
        response.headers["connection"] = "close"
    return response


# ---- GET /api/sampling: the hook for remote sampling -------------------------------------------


def _sampling_endpoint(
    sampling: StrategySource | None, metrics: Metrics
) -> Callable[[Request], Awaitable[Response]]:
    """Jaeger v1 collectors serve client sampling strategies here too (proto-JSON, the same
    object as the agent's `/sampling`). Without a strategy source the path answers 404."""

    async def handle(request: Request) -> Response:
        if sampling is None:
            response: Response = PlainTextResponse(
                "sampling strategies are not served on this port\n", status_code=404
            )
        else:
            services = request.query_params.getlist("service")
            if len(services) != 1:
                response = PlainTextResponse(SERVICE_ONCE, status_code=400)
            else:
                body = orjson.dumps(sampling.strategy_json(services[0]))
                response = Response(body, media_type="application/json")
        metrics.sampling_requests.labels("api_sampling", str(response.status_code)).inc()
        return response

    return handle
