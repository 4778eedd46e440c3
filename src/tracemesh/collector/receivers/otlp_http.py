"""OTLP/HTTP receiver: `POST /v1/traces` with protobuf or JSON bodies, as a plain ASGI app.

Plain ASGI rather than a framework route: this is the only endpoint, and owning the receive loop
lets the size limit apply while the body streams in (and again after gunzip), so an oversized
body is refused without ever being buffered. Status codes follow the OTLP spec: 200 (with
`partial_success` when spans were rejected), 400 bad data, 413 too large, 415 unsupported type or
encoding, 405 wrong method, 404 other paths, 503 + Retry-After when the queue is full (OTLP
clients retry 503).
Every 4xx/5xx body is a `google.rpc.Status`, in the request's encoding.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Sequence

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from tracemesh.codecs import DecodeError
from tracemesh.codecs.otlp_json import decode_json
from tracemesh.codecs.otlp_proto import DecodedBatch, batch_from_request, decode_request
from tracemesh.codecs.protowire import encode_status
from tracemesh.collector.pipeline import PipelineClosedError, QueueFullError
from tracemesh.collector.refusals import Refusals
from tracemesh.collector.sink import BatchSink
from tracemesh.runtime.metrics import Metrics
from tracemesh.storage.api import StorageError

log = logging.getLogger("tracemesh.receivers.otlp_http")

RECEIVER = "otlp_http"
TRACES_PATH = "/v1/traces"
MiB = 1 << 20
RETRY_AFTER_SECONDS = 1
# Bodies above this (~2000 spans, >15 ms of decoding) are decoded in a worker thread, so one big
# request does not stall every other connection on the event loop for its whole decode.
OFFLOAD_BYTES = 1 * MiB

PROTOBUF = b"application/x-protobuf"
JSON = b"application/json"
_FORMATS = {PROTOBUF: "proto", JSON: "json"}
_GZIP, _ZLIB = 31, 15  # zlib wbits for the gzip and zlib ("deflate" in HTTP) wrappers
DECOMPRESSORS = {b"gzip": _GZIP, b"x-gzip": _GZIP, b"deflate": _ZLIB}
_INFLATE_STEP = 256 * 1024

# gRPC codes carried in Status.code; the spec lets clients ignore them, they help debugging.
_GRPC_CODE = {400: 3, 404: 5, 405: 12, 413: 8, 415: 3, 503: 14}


class Refused(Exception):
    """Ends a request with an error status; `reason` labels requests_failed."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.ctype = b""  # the request's media type once known: the error body is encoded in it


class _Disconnected(Exception):
    """The client went away before sending the whole body."""


