"""`--storage disk` as a user runs it: spans survive a restart of all-in-one, a separate `query`
process reads what a collector writes, and a directory that is not ours stops the start."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
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


PROTOBUF = {"content-type": "application/x-protobuf"}


def test_a_collector_killed_mid_ingest_keeps_every_span_it_acknowledged(tmp_path: Path) -> None:
    """Clients keep sending while the collector is killed with SIGKILL: every trace whose request
    was answered 200 is whole afterwards (the collector answers only after the fsync)."""
    flags = ("--storage", "disk", "--disk.path", str(tmp_path / "data"))
    collector = start(tmp_path, *flags, command="collector")
    acknowledged: list[int] = []
    stop = threading.Event()

    def client(first: int) -> None:
        svc = process("killed-svc")
        with httpx.Client(timeout=5) as http:
            for number in range(first, first + 100_000, 4):
                if stop.is_set():
                    return
                spans = [make_span(number, 1, svc)]
                spans += [make_span(number, i, svc, parent=1) for i in range(2, 21)]
                body = request_from_spans(spans).SerializeToString()
                try:
                    response = http.post(collector.otlp_http, content=body, headers=PROTOBUF)
                except httpx.HTTPError:
                    return  # the collector is gone
                if response.status_code == 200:
                    acknowledged.append(number)

    threads = [threading.Thread(target=client, args=(1 + i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    collector.stop(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join()
    assert len(acknowledged) >= 40, collector.log()
    query = start(tmp_path, *flags, command="query")
    try:
        for number in acknowledged:
            url = f"{query.query}/api/traces/{trace_id(number).hex()}"
            response = httpx.get(url)
            assert response.status_code == 200, (number, response.text)
            assert len(response.json()["data"][0]["spans"]) == 20, number
    finally:
        assert query.stop() == 0, query.log()
