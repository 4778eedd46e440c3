"""Writes: span documents and Jaeger's service/operation documents through the bulk API.

`BulkIndexer` cuts documents into bulk requests of at most `bulk_actions` documents and
`bulk_size` bytes and sends at most `bulk_workers` at once. A partial bulk waits up to
`bulk_flush_interval` for documents of concurrent writes (0: sent at once). An outage (no URL
answers, HTTP 429 or 5xx) is retried with exponential backoff for up to `bulk_retry_timeout`;
within a bulk, documents refused with 429/5xx are retried alone, and documents refused for good
(a mapping conflict, say) are logged and counted in `rejected`, never dropped silently.

A write returns when every document is acknowledged (searchable too, with `refresh=wait_for` or
`true`). Meanwhile the pipeline's bounded queue holds what is still to come, so through an outage
nothing acknowledged is lost: the queue fills, receivers refuse new spans, and ingest resumes by
itself when the cluster answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import orjson

from tracemesh.codecs.otlp_proto import span_from_row
from tracemesh.model.batch import SpanBatch
from tracemesh.storage.api import StorageError
from tracemesh.storage.elasticsearch.client import ElasticClient, ElasticError, Unreachable
from tracemesh.storage.elasticsearch.config import ElasticConfig
from tracemesh.storage.elasticsearch.documents import (
    OtlpEnvelope,
    TagFields,
    process,
    span_document,
    split_process,
)
from tracemesh.storage.elasticsearch.fidelity import jaeger_keeps
from tracemesh.storage.elasticsearch.indices import Indices

log = logging.getLogger("tracemesh.storage.elasticsearch")
SERVICE_CACHE_SIZE = 100_000  # Jaeger's LRU size for service/operation pairs already written
BACKOFF_MAX = 5.0


def fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def service_doc_id(service: str, operation: str, kind: str) -> str:
    """Jaeger's id (FNV-64a of service and operation, in hex) for kindless pairs, so that a pair
    Jaeger wrote and the same pair tracemesh wrote are one document; the kind joins it otherwise."""
    data = (service + operation).encode()
    if kind:
        data += b"\0" + kind.encode()
    return format(fnv64a(data), "x")


@dataclass
class _Bulk:
    items: list[bytes] = field(default_factory=list)
    size: int = 0
    sent: bool = False
    done: asyncio.Future[None] | None = None


class BulkIndexer:
    def __init__(self, client: ElasticClient, config: ElasticConfig) -> None:
        self._client = client
        self._config = config
        self._slots = asyncio.Semaphore(config.bulk_workers)
        self._open: _Bulk | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.rejected = 0  # documents the cluster refused for good
        self.retries = 0  # bulk requests sent again after an outage or a 429
        self.down_since: float | None = None

    async def index(self, items: list[bytes]) -> None:
        """Send every item (an action line and a document line) and return when all are done."""
        loop = asyncio.get_running_loop()
        waiting: list[asyncio.Future[None]] = []
        config = self._config
        for item in items:
            bulk = self._open
            if bulk is not None and (
                len(bulk.items) >= config.bulk_actions or bulk.size + len(item) > config.bulk_size
            ):
                self._seal(bulk)
                bulk = None
            if bulk is None:
                bulk = self._open = _Bulk(done=loop.create_future())
                if config.bulk_flush_interval > 0:
                    loop.call_later(config.bulk_flush_interval, self._seal, bulk)
            bulk.items.append(item)
            bulk.size += len(item)
            assert bulk.done is not None
            if not waiting or waiting[-1] is not bulk.done:
                waiting.append(bulk.done)
        if config.bulk_flush_interval <= 0 and self._open is not None:
            self._seal(self._open)
        for future in waiting:
            await asyncio.shield(future)

    def _seal(self, bulk: _Bulk) -> None:
        if self._open is bulk:
            self._open = None
        if bulk.items and not bulk.sent:
            bulk.sent = True
            task = asyncio.get_running_loop().create_task(self._send(bulk))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, bulk: _Bulk) -> None:
        assert bulk.done is not None
        try:
            async with self._slots:
                await self._send_items(bulk.items)
        except BaseException as exc:
            if not bulk.done.done():
                bulk.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not bulk.done.done():
                bulk.done.set_result(None)

    async def _send_items(self, items: list[bytes]) -> None:
        deadline = time.monotonic() + self._config.bulk_retry_timeout
        delay = 0.1
        params = {"refresh": self._config.refresh}
        pending = items
        while pending:
            try:
                answer = await self._client.request(
                    "POST", "/_bulk", raw=b"".join(pending), params=params,
                    content_type="application/x-ndjson",
                )  # fmt: skip
            except (Unreachable, ElasticError) as exc:
                if isinstance(exc, ElasticError) and not exc.retryable:
                    raise
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    log.warning("Elasticsearch bulk failed, retrying for up to %.0fs: %s",
                                self._config.bulk_retry_timeout, exc)  # fmt: skip
                if time.monotonic() + delay > deadline:
                    raise StorageError(
                        f"bulk of {len(pending)} documents failed for "
                        f"{self._config.bulk_retry_timeout:.0f}s: {exc}"
                    ) from exc
                self.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            if self.down_since is not None:
                log.warning("Elasticsearch answers again after %.1fs",
                            time.monotonic() - self.down_since)  # fmt: skip
                self.down_since = None
            if not answer.get("errors"):
                return
            pending = self._failed_items(answer["items"], pending)
            if pending:
                self.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    def _failed_items(self, results: list[dict[str, dict[str, object]]], sent: list[bytes]
                      ) -> list[bytes]:  # fmt: skip
        """Items to send again (refused for now: 429, 5xx); items refused for good are logged
        and counted."""
        again: list[bytes] = []
        for result, item in zip(results, sent, strict=True):
            outcome = next(iter(result.values()))
            status = int(outcome.get("status", 500))  # type: ignore[call-overload]
            if status < 300:
                continue
            if status == 429 or status >= 500:
                again.append(item)
                continue
            self.rejected += 1
            log.error("Elasticsearch refused a document (HTTP %d, %d refused so far): %s; "
                      "document: %s", status, self.rejected, outcome.get("error"),
                      item[:500])  # fmt: skip
        return again

    async def close(self) -> None:
        if self._open is not None:
            self._seal(self._open)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class ElasticWriter:
    """`SpanWriter`: converts each span to Jaeger's document and indexes it with its service
    document (written once per index, service, operation and kind)."""

    def __init__(
        self, config: ElasticConfig, indexer: BulkIndexer, indices: Indices, tag_fields: TagFields
    ) -> None:
        self._config = config
        self._indexer = indexer
        self._indices = indices
        self._tag_fields = tag_fields
        self._services_written: set[tuple[str, str]] = set()
        self._actions: dict[str, bytes] = {}  # index name -> its bulk action line

    async def write(self, batch: SpanBatch) -> None:
        items: list[bytes] = []
        new_services: list[tuple[str, str]] = []
        seen = self._services_written
        # Each bulk's worth is sent as soon as it is built, so the cluster indexes one while the
        # next is converted (CPU here, CPU there: overlapped rather than taking turns).
        sending: list[asyncio.Future[None]] = []
        chunk = self._config.bulk_actions
        actions = self._actions
        for group in batch.groups:
            process_doc = split_process(process(group.resource), self._tag_fields)
            service = process_doc["serviceName"]
            envelope = (
                OtlpEnvelope(group.resource, group.scope) if self._config.store_otlp else None
            )
            for row in group.rows:
                span = span_from_row(row.raw, group.resource, group.scope)
                # the exact copy only where Jaeger's document (with `ns`) would lose something
                otlp = None
                if envelope is not None and (self._tag_fields.active or not jaeger_keeps(span)):
                    otlp = envelope.wrap(row.raw)
                doc = span_document(span, process_doc, self._tag_fields, otlp)
                span_index = self._indices.write_span(row.start_ns)
                action_line = actions.get(span_index)
                if action_line is None:
                    action_line = actions[span_index] = (
                        orjson.dumps({"index": {"_index": span_index}}) + b"\n"
                    )
                items.append(action_line + orjson.dumps(doc) + b"\n")
                kind = span.kind.jaeger_name
                index = self._indices.write_service(row.start_ns)
                doc_id = service_doc_id(service, span.name, kind)
                key = (index, doc_id)
                if key not in seen:
                    seen.add(key)
                    new_services.append(key)
                    action = {"index": {"_index": index, "_id": doc_id}}
                    body = {"serviceName": service, "operationName": span.name, "spanKind": kind}
                    items.append(orjson.dumps(action) + b"\n" + orjson.dumps(body) + b"\n")
                if len(items) >= chunk:
                    sending.append(asyncio.ensure_future(self._indexer.index(items)))
                    items = []
                    await asyncio.sleep(0)  # let it go out; converting is CPU work
        if items:
            sending.append(asyncio.ensure_future(self._indexer.index(items)))
        results = await asyncio.gather(*sending, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            seen.difference_update(new_services)  # not known to be written: write them again
            raise failed[0]
        if len(seen) > SERVICE_CACHE_SIZE:
            seen.clear()