class OtlpHttpApp:
    """The ASGI application; see `build_app`."""

    def __init__(self, pipeline: BatchSink, metrics: Metrics, *, max_body_bytes: int) -> None:
        self._pipeline = pipeline
        self._metrics = metrics
        self._max_body = max_body_bytes
        self._refusals = Refusals(metrics, RECEIVER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            ctype, response = await self._handle(scope, receive)
        except Refused as refused:
            self._refusals.request(
                _FORMATS.get(refused.ctype, "unknown"), refused.reason, refused.message
            )
            await self._refuse(send, refused)
        except _Disconnected:
            self._refusals.request("unknown", "disconnected")
        else:
            await _respond(send, 200, ctype, response)

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[bytes, bytes]:
        """Everything up to the success body; each check raises `Refused` with its status."""
        if scope["path"] != TRACES_PATH:
            raise Refused(404, "not_found", f"no such path {scope['path'][:200]!r}; use /v1/traces")
        if scope["method"] != "POST":
            raise Refused(405, "method_not_allowed", f"{scope['method']} not allowed; use POST")
        ctype, encoding, length = content_headers(scope)
        fmt = _FORMATS.get(ctype)
        if fmt is None:
            shown = ctype.decode("latin-1")[:100] or "none"
            raise Refused(
                415, "unsupported_media_type",
                f"unsupported Content-Type {shown!r}; "
                "use application/x-protobuf or application/json",
            )  # fmt: skip
        try:
            wbits = DECOMPRESSORS.get(encoding) if encoding not in (b"", b"identity") else 0
            if wbits is None:
                raise Refused(
                    415, "unsupported_encoding",
                    f"unsupported Content-Encoding {encoding.decode('latin-1')[:100]!r}; use gzip",
                )  # fmt: skip
            body = await self._read_body(receive, length)
            # Compressed bodies inflate ~5-10x, so they count as large sooner.
            if len(body) > (OFFLOAD_BYTES // 8 if wbits else OFFLOAD_BYTES):
                decoded = await asyncio.to_thread(self._unpack, body, wbits, fmt)
            else:
                decoded = self._unpack(body, wbits, fmt)
            await self._submit(decoded, fmt)
        except Refused as refused:
            refused.ctype = ctype
            raise
        return ctype, _success_body(decoded, ctype)

    async def _read_body(self, receive: Receive, length: int | None) -> bytes:
        limit = self._max_body
        if length is not None and length > limit:
            raise Refused(
                413, "too_large", f"body of {length} bytes exceeds the {limit}-byte limit"
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise Refused(413, "too_large", f"body exceeds the {limit}-byte limit")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _unpack(self, body: bytes, wbits: int, fmt: str) -> DecodedBatch:
        """Inflate and decode; pure, so large bodies can run in a worker thread."""
        if wbits:
            body = decompress(body, wbits, self._max_body)
        try:
            if fmt == "proto":
                return decode_request(body)
            request, repaired = decode_json(body)
            out = batch_from_request(request)
            out.batch.repaired = repaired
            return out
        except DecodeError as exc:
            raise Refused(400, "malformed", str(exc)) from None

    async def _submit(self, decoded: DecodedBatch, fmt: str) -> None:
        try:
            written = self._pipeline.submit(decoded.batch, RECEIVER, fmt)
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
            self._refusals.spans(fmt, decoded.rejected, decoded.error)

    async def _refuse(self, send: Send, refused: Refused) -> None:
        ctype = refused.ctype
        code = _GRPC_CODE.get(refused.status, 2)
        extra: list[tuple[bytes, bytes]] = []
        if refused.status == 503:
            extra.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
        elif refused.status == 405:
            extra.append((b"allow", b"POST"))
        if ctype == JSON:
            body = orjson.dumps({"code": code, "message": refused.message})
        else:
            ctype, body = PROTOBUF, encode_status(code, refused.message)
        # A refused body may be still unread: ask the client to reconnect rather than let the
        # server read (and discard) up to gigabytes to keep the connection usable.
        if refused.status == 413:
            extra.append((b"connection", b"close"))
        await _respond(send, refused.status, ctype, body, extra)


def build_app(
    pipeline: BatchSink, metrics: Metrics, *, max_body_bytes: int = 32 * MiB
) -> OtlpHttpApp:
    """The OTLP/HTTP trace receiver as an ASGI app (serve it with uvicorn, or mount it)."""
    return OtlpHttpApp(pipeline, metrics, max_body_bytes=max_body_bytes)


def content_headers(scope: Scope) -> tuple[bytes, bytes, int | None]:
    """Media type (no parameters), content coding and length, lowercased; length None if absent."""
    ctype = encoding = b""
    length: int | None = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            ctype = value.split(b";", 1)[0].strip().lower()
        elif name == b"content-encoding":
            encoding = value.strip().lower()
        elif name == b"content-length":
            if not value.isdigit():
                raise Refused(400, "malformed", "invalid Content-Length")
            length = int(value)
    return ctype, encoding, length


def decompress(body: bytes, wbits: int, limit: int) -> bytes:
    """Inflate in steps with a running total, so a gzip bomb costs at most `limit` bytes of memory
    before it is refused. Concatenated gzip members are one body, as RFC 1952 allows."""
    parts: list[bytes] = []
    size = 0
    data = body
    try:
        while data:
            inflater = zlib.decompressobj(wbits)
            while not inflater.eof:
                part = inflater.decompress(data, _INFLATE_STEP)
                if not part and len(inflater.unconsumed_tail) == len(data):
                    raise Refused(400, "malformed", "compressed body is truncated")
                data = inflater.unconsumed_tail
                size += len(part)
                if size > limit:
                    raise Refused(
                        413, "too_large", f"decompressed body exceeds the {limit}-byte limit"
                    )
                parts.append(part)
            data = inflater.unused_data if wbits == _GZIP else b""
    except zlib.error as exc:
        raise Refused(400, "malformed", f"cannot decompress body: {exc}") from None
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _success_body(decoded: DecodedBatch, ctype: bytes) -> bytes:
    if ctype == JSON:
        if not decoded.rejected:
            return b"{}"
        # int64 fields are strings in the protobuf JSON mapping.
        partial = {"rejectedSpans": str(decoded.rejected), "errorMessage": decoded.error}
        return orjson.dumps({"partialSuccess": partial})
    if not decoded.rejected:
        return b""  # an ExportTraceServiceResponse with nothing set
    partial_pb = ExportTracePartialSuccess(
        rejected_spans=decoded.rejected, error_message=decoded.error
    )
    return ExportTraceServiceResponse(partial_success=partial_pb).SerializeToString()


async def _respond(
    send: Send, status: int, ctype: bytes, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to set up: the pipeline's lifecycle belongs to whoever built the app."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(request: Request, length: int | None, limit: int) -> bytes:
    """A Starlette request's body, refused with 413 as soon as it passes `limit` bytes: never
    buffered beyond it, whether announced by Content-Length or streamed."""
    if length is not None and length > limit:
        raise Refused(413, "too_large", f"body of {length} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, "too_large", f"body exceeds the {limit}-byte limit")
        if chunk:
            chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
