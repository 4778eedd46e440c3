"""Zipkin v2 JSON ingest benchmark: a separate load process posts Envoy-like spans to port 9411 of
a real all-in-one, and the same spans as OTLP/HTTP protobuf for a side-by-side figure.

Each span looks like what an Istio sidecar reports: a local endpoint (one of 10 services), a remote
endpoint, 10 string tags (`component`, `node_id`, `upstream_cluster`, `http.url`,
`guid:x-request-id`...; some repeat between spans, some never do) and 1 annotation, ~800 B of JSON.
A request carries 1000 spans (100 traces x 10 spans). The server is pinned to CPU 0 and the load
process to CPU 1 when `taskset` exists. Reported per run: spans/s acknowledged (202) by the
receiver, and spans/s until the last trace sent is readable through /api/traces/{id}.
Usage: python bench/zipkin_json.py [--spans 300000] [--runs 3] [--protocol zipkin otlp]
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
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from tracemesh.codecs.otlp_proto import request_from_spans
from tracemesh.codecs.zipkin_json import spans_from_json_v2

ROOT = Path(__file__).resolve().parents[1]
SPANS_PER_REQUEST = 1000
SPANS_PER_TRACE = 10
PATHS = {"zipkin": ("/api/v2/spans", "application/json"),
         "otlp": ("/v1/traces", "application/x-protobuf")}  # fmt: skip
ALL_PORT_FLAGS = (
    "--otlp.grpc-port", "--otlp.http-port", "--collector.grpc-port", "--collector.http-port",
    "--zipkin.http-port", "--sampling.http-port", "--agent.jaeger-compact-port",
    "--agent.jaeger-binary-port", "--agent.zipkin-compact-port", "--query.http-port",
    "--admin.http-port",
)  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_request(seed: int) -> tuple[bytes, str]:
    """One 1000-span Zipkin v2 JSON body and the id of its last trace."""
    rnd = random.Random(seed)
    now_us = time.time_ns() // 1000
    spans = []
    trace_id = ""
    for t in range(SPANS_PER_REQUEST // SPANS_PER_TRACE):
        trace_id = rnd.randbytes(16).hex()
        parent = ""
        for i in range(SPANS_PER_TRACE):
            service = rnd.randrange(10)
            span_id = rnd.randbytes(8).hex()
            span = {
                "traceId": trace_id,
                "id": span_id,
                "name": f"svc-{service}.default.svc.cluster.local:9080/api/{rnd.randrange(20)}",
                "kind": "SERVER" if i % 2 == 0 else "CLIENT",
                "timestamp": now_us + t * 1000 + i * 10,
                "duration": rnd.randrange(100, 50_000),
                "localEndpoint": {"serviceName": f"svc-{service}.default",
                                  "ipv4": f"10.244.0.{service}", "port": 9080},
                "remoteEndpoint": {"ipv4": f"10.244.1.{rnd.randrange(10)}"},
                "tags": {
                    "component": "proxy",
                    "node_id": f"sidecar~10.244.0.{service}~svc-{service}-v1-5f9dbcd669-6xk8s"
                               ".default~default.svc.cluster.local",
                    "http.method": "GET",
                    "http.protocol": "HTTP/1.1",
                    "http.status_code": rnd.choice(["200", "200", "200", "404", "503"]),
                    "response_flags": "-",
                    "upstream_cluster": f"outbound|9080||svc-{rnd.randrange(10)}"
                                        ".default.svc.cluster.local",
                    "http.url": f"http://svc-{service}:9080/api/items/{rnd.randrange(10**6)}",
                    "guid:x-request-id": str(rnd.randbytes(16).hex()),
                    "peer.address": f"10.244.1.{rnd.randrange(250)}",
                },
                "annotations": [{"timestamp": now_us + t * 1000 + i * 10 + 5,
                                 "value": "last_downstream_rx_byte_received"}],
            }  # fmt: skip
            if parent:
                span["parentId"] = parent
            parent = parent or span_id
            spans.append(span)
    return orjson.dumps(spans), trace_id


def as_otlp(body: bytes) -> bytes:
    return request_from_spans(spans_from_json_v2(body)).SerializeToString()


def load(port: int, path: str, ctype: str, payloads: list[bytes], rounds: int,
         out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]  # fmt: skip
    """Runs in its own process: four keep-alive connections post every payload `rounds` times."""
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {1 % (os.cpu_count() or 1)})
    work = iter([body for _ in range(rounds) for body in payloads])
    lock = threading.Lock()
    errors: list[str] = []

    def post_all() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                body = next(work, None)
            if body is None:
                return
            conn.request("POST", path, body, {"Content-Type": ctype})
            response = conn.getresponse()
            response.read()
            if response.status not in (200, 202):
                errors.append(f"HTTP {response.status}")
                return

    started = time.perf_counter()
    threads = [threading.Thread(target=post_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((time.perf_counter() - started, errors[:1]))


def run_once(protocol: str, spans: int, payloads: list[tuple[bytes, str]]) -> dict[str, float]:
    ports = {flag: free_port() for flag in ALL_PORT_FLAGS}
    cmd = [sys.executable, "-m", "tracemesh", "all-in-one",
           *[x for flag, port in ports.items() for x in (flag, str(port))],
           "--memory.max-traces", str(spans), "--log-level", "warning"]  # fmt: skip
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    server = subprocess.Popen(cmd, cwd=ROOT)
    try:
        admin_port, query_port = ports["--admin.http-port"], ports["--query.http-port"]
        for _ in range(300):
            try:
                admin = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=2)
                admin.request("GET", "/health")
                admin.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
        port = ports["--zipkin.http-port" if protocol == "zipkin" else "--otlp.http-port"]
        path, ctype = PATHS[protocol]
        rounds = max(1, spans // (SPANS_PER_REQUEST * len(payloads)))
        bodies = [body for body, _ in payloads]
        result: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        started = time.perf_counter()
        sender = multiprocessing.Process(
            target=load, args=(port, path, ctype, bodies, rounds, result)
        )
        sender.start()
        send_seconds, errors = result.get(timeout=900)
        sender.join()
        if errors:
            raise RuntimeError(f"the server refused a request: {errors[0]}")
        query = http.client.HTTPConnection("127.0.0.1", query_port, timeout=30)
        last_trace = payloads[-1][1]
        while True:  # the pipeline is FIFO: when the last trace is readable, every span is
            query.request("GET", f"/api/traces/{last_trace}?raw=true")
            response = query.getresponse()
            body = response.read()
            if response.status == 200 and len(json.loads(body)["data"][0]["spans"]) >= (
                SPANS_PER_TRACE * rounds
            ):
                break
            time.sleep(0.01)
        searchable_seconds = time.perf_counter() - started
        stored = rounds * len(bodies) * SPANS_PER_REQUEST
        return {"accepted": stored / send_seconds, "searchable": stored / searchable_seconds,
                "spans": stored}  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--protocol", nargs="+", default=["zipkin", "otlp"],
                        choices=["zipkin", "otlp"])  # fmt: skip
    args = parser.parse_args()
    count = max(1, min(args.spans // SPANS_PER_REQUEST, 300))
    zipkin = [make_request(seed) for seed in range(count)]
    payloads = {"zipkin": zipkin, "otlp": [(as_otlp(body), last) for body, last in zipkin]}
    size = sum(len(b) for b, _ in zipkin) / (count * SPANS_PER_REQUEST)
    print(
        f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}; {args.spans} spans "
        f"per run, 10 tags + 1 annotation per span, {size:.0f} B of Zipkin JSON per span"
    )
    medians = {}
    for protocol in args.protocol:
        runs = [run_once(protocol, args.spans, payloads[protocol]) for _ in range(args.runs)]
        for r in runs:
            print(
                f"  {protocol} run: accepted {r['accepted']:,.0f} spans/s, "
                f"searchable {r['searchable']:,.0f} spans/s ({r['spans']:,.0f} spans)"
            )
        medians[protocol] = {k: statistics.median(r[k] for r in runs)
                             for k in ("accepted", "searchable")}  # fmt: skip
        print(f"{protocol} median of {args.runs}: accepted {medians[protocol]['accepted']:,.0f} "
              f"spans/s, searchable {medians[protocol]['searchable']:,.0f} spans/s")  # fmt: skip
    if len(medians) == 2:
        ratio = medians["zipkin"]["accepted"] / medians["otlp"]["accepted"]
        print(f"zipkin/otlp accepted ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
