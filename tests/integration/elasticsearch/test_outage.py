"""The node stops in the middle of ingest and starts again: every acknowledged span is stored.

Spans go through the real pipeline (the collector's bounded queue) into the Elasticsearch
writer, as in a collector. While the node is down the writer retries, the queue fills and new
spans are refused (not acknowledged); when the node is back, ingest resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from tests.contract.traces import make_span, process
from tests.support.elastic import config_for_tests, prefix_for
from tests.support.search_node import SearchNode
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.collector.pipeline import Pipeline, QueueFullError
from tracemesh.runtime.metrics import Metrics
from tracemesh.storage.elasticsearch.client import ElasticClient
from tracemesh.storage.elasticsearch.factory import ElasticStorage

SPANS_PER_REQUEST = 50


@pytest.mark.timeout(900)  # the node boots twice; on a busy 2-core machine that takes minutes
def test_node_stopped_mid_ingest_loses_no_acknowledged_span(
    node: SearchNode, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    prefix = prefix_for(tmp_path)
    config = config_for_tests(node.url, prefix, refresh="false", bulk_retry_timeout=600.0)

    async def scenario() -> tuple[set[bytes], int, int, list[bytes], int]:
        storage = ElasticStorage(config)
        await storage.start()
        pipeline = Pipeline(
            storage.writer(), Metrics(), storage_name="elasticsearch",
            queue_spans=5_000, batch_spans=500,
        )  # fmt: skip
        await pipeline.start()
        acknowledged: set[bytes] = set()
        refused = 0
        resource = process("outage")
        counter = 0
        down = asyncio.Event()
        acknowledged_while_down = 0

        async def ingest() -> None:
            nonlocal counter, refused, acknowledged_while_down
            while True:
                spans = []
                for _ in range(SPANS_PER_REQUEST):
                    counter += 1
                    spans.append(make_span(counter, 1, resource, start_ms=counter % 1000))
                try:
                    pipeline.submit(batch_from_spans(spans), "test", "otlp")
                except QueueFullError:
                    refused += len(spans)
                else:
                    acknowledged.update(s.trace_id for s in spans)
                    if down.is_set():
                        acknowledged_while_down += len(spans)
                await asyncio.sleep(0.05)

        task = loop.create_task(ingest())
        await asyncio.sleep(1.5)
        down.set()
        await asyncio.to_thread(node.stop)
        await asyncio.sleep(3.0)
        down.clear()
        await asyncio.to_thread(node.start)
        await asyncio.sleep(1.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        began = time.monotonic()
        await asyncio.wait_for(pipeline.flush(), 300)
        assert time.monotonic() - began < 300
        await pipeline.stop()
        lost = pipeline.spans_lost
        await storage.close()

        client = ElasticClient(config)
        await client.request("POST", f"/{prefix}-jaeger-span-*/_refresh")
        stored: list[bytes] = []
        body: dict[str, object] = {
            "size": 10_000,
            "_source": ["traceID"],
            "sort": [{"startTime": "asc"}, {"traceID": "asc"}, {"_seq_no": "asc"}],
        }
        while True:
            hits = (await client.request("POST", f"/{prefix}-jaeger-span-*/_search", body))["hits"][
                "hits"
            ]
            stored.extend(bytes.fromhex(h["_source"]["traceID"]) for h in hits)
            if len(hits) < 10_000:
                break
            body["search_after"] = hits[-1]["sort"]
        await client.close()
        return acknowledged, refused, acknowledged_while_down, stored, lost

    acknowledged, refused, while_down, stored, lost = loop.run_until_complete(scenario())

    assert lost == 0
    assert acknowledged, "nothing was acknowledged"
    assert while_down > 0, "the queue took no spans while the node was down"
    assert refused > 0, "the queue never filled while the node was down"
    assert acknowledged <= set(stored), f"{len(acknowledged - set(stored))} acknowledged spans lost"
    assert len(stored) >= len(acknowledged)  # a retried bulk may store a span twice, never zero
