"""tracemesh and Jaeger v2 side by side on one Elasticsearch node: the same OTLP/gRPC load into
each, each at its defaults, runs alternating (tracemesh, Jaeger, ...), medians and ratios.

Per run: spans stored per second (from the first request until all are searchable), the time from
the last acknowledgement to all searchable, collector and node CPU µs per span (CPU time of each
process session over that window), bytes per span after a force merge, the collector's peak RSS,
and trace-by-id and search-by-service p50 through each system's own query API with the CPU
(collector + node) per query. The machine's load average is printed with every run. The collector
is pinned to CPU 1 (`taskset`). Jaeger is built by `bench/jaeger/build.sh` (cached).

    .venv/bin/python bench/elasticsearch_vs_jaeger.py --spans 200000 --runs 3
    .venv/bin/python bench/elasticsearch_vs_jaeger.py --paced 0.8   # ack -> searchable at 80%
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as svc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.trace.v1 import trace_pb2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e import server as e2e  # noqa: E402
from tests.support.search_node import SearchNode, free_port, node_spec  # noqa: E402

REQUEST_SPANS = 1000
SERVICES = 20
TICK = os.sysconf("SC_CLK_TCK")


# ---- the load ----------------------------------------------------------------------------------


def requests(total: int, seed: int) -> list[bytes]:
    """OTLP requests of REQUEST_SPANS spans: 10-span traces, 10 attributes and 1 event each."""
    rng = random.Random(seed)
    now = time.time_ns()
    out = []
    for n in range(total // REQUEST_SPANS):
        request = svc.ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        for key, value in (("service.name", f"svc-{n % SERVICES}"), ("host.name", f"h{n % 7}")):
            rs.resource.attributes.add(key=key).value.string_value = value
        ss = rs.scope_spans.add()
        ss.scope.name, ss.scope.version = "bench", "1.0"
        for i in range(REQUEST_SPANS):
            span = ss.spans.add()
            trace = seed * 10**9 + n * (REQUEST_SPANS // 10) + i // 10
            span.trace_id = trace.to_bytes(16, "big")
            span.span_id = (i % 10 + 1).to_bytes(8, "big")
            if i % 10:
                span.parent_span_id = (1).to_bytes(8, "big")
            span.name = f"op-{rng.randrange(50)}"
            span.kind = trace_pb2.Span.SPAN_KIND_SERVER if i % 10 == 0 else 3
            span.start_time_unix_nano = now - rng.randrange(600 * 10**9)
            span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(10**6, 10**9)
            attrs = {
                "http.method": "GET",
                "http.url": f"https://example.com/api/{i % 100}",
                "http.status_code": rng.choice((200, 200, 200, 500)),
                "user.id": f"u-{rng.randrange(1000)}",
                "net.peer.port": 8080 + i % 4,
                "component": "http",
                "db.system": "postgresql",
                "retry": bool(i % 2),
                "ratio": rng.random(),
                "region": "eu-west-1",
            }
            for key, value in attrs.items():
                v = span.attributes.add(key=key).value
                if isinstance(value, bool):
                    v.bool_value = value
                elif isinstance(value, int):
                    v.int_value = value
                elif isinstance(value, float):
                    v.double_value = value
                else:
                    v.string_value = value
            event = span.events.add(time_unix_nano=span.start_time_unix_nano + 1000, name="log")
            event.attributes.add(key="message").value.string_value = "cache miss"
            if rng.random() < 0.025:
                span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
        out.append(request.SerializeToString())
    return out


def send(
    target: str,
    bodies: list[bytes],
    acks: list[tuple[float, int]],
    pace: float = 0.0,
    acks_refused: list[int] | None = None,
    workers: int = 4,
) -> None:
    """Every request, retried on UNAVAILABLE/RESOURCE_EXHAUSTED; (time, spans) per ack. `pace`:
    spans per second to offer (0: as fast as acknowledged)."""
    lock = threading.Lock()
    refused = acks_refused if acks_refused is not None else []
    todo = list(enumerate(bodies))
    began = time.monotonic()

    def worker() -> None:
        channel = grpc.insecure_channel(
            target, options=[("grpc.max_send_message_length", 64 << 20)]
        )
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda b: b,
            response_deserializer=svc.ExportTraceServiceResponse.FromString,
        )
        assert TraceServiceStub  # the same method path
        while True:
            with lock:
                if not todo:
                    break
                index, body = todo.pop(0)
            if pace:
                time.sleep(max(0.0, began + index * REQUEST_SPANS / pace - time.monotonic()))
            backoff = 0.5  # exponential, as OpenTelemetry's exporters back off (1 s, 2 s, ...)
            while True:
                try:
                    export(body, timeout=120)
                    break
                except grpc.RpcError as exc:
                    if exc.code() not in (
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                    ):
                        raise
                    with lock:
                        refused.append(1)
                    time.sleep(backoff * random.uniform(0.8, 1.2))
                    backoff = min(backoff * 2, 4.0)
            with lock:
                acks.append((time.monotonic(), REQUEST_SPANS))
        channel.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# ---- processes ---------------------------------------------------------------------------------


def session_cpu(sid: int) -> float:
    """CPU seconds of every live process in session `sid`."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class System:
    name: str
    prefix: str
    proc: subprocess.Popen[bytes]
    otlp: str
    query: str

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def wait_up(self) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.query}/api/services", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not come up")


