"""es-cleaner and es-rollover against the real node."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.contract.traces import make_span, process, trace_id
from tests.support.elastic import config_for_tests, prefix_for
from tests.support.search_node import SearchNode
from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.model.query import TraceQuery
from tracemesh.storage.elasticsearch.client import ElasticClient
from tracemesh.storage.elasticsearch.factory import ElasticStorage
from tracemesh.storage.elasticsearch.indices import DAY_NS, day
from tracemesh.storage.elasticsearch.operations import IndexOperations


def _run(loop: asyncio.AbstractEventLoop, coroutine: Any) -> Any:
    return loop.run_until_complete(coroutine)


async def _names(client: ElasticClient, pattern: str) -> list[str]:
    rows = await client.request("GET", f"/_cat/indices/{pattern}", params={"format": "json"})
    return sorted(str(row["index"]) for row in rows or [])


def test_cleaner_deletes_daily_indices_before_the_cutoff(
    node: SearchNode, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    prefix, other = prefix_for(tmp_path), prefix_for(tmp_path / "other")
    now = time.time_ns()
    today, yesterday = day(now), day(now - DAY_NS)
    mine = [
        f"{prefix}-jaeger-span-2020-01-01",
        f"{prefix}-jaeger-service-2020-01-01",
        f"{prefix}-jaeger-dependencies-{yesterday}",
        f"{prefix}-jaeger-span-{today}",
    ]
    theirs = f"{other}-jaeger-span-2020-01-01"
    config = config_for_tests(node.url, prefix)
    client = ElasticClient(config)
    for name in [*mine, theirs]:
        _run(loop, client.request("PUT", f"/{name}", {"settings": {"number_of_replicas": 0}}))

    ops = IndexOperations(config)
    deleted_old = _run(loop, ops.clean(days=2))
    deleted_yesterday = _run(loop, ops.clean(days=1))
    _run(loop, ops.close())
    left = _run(loop, _names(client, f"{prefix}-jaeger-*"))
    command = [sys.executable, "-m", "tracemesh", "es-cleaner", "--days", "0",
               "--es.server-urls", node.url, "--es.index-prefix", prefix]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    after_cli = _run(loop, _names(client, f"{prefix}-jaeger-*"))
    untouched = _run(loop, _names(client, theirs))
    _run(loop, client.close())

    assert deleted_old == sorted(mine[:2])
    assert deleted_yesterday == [mine[2]]
    assert left == [mine[3]]
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [mine[3]]
    assert after_cli == []
    assert untouched == [theirs]


def test_rollover_init_rollover_and_lookback(
    node: SearchNode, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    # not `t...`: the session's shared test templates would win over this store's own
    prefix = "r" + prefix_for(tmp_path)[1:]
    config = dataclasses.replace(config_for_tests(node.url, prefix), use_aliases=True)
    ops = IndexOperations(config)
    created = _run(loop, ops.rollover_init())
    again = _run(loop, ops.rollover_init())
    storage = ElasticStorage(config)
    _run(loop, storage.start())
    svc = process("rolled")
    _run(loop, storage.writer().write(batch_from_spans([make_span(1, 1, svc)])))
    rolled = _run(loop, ops.rollover({"max_docs": 1}))
    _run(loop, storage.writer().write(batch_from_spans([make_span(2, 1, svc, start_ms=5)])))
    reader = storage.reader()
    both = _run(loop, reader.find_traces(TraceQuery(service="rolled")))
    removed = _run(loop, ops.lookback(0))
    after_lookback = _run(loop, reader.find_traces(TraceQuery(service="rolled")))
    _run(loop, storage.close())
    _run(loop, ops.close())

    assert created == [f"{prefix}-jaeger-span-000001", f"{prefix}-jaeger-service-000001"]
    assert again == []
    assert rolled == {"jaeger-span": True, "jaeger-service": True}
    assert [t[0].trace_id for t in both] == [trace_id(2), trace_id(1)]
    assert removed == [f"{prefix}-jaeger-span-000001", f"{prefix}-jaeger-service-000001"]
    assert [t[0].trace_id for t in after_lookback] == [trace_id(2)]
