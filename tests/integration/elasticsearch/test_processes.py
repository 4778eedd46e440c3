"""A `collector` and a separate `query` process share the cluster: spans sent to one are found
through the other's Jaeger API."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.contract.traces import make_span, process
from tests.e2e import server as e2e
from tests.support.elastic import prefix_for
from tests.support.search_node import SearchNode
from tracemesh.codecs.otlp_proto import request_from_spans


def _start(tmp: Path, command: str, flags: list[str]) -> e2e.Server:
    """e2e.start with a longer wait: the process connects to the cluster and puts templates."""
    ports = {name: e2e.free_port() for name in e2e.TCP_FLAGS}
    ports |= {name: e2e.free_port(socket.SOCK_DGRAM) for name in e2e.UDP_FLAGS}
    ports_flags = [str(x) for name, flag in (e2e.TCP_FLAGS | e2e.UDP_FLAGS).items()
                   for x in (flag, ports[name])]  # fmt: skip
    log_path = tmp / f"tracemesh-{command}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tracemesh", command, *ports_flags, *flags],
            stdout=log, stderr=subprocess.STDOUT, cwd=e2e.ROOT,
        )  # fmt: skip
    server = e2e.Server(proc, ports, log_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(server.admin + "/health", timeout=2).status_code == 200:
                return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"tracemesh {command} did not become healthy:\n{server.log()}")


def test_collector_writes_what_a_separate_query_process_reads(
    node: SearchNode, tmp_path: Path
) -> None:
    flags = ["--storage", "elasticsearch", "--es.server-urls", node.url,
             "--es.index-prefix", prefix_for(tmp_path), "--es.num-shards", "1",
             "--es.num-replicas", "0"]  # fmt: skip
    collector = _start(tmp_path, "collector", flags)
    query = _start(tmp_path, "query", flags)
    try:
        web, db = process("es-web"), process("es-db")
        spans = [make_span(0xE5, 1, web, name="GET /"), make_span(0xE5, 2, db, parent=1)]
        body = request_from_spans(spans).SerializeToString()
        protobuf = {"content-type": "application/x-protobuf"}
        sent = httpx.post(collector.otlp_http, content=body, headers=protobuf, timeout=30)
        found: list[dict[str, object]] = []
        services: list[str] = []
        deadline = time.monotonic() + 60
        # searchable at the next refresh (about a second; shards refresh on their own), so wait
        # for the whole trace and both services
        while time.monotonic() < deadline:
            answer = httpx.get(
                f"{query.query}/api/traces", params={"service": "es-web"}, timeout=30
            )
            found = answer.json()["data"]
            services = httpx.get(f"{query.query}/api/services", timeout=30).json()["data"]
            if found and len(found[0]["spans"]) == 2 and len(services) == 2:  # type: ignore[arg-type]
                break
            time.sleep(0.2)
        trace_id = spans[0].trace_id.hex()
        by_id = httpx.get(f"{query.query}/api/traces/{trace_id}", timeout=30).json()["data"]
    finally:
        assert collector.stop() == 0, collector.log()
        assert query.stop() == 0, query.log()

    assert sent.status_code == 200
    assert len(found) == 1 and len(found[0]["spans"]) == 2  # type: ignore[arg-type]
    assert sorted(services) == ["es-db", "es-web"]
    assert len(by_id[0]["spans"]) == 2
