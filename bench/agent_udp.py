"""Jaeger agent UDP benchmark: a separate process sends compact Thrift `emitBatch` datagrams to a
real all-in-one's port 6831 equivalent and the server's own metrics say how many it stored.

Spans look like bench/ingest.py's (10 tags, 1 log, 10-span traces) and are packed as Jaeger's
clients pack them, up to 65,000 bytes a datagram, under a process with hostname/ip/version tags.
The server is pinned to CPU 0 and the sender to CPU 1 when `taskset` exists. UDP has no
backpressure, so each run first offers 200k spans/s, far more than one core takes, and measures
the stored rate in steady state (after 10 s, once the backlog is full and the kernel drops the
excess), then sends at 90% of that rate to show the loss there. Reported per run:
  capacity  spans/s stored under overload (tracemesh_spans_received over the measured window)
  paced     loss at 90% of capacity: 1 - spans stored / spans sent
Usage: python bench/agent_udp.py [--runs 3] [--seconds 8]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tracemesh.codecs.jaeger_thrift import emit_batch_message  # noqa: E402
from tracemesh.model.span import Event, Resource, Span, SpanKind  # noqa: E402

MAX_DATAGRAM = 65_000
SPANS_PER_TRACE = 10
OVERLOAD_SPANS_PER_SECOND = 200_000
DISTINCT_DATAGRAMS = 300  # cycled; a repeat adds the same spans again, as a client retry would
OTHER_PORT_FLAGS = (
    "--otlp.grpc-port", "--otlp.http-port", "--collector.grpc-port", "--collector.http-port",
    "--zipkin.http-port", "--sampling.http-port", "--agent.jaeger-binary-port",
    "--agent.zipkin-compact-port", "--query.http-port",
)  # fmt: skip
RECEIVED = 'tracemesh_spans_received_total{format="thrift_compact",receiver="jaeger_udp"}'


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def trace(rnd: random.Random, resource: Resource, now_ns: int) -> list[Span]:
    trace_id = rnd.randbytes(16)
    spans: list[Span] = []
    parent = b""
    for i in range(SPANS_PER_TRACE):
        start = now_ns + i * 1000
        span = Span(
            trace_id, rnd.randbytes(8), f"op-{rnd.randrange(50)}", start,
            start + rnd.randrange(1000, 5_000_000) // 1000 * 1000, parent_span_id=parent,
            kind=SpanKind.SERVER if i == 0 else SpanKind.CLIENT, flags=1, resource=resource,
            attributes={
                "http.method": "GET", "http.status_code": rnd.choice([200, 200, 404, 500]),
                "http.url": f"http://svc/api/v1/items/{rnd.randrange(10**6)}",
                "http.route": "/api/v1/items/{id}", "net.peer.name": "10.0.0.12",
                "net.peer.port": 8080, "user.id": f"user-{rnd.randrange(10**4)}",
                "retry": False, "payload.size": rnd.random() * 1e4, "component": "http",
            },
            events=[Event(start + 1000, "cache lookup", {"cache.hit": rnd.random() < 0.8})],
        )  # fmt: skip
        parent = parent or span.span_id
        spans.append(span)
    return spans


def make_datagrams(seed: int) -> tuple[list[bytes], int]:
    """DISTINCT_DATAGRAMS full datagrams and the spans each holds."""
    rnd = random.Random(seed)
    resource = Resource({"service.name": "bench-svc", "hostname": "bench-host",
                         "ip": "10.0.0.7", "jaeger.version": "Go-2.30.0"})  # fmt: skip
    now = time.time_ns() // 1000 * 1000
    per_trace = len(emit_batch_message(trace(rnd, resource, now))) - 40
    traces = (MAX_DATAGRAM - 200) // per_trace
    out = []
    for _ in range(DISTINCT_DATAGRAMS):
        spans = [s for _ in range(traces) for s in trace(rnd, resource, now)]
        data = emit_batch_message(spans, "compact", seqid=len(out))
        assert len(data) <= MAX_DATAGRAM, len(data)
        out.append(data)
    return out, traces * SPANS_PER_TRACE


def send(
    port: int, datagrams: list[bytes], seconds: float, per_second: float, count: Any = None
) -> None:
    """Runs in its own process; per_second 0 means as fast as the socket takes them. The number
    of datagrams sent goes to `count` (a multiprocessing.Value) if given."""
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    started = time.perf_counter()
    sent = 0
    while True:
        now = time.perf_counter() - started
        if now >= seconds:
            if count is not None:
                count.value = sent
            return
        if per_second and sent >= now * per_second:
            time.sleep(0.0005)
            continue
        try:
            sock.send(datagrams[sent % len(datagrams)])
        except OSError:  # ENOBUFS: the kernel is full too; keep trying
            continue
        sent += 1


def received(admin: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    conn.request("GET", "/metrics")
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith(RECEIVED):
            return float(line.split()[-1])
    return 0.0


def settled(admin: int) -> float:
    """The received count once the server has worked through its backlog."""
    last = received(admin)
    while True:
        time.sleep(0.5)
        now = received(admin)
        if now == last:
            return now
        last = now


def run_once(datagrams: list[bytes], spans_per: int, seconds: float) -> tuple[float, float]:
    udp, admin = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    cmd = [
        sys.executable, "-m", "tracemesh", "all-in-one",
        "--agent.jaeger-compact-port", str(udp), "--admin.http-port", str(admin),
        *[x for flag in OTHER_PORT_FLAGS for x in (flag, "0")],
        "--memory.max-traces", "1000000", "--log-level", "error",
    ]  # fmt: skip
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    server = subprocess.Popen(cmd, cwd=ROOT)
    try:
        for _ in range(300):
            try:
                received(admin)
                break
            except OSError:
                time.sleep(0.1)
        # Overload: offer far more than one core can take and measure the stored rate once the
        # backlog is full and the kernel drops the excess (steady state, after a warm-up).
        offered = OVERLOAD_SPANS_PER_SECOND / spans_per
        sender = multiprocessing.Process(target=send, args=(udp, datagrams, seconds + 12, offered))
        sender.start()
        time.sleep(10)
        first, t0 = received(admin), time.perf_counter()
        time.sleep(seconds)
        last, t1 = received(admin), time.perf_counter()
        sender.join()
        capacity = (last - first) / (t1 - t0)
        # Paced at 90% of capacity: how much of what was sent got stored.
        before = settled(admin)
        rate = 0.9 * capacity / spans_per
        count = multiprocessing.Value("q", 0)
        sender = multiprocessing.Process(target=send, args=(udp, datagrams, seconds, rate, count))
        sender.start()
        sender.join()
        stored = settled(admin) - before
        loss = 1 - stored / (count.value * spans_per)
        return capacity, loss
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    datagrams, spans_per = make_datagrams(1)
    size = statistics.mean(len(d) for d in datagrams)
    print(f"{spans_per} spans per datagram, {size:.0f} bytes ({size / spans_per:.0f} B/span)")
    results = []
    for run in range(args.runs):
        capacity, loss = run_once(datagrams, spans_per, args.seconds)
        results.append(capacity)
        print(f"run {run + 1}: capacity {capacity:,.0f} spans/s; at 90% of it, loss {loss:.2%}")
    print(f"median capacity: {statistics.median(results):,.0f} spans/s on one core")


if __name__ == "__main__":
    main()