class Tracemesh(System):
    def __init__(self, es: str, prefix: str, log: Path) -> None:
        self.name, self.prefix = "tracemesh", prefix
        ports = {flag: e2e.free_port() for flag in e2e.TCP_FLAGS.values()}
        ports |= {flag: e2e.free_port(socket.SOCK_DGRAM) for flag in e2e.UDP_FLAGS.values()}
        flags = [str(x) for item in ports.items() for x in item]
        cmd = [
            "taskset",
            "-c",
            "1",
            sys.executable,
            "-m",
            "tracemesh",
            "all-in-one",
            *flags,
            "--storage",
            "elasticsearch",
            "--es.server-urls",
            es,
            "--es.index-prefix",
            prefix,
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.otlp = f"127.0.0.1:{ports['--otlp.grpc-port']}"
        self.query = f"http://127.0.0.1:{ports['--query.http-port']}"


JAEGER_CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter]}}
  telemetry: {{metrics: {{level: none}}, logs: {{level: warn}}}}
extensions:
  jaeger_query:
    storage: {{traces: es}}
    http: {{endpoint: "127.0.0.1:{query}"}}
    grpc: {{endpoint: "127.0.0.1:{query_grpc}"}}
  jaeger_storage:
    backends:
      es:
        elasticsearch:
          server_urls: ["{es}"]
          indices: {{index_prefix: "{prefix}"}}
          # the test distribution does not route `GET /`, which Jaeger's start-up check reads
          version: 8
          disable_health_check: true
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}"}}
      http: {{endpoint: "127.0.0.1:{http}"}}
processors:
  batch:
exporters:
  jaeger_storage_exporter: {{trace_storage: es}}
