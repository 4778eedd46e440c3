"""OTLP ingest benchmark: a separate load process sends realistic batches to a real all-in-one.

Each span has 10 attributes and 1 event (like the OpenTelemetry Collector's testbed spans); a
request carries 1000 spans (100 traces x 10 spans). The server is pinned to CPU 0 and the load
generator to CPU 1 when `taskset` exists, so "one core" means one core. Reported per run:
  accepted   spans/s acknowledged by the receiver (client-side wall time)
  searchable spans/s until the last trace sent is readable through /api/traces/{id}
  rss/span   growth of the server's RSS divided by the spans it stores
Usage: python bench/ingest.py [--spans 1000000] [--runs 3] [--protocol grpc http]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

ROOT = Path(__file__).resolve().parents[1]
SPANS_PER_REQUEST = 1000
SPANS_PER_TRACE = 10
UNUSED_PORT_FLAGS = (  # 0: any free port, so a run never collides with a running tracemesh
    "--collector.grpc-port",
    "--collector.http-port",
    "--zipkin.http-port",
    "--sampling.http-port",
    "--agent.jaeger-compact-port",
    "--agent.jaeger-binary-port",
    "--agent.zipkin-compact-port",
)
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kv(key: str, value: object) -> KeyValue:
    item = KeyValue(key=key)
    if isinstance(value, bool):
        item.value.bool_value = value
    elif isinstance(value, int):
        item.value.int_value = value
    elif isinstance(value, float):
        item.value.double_value = value
    else:
        item.value.string_value = str(value)
    return item


def make_request(seed: int) -> tuple[bytes, bytes]:
    """One 1000-span request and the id of its last trace."""
    rnd = random.Random(seed)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    service = f"service-{seed % 10}"
    rs.resource.attributes.extend(
        [
            kv("service.name", service),
            kv("host.name", f"host-{seed % 7}"),
            kv("process.pid", 1000 + seed % 50),
        ]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "bench"
    now = time.time_ns()
    trace_id = b""
    for t in range(SPANS_PER_REQUEST // SPANS_PER_TRACE):
        trace_id = rnd.randbytes(16)
        parent = b""
        for i in range(SPANS_PER_TRACE):
            span = ss.spans.add()
            span.trace_id = trace_id
            span.span_id = rnd.randbytes(8)
            span.parent_span_id = parent
            parent = span.span_id if i == 0 else parent
            span.name = f"op-{rnd.randrange(50)}"
            span.kind = 2 if i == 0 else 3
            span.start_time_unix_nano = now + t * 1_000_000 + i * 1000
            span.end_time_unix_nano = span.start_time_unix_nano + rnd.randrange(1000, 5_000_000)
            span.attributes.extend(
                [
                    kv("http.method", "GET"),
                    kv("http.status_code", rnd.choice([200, 200, 404, 500])),
                    kv("http.url", f"http://svc/api/v1/items/{rnd.randrange(10**6)}"),
                    kv("http.route", "/api/v1/items/{id}"),
                    kv("net.peer.name", "10.0.0.12"),
                    kv("net.peer.port", 8080),
                    kv("user.id", f"user-{rnd.randrange(10**4)}"),
                    kv("retry", False),
                    kv("payload.size", rnd.random() * 1e4),
                    kv("component", "http"),
                ]
            )
            event = span.events.add(
                time_unix_nano=span.start_time_unix_nano + 500, name="cache lookup"
            )
            event.attributes.extend([kv("cache.hit", rnd.random() < 0.8)])
    return request.SerializeToString(), trace_id


def load(
    protocol: str, port: int, payloads: list[bytes], rounds: int, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    """Runs in its own process: send every payload `rounds` times with a few requests in flight."""
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1 % os.cpu_count()})  # type: ignore[arg-type]
    started = time.perf_counter()
    if protocol == "grpc":
        channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)]
        )
        call = channel.unary_unary(EXPORT)
        futures = []
        for _ in range(rounds):
            for body in payloads:
                futures.append(call.future(body))
                if len(futures) >= 8:
                    futures.pop(0).result()
        for f in futures:
            f.result()
    else:  # four keep-alive connections, so the figure is not one connection's latency
        work = iter([body for _ in range(rounds) for body in payloads])
        lock = threading.Lock()

        def post_all() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            while True:
                with lock:
                    body = next(work, None)
                if body is None:
                    return
                conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")

        threads = [threading.Thread(target=post_all) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    out.put(time.perf_counter() - started)


def run_once(protocol: str, spans: int, payloads: list[tuple[bytes, bytes]]) -> dict[str, float]:
    ports = {n: free_port() for n in ("grpc", "http", "query", "admin")}
    cmd = [
        sys.executable,
        "-m",
        "tracemesh",
        "all-in-one",
        "--otlp.grpc-port",
        str(ports["grpc"]),
        "--otlp.http-port",
        str(ports["http"]),
        "--query.http-port",
        str(ports["query"]),
        "--admin.http-port",
        str(ports["admin"]),
        *[x for flag in UNUSED_PORT_FLAGS for x in (flag, "0")],
        "--memory.max-traces",
        str(spans),
        "--log-level",
        "warning",
    ]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    server = subprocess.Popen(cmd, cwd=ROOT)
    try:
        admin = http.client.HTTPConnection("127.0.0.1", ports["admin"], timeout=2)
        for _ in range(300):
            try:
                admin.request("GET", "/health")
                if admin.getresponse().read() and True:
                    break
            except OSError:
                admin = http.client.HTTPConnection("127.0.0.1", ports["admin"], timeout=2)
                time.sleep(0.1)
        proc = psutil.Process(server.pid)
        rss_before = proc.memory_info().rss
        rounds = max(1, spans // (SPANS_PER_REQUEST * len(payloads)))
        bodies = [p for p, _ in payloads]
        last_trace = payloads[-1][1].hex()
        result: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        started = time.perf_counter()
        sender = multiprocessing.Process(
            target=load, args=(protocol, ports[protocol], bodies, rounds, result)
        )
        sender.start()
        send_seconds = result.get(timeout=600)
        sender.join()
        query = http.client.HTTPConnection("127.0.0.1", ports["query"], timeout=10)
        while True:  # the pipeline is FIFO: when the last trace is readable, every span is
            query.request("GET", f"/api/traces/{last_trace}")
            response = query.getresponse()
            body = response.read()
            if (
                response.status == 200
                and len(json.loads(body)["data"][0]["spans"]) >= SPANS_PER_TRACE * rounds
            ):
                break
            time.sleep(0.01)
        searchable_seconds = time.perf_counter() - started
        stored = rounds * len(bodies) * SPANS_PER_REQUEST
        rss_after = proc.memory_info().rss
        return {
            "accepted": stored / send_seconds,
            "searchable": stored / searchable_seconds,
            "rss_per_span": (rss_after - rss_before) / stored,
            "spans": stored,
        }
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--protocol", nargs="+", default=["grpc", "http"], choices=["grpc", "http"])
    args = parser.parse_args()
    # distinct payloads so traces do not repeat across requests within a run
    payloads = [
        make_request(seed) for seed in range(max(1, min(args.spans // SPANS_PER_REQUEST, 1000)))
    ]
    print(
        f"machine: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"python {sys.version.split()[0]}; {args.spans} spans per run, 10 attrs + 1 event per span"
    )
    for protocol in args.protocol:
        runs = [run_once(protocol, args.spans, payloads) for _ in range(args.runs)]
        for r in runs:
            print(
                f"  {protocol} run: accepted {r['accepted']:,.0f} spans/s, "
                f"searchable {r['searchable']:,.0f} spans/s, "
                f"{r['rss_per_span']:,.0f} B RSS/span ({r['spans']:,.0f} spans)"
            )
        med = {
            k: statistics.median(r[k] for r in runs)
            for k in ("accepted", "searchable", "rss_per_span")
        }
        print(
            f"{protocol} median of {args.runs}: accepted {med['accepted']:,.0f} spans/s "
            f"({med['accepted'] / 10_000:.1f}x the OTel Collector's published 10k spans/s/CPU), "
            f"searchable {med['searchable']:,.0f} spans/s, "
            f"{med['rss_per_span']:,.0f} B RSS per stored span"
        )


if __name__ == "__main__":
    main()
