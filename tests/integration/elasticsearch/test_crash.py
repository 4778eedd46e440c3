"""A collector SIGKILLed under load loses no more acknowledged spans than its promise allows: what
its bounded queue held and the bulk in flight (see the README's "What an acknowledgement
promises"), and every span it did not lose is in Elasticsearch."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx

from tests.contract.traces import make_span, process
from tests.integration.elasticsearch.test_processes import _start
from tests.support.elastic import prefix_for
from tests.support.search_node import SearchNode
from tracemesh.codecs.otlp_proto import request_from_spans

QUEUE_SPANS = 3000
BATCH_SPANS = 1000  # the pipeline's write size: one write in flight at most
REQUEST_SPANS = 250
LOAD_SECONDS = 5.0
BOUND = QUEUE_SPANS + 2 * BATCH_SPANS  # the queue, the write in flight and the one being merged
PROTOBUF = {"content-type": "application/x-protobuf"}


def _sender(url: str, first_trace: int, acked: list[int], sent: list[int], stop: threading.Event
            ) -> None:  # fmt: skip
    """Sends requests of REQUEST_SPANS one-span traces; records the traces acknowledged."""
    service = process("crash-test")
    trace = first_trace
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            traces = list(range(trace, trace + REQUEST_SPANS))
            trace += REQUEST_SPANS
            spans = [make_span(t, 1, service, attributes={"n": t}) for t in traces]
            body = request_from_spans(spans).SerializeToString()
            sent.extend(traces)
            try:
                answer = client.post(url, content=body, headers=PROTOBUF)
            except httpx.TransportError:
                return  # the collector is gone
            if answer.status_code == 200:
                acked.extend(traces)
            elif answer.status_code == 503:  # told to retry: the queue is bounded
                time.sleep(0.05)


def test_sigkill_under_load_loses_at_most_the_queue(node: SearchNode, tmp_path: Path) -> None:
    prefix = prefix_for(tmp_path)
    flags = ["--storage", "elasticsearch", "--es.server-urls", node.url, "--es.index-prefix",
             prefix, "--es.num-shards", "1", "--es.num-replicas", "0",
             "--queue.max-spans", str(QUEUE_SPANS), "--queue.batch-spans", str(BATCH_SPANS),
             "--queue.max-wait", "2"]  # fmt: skip
    collector = _start(tmp_path, "collector", flags)
    acked: list[int] = []
    sent: list[int] = []
    stop = threading.Event()
    senders = [
        threading.Thread(
            target=_sender, args=(collector.otlp_http, 1 + n * 10**8, acked, sent, stop)
        )
        for n in range(3)
    ]
    try:
        for sender in senders:
            sender.start()
        # load for a while, and until well more than the bound was acknowledged (a busy
        # machine acknowledges slower), so the count below can tell a broken promise
        deadline = time.monotonic() + 60
        time.sleep(LOAD_SECONDS)
        while len(acked) < 2 * BOUND and time.monotonic() < deadline:
            time.sleep(0.2)
        collector.proc.send_signal(signal.SIGKILL)  # mid-load: the queue holds acknowledged spans
        collector.proc.wait(10)
    finally:
        stop.set()
        for sender in senders:
            sender.join(20)
        collector.stop()
    acknowledged = set(acked)

    stored: set[int] = set()
    with httpx.Client(base_url=node.url, timeout=30) as es:
        es.post(f"/{prefix}-jaeger-span-*/_refresh")
        # page by trace id: every stored span is one trace
        body = {"size": 10_000, "_source": ["traceID"], "sort": [{"traceID": "asc"}]}
        after: list[str] | None = None
        while True:
            page_body = {**body, **({"search_after": after} if after else {})}
            hits = es.post(f"/{prefix}-jaeger-span-*/_search", json=page_body).json()["hits"][
                "hits"
            ]
            stored.update(int(h["_source"]["traceID"], 16) for h in hits)
            if len(hits) < 10_000:
                break
            after = hits[-1]["sort"]

    lost = acknowledged - stored
    # the promise: at most the queue plus the write in flight (and the one being merged)
    assert len(lost) <= BOUND, (len(lost), len(acknowledged))
    assert len(acknowledged) >= 2 * BOUND, len(acknowledged)  # more than the bound: it counts
    assert len(stored & acknowledged) >= len(acknowledged) - len(lost)
    assert stored <= set(sent)  # nothing stored that was never sent