"""


class Jaeger(System):
    def __init__(self, binary: str, es: str, prefix: str, log: Path) -> None:
        self.name, self.prefix = "jaeger", prefix
        ports = {k: free_port() for k in ("query", "query_grpc", "grpc", "http")}
        config = log.with_suffix(".yaml")
        config.write_text(JAEGER_CONFIG.format(es=es, prefix=prefix, **ports))
        cmd = ["taskset", "-c", "1", binary, "--config", f"file:{config}"]
        self.proc = subprocess.Popen(
            cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.otlp = f"127.0.0.1:{ports['grpc']}"
        self.query = f"http://127.0.0.1:{ports['query']}"


# ---- one run -----------------------------------------------------------------------------------


def searchable(es: httpx.Client, prefix: str) -> int:
    answer = es.get(f"/{prefix}-jaeger-span-*/_count")
    return int(answer.json().get("count", 0)) if answer.status_code == 200 else 0


def read_costs(system: System, node_sid: int, trace_ids: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    sid = system.proc.pid
    cases = {
        "by_id": [f"{system.query}/api/traces/{t}" for t in trace_ids],
        "search": [
            f"{system.query}/api/traces?service=svc-{n % SERVICES}&limit=20&lookback=1h"
            for n in range(20)
        ],
    }
    with httpx.Client(timeout=60) as client:
        for name, urls in cases.items():
            for url in urls[:3]:
                client.get(url)  # warm up
            latencies = []
            cpu = session_cpu(sid) + session_cpu(node_sid)
            for url in urls:
                began = time.perf_counter()
                answer = client.get(url)
                latencies.append(time.perf_counter() - began)
                assert answer.status_code == 200 and answer.json()["data"], (url, answer.text[:200])
            cpu = session_cpu(sid) + session_cpu(node_sid) - cpu
            out[f"{name}_p50_ms"] = statistics.median(latencies) * 1000
            out[f"{name}_cpu_ms"] = cpu / len(urls) * 1000
    return out


def run(
    system: System, node: SearchNode, bodies: list[bytes], trace_ids: list[str], pace: float
) -> dict[str, float]:
    assert node.process is not None
    node_sid = node.process.pid
    total = len(bodies) * REQUEST_SPANS
    acks: list[tuple[float, int]] = []
    counts: list[tuple[float, int]] = []
    with httpx.Client(base_url=node.url, timeout=60) as es:
        system.wait_up()
        cpu_c, cpu_n = session_cpu(system.proc.pid), session_cpu(node_sid)
        began = time.monotonic()
        refused: list[int] = []
        sender = threading.Thread(target=send, args=(system.otlp, bodies, acks, pace, refused))
        sender.start()
        deadline = began + 900
        while time.monotonic() < deadline:
            count = searchable(es, system.prefix)
            counts.append((time.monotonic(), count))
            if count >= total and not sender.is_alive():
                break
            time.sleep(0.2)
        done = time.monotonic()
        sender.join()
        cpu_c, cpu_n = session_cpu(system.proc.pid) - cpu_c, session_cpu(node_sid) - cpu_n
        rss = peak_rss_mb(system.proc.pid)
        last_ack = max(t for t, _ in acks)
        # the lag from each acknowledgement to the moment that many spans were searchable
        lags, acked = [], 0
        for at, n in sorted(acks):
            acked += n
            seen = next((t for t, c in counts if c >= acked), done)
            lags.append(max(0.0, seen - at))
        es.post(f"/{system.prefix}-jaeger-span-*/_refresh")
        es.post(
            f"/{system.prefix}-jaeger-span-*/_forcemerge",
            params={"max_num_segments": "1"},
            timeout=600,
        )
        stats = es.get(f"/{system.prefix}-jaeger-span-*/_stats/store,docs").json()
        store = stats["_all"]["primaries"]["store"]["size_in_bytes"]
        docs = stats["_all"]["primaries"]["docs"]["count"]  # nested documents included
        assert docs >= total, (docs, total)
    result = {
        "spans_per_s": total / (done - began),
        "ack_to_searchable_s": done - last_ack,
        "lag_max_s": max(lags),
        "collector_us_per_span": cpu_c / total * 1e6,
        "es_us_per_span": cpu_n / total * 1e6,
        "bytes_per_span": store / total,
        "rss_mb": rss,
        "refused_requests": float(len(refused)),
    }
    result.update(read_costs(system, node_sid, trace_ids))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each system, alternating")
    parser.add_argument("--only", choices=("tracemesh", "jaeger"), default=None)
    parser.add_argument(
        "--paced",
        type=float,
        default=0.0,
        help="offer this fraction of each system's measured rate (0: all at once)",
    )
    args = parser.parse_args()
    binary = subprocess.run(
        [str(ROOT / "bench" / "jaeger" / "build.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    node = SearchNode(*node_spec(), java_options="-Xms1g -Xmx1g")
    node.start()
    logs = Path(tempfile.mkdtemp(prefix="bench-es-jaeger-"))
    print(f"node up in {node.startup_seconds:.0f}s; logs in {logs}", flush=True)
    results: dict[str, list[dict[str, float]]] = {"tracemesh": [], "jaeger": []}
    order = ["tracemesh", "jaeger"] if args.only is None else [args.only]
    try:
        for n in range(args.runs):
            for name in order:
                bodies = requests(
                    args.spans, seed=100 * n + len(results[name]) + 1 + 50 * (name == "jaeger")
                )
                first = int.from_bytes(
                    svc.ExportTraceServiceRequest.FromString(bodies[0])
                    .resource_spans[0]
                    .scope_spans[0]
                    .spans[0]
                    .trace_id,
                    "big",
                )
                trace_ids = [format(first + k * 37, "032x") for k in range(20)]
                prefix = f"b{n}{name[0]}{time.monotonic_ns() % 10**6}"
                log = logs / f"{prefix}.log"
                system: System = (
                    Tracemesh(node.url, prefix, log)
                    if name == "tracemesh"
                    else Jaeger(binary, node.url, prefix, log)
                )
                pace = 0.0
                if args.paced and results[name]:
                    pace = args.paced * statistics.median(r["spans_per_s"] for r in results[name])
                load_before = os.getloadavg()[0]
                try:
                    result = run(system, node, bodies, trace_ids, pace)
                finally:
                    system.stop()
                results[name].append(result)
                shown = ", ".join(f"{k} {v:,.2f}" for k, v in result.items())
                print(
                    f"{name} run {n + 1} (load {load_before:.1f}->{os.getloadavg()[0]:.1f}"
                    f"{f', paced {pace:,.0f}/s' if pace else ''}): {shown}",
                    flush=True,
                )
    finally:
        node.remove()
    if args.only is None:
        print("\n| | tracemesh | Jaeger | ratio |\n|---|---|---|---|")
        for key in results["tracemesh"][0]:
            ours = statistics.median(r[key] for r in results["tracemesh"])
            theirs = statistics.median(r[key] for r in results["jaeger"])
            print(f"| {key} | {ours:,.2f} | {theirs:,.2f} | {ours / theirs if theirs else 0:.2f} |")


if __name__ == "__main__":
    main()
