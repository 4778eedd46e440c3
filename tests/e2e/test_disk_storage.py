"""`--storage disk` as a user runs it: spans survive a restart of all-in-one, a separate `query`
process reads what a collector writes, and a directory that is not ours stops the start."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.contract.traces import make_span, process, trace_id
from tests.e2e.server import ROOT, Server, start
from tracemesh.codecs.otlp_proto import request_from_spans
from tracemesh.model.span import Span


def _send(server: Server, spans: list[Span]) -> None:
    body = request_from_spans(spans).SerializeToString()
    response = httpx.post(
        server.otlp_http, content=body, headers={"content-type": "application/x-protobuf"}
    )
    assert response.status_code == 200, response.text


def _wait_for(query: Server, number: int, spans: int) -> None:
    url = f"{query.query}/api/traces/{trace_id(number).hex()}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        response = httpx.get(url)
        if response.status_code == 200 and len(response.json()["data"][0]["spans"]) == spans:
            return
        time.sleep(0.1)
    raise AssertionError(f"trace {number} never showed {spans} spans: {httpx.get(url).text}")


def test_all_in_one_keeps_traces_across_a_restart(tmp_path: Path) -> None:
    flags = ("--storage", "disk", "--disk.path", str(tmp_path / "data"))
    server = start(tmp_path, *flags)
    web = process("restart-web")
    try:
        _send(server, [make_span(1, 1, web), make_span(1, 2, web, parent=1)])
        _wait_for(server, 1, 2)
    finally:
        assert server.stop() == 0, server.log()
    server = start(tmp_path, *flags)
    try:
        _wait_for(server, 1, 2)
        services = httpx.get(f"{server.query}/api/services").json()["data"]
        assert "restart-web" in services
    finally:
        assert server.stop() == 0, server.log()


def test_a_query_process_reads_what_a_collector_writes(tmp_path: Path) -> None:
    flags = ("--storage", "disk", "--disk.path", str(tmp_path / "data"))
    collector = start(tmp_path, *flags, command="collector")
    query = None
    try:
        query = start(tmp_path, *flags, command="query")
        svc = process("shared-svc")
        _send(collector, [make_span(1, 1, svc)])
        _wait_for(query, 1, 1)
        _send(collector, [make_span(1, 2, svc, parent=1), make_span(2, 1, svc)])
        _wait_for(query, 1, 2)
        found = httpx.get(f"{query.query}/api/traces", params={"service": "shared-svc"}).json()
        assert sorted(int(t["traceID"], 16) for t in found["data"]) == [1, 2]
    finally:
        if query is not None:
            assert query.stop() == 0, query.log()
        assert collector.stop() == 0, collector.log()


def test_a_directory_that_is_not_a_store_stops_the_start(tmp_path: Path) -> None:
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8 not spans")
    result = subprocess.run(
        [sys.executable, "-m", "tracemesh", "all-in-one", "--storage", "disk",
         "--disk.path", str(foreign), "--admin.http-port", "0", "--query.http-port", "0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert "is not a tracemesh disk store" in result.stderr
    assert (foreign / "holiday.jpg").read_bytes() == b"\xff\xd8 not spans"
