"""Proxy benchmark: direct calls vs one tracemesh proxy hop vs one nginx hop, side by side, and
the real `tracemesh sidecar` (inbound side) with tracing at 0% and 100% sampling.

The upstream is nginx answering `ok` (1 worker, CPU 1). The proxy under test runs alone on CPU 0;
the load generators run on CPU 1 (so "one core" means one core, like perf-anchors.md B6). Both
proxies keep upstream connections alive and add one header (`x-b3-sampled: 1`).
Per target and run:
  rate     a separate Python process sends GET /x at a fixed moderate rate (default 1000 req/s
           over 4 keep-alive connections): p50/p99 latency, and the proxy's CPU and RSS
  c=1      wrk, 1 connection back to back: p50/p99 (the anchor's "+63 us" figure)
  max      wrk, 50 connections: requests/s on one core, and the proxy's CPU per 1000 req/s
Added latency = target - direct. Needs nginx and wrk (`apt-get install -y nginx wrk`).

`bare` is the floor for a Python proxy: perf-anchors.md B6's ~90-line asyncio + httptools proxy
(`bench/bare_proxy.py`), measured alongside so that machine load hits it and tracemesh alike.

The sidecar targets run `tracemesh sidecar` exactly as a user would (CPU 0), forwarding to the
same nginx upstream: at 0% it still reads and writes every trace header and x-request-id; at
100% it also builds a SERVER span per request and reports it over OTLP/gRPC to a real
`tracemesh all-in-one` (pinned with the load on CPU 1, whose CPU is not counted as the proxy's).
Spans the sidecar reported and dropped are read from its /metrics after the runs.
`--baseline DIR/src` adds the same two sidecars run from another tree's sources (an older commit,
`git archive <commit> src | tar -x -C DIR`, with the built C extensions copied in), so old and
new code are compared in one run.
Usage: python bench/proxy.py [--runs 3] [--seconds 5] [--rate 1000] [--no-sidecar]
                             [--baseline DIR/src]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
HAVE_TASKSET = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx-{name}.pid;
error_log {dir}/error-{name}.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {dir}/body-{name};
  proxy_temp_path {dir}/proxy-{name};
  fastcgi_temp_path {dir}/fcgi-{name};
  uwsgi_temp_path {dir}/uwsgi-{name};
  scgi_temp_path {dir}/scgi-{name};
  {body}
}}
"""
UPSTREAM_BODY = "server {{ listen 127.0.0.1:{port}; location / {{ return 200 'ok'; }} }}"
PROXY_BODY = """
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header x-b3-sampled 1;
    }}
  }}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if HAVE_TASKSET else argv


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_nginx(workdir: Path, name: str, body: str, cpu: int) -> subprocess.Popen[bytes]:
    conf = workdir / f"{name}.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, name=name, body=body))
    return subprocess.Popen(pinned(cpu, [NGINX, "-p", str(workdir), "-c", str(conf)]))


def start_backend() -> tuple[subprocess.Popen[bytes], int]:
    """A `tracemesh all-in-one` on free ports, pinned to CPU 1; (process, OTLP/gRPC port)."""
    flags = ["--otlp.grpc-port", "--otlp.http-port", "--collector.grpc-port",
             "--collector.http-port", "--zipkin.http-port", "--sampling.http-port",
             "--query.http-port", "--admin.http-port", "--agent.jaeger-compact-port",
             "--agent.jaeger-binary-port", "--agent.zipkin-compact-port"]  # fmt: skip
    ports = {flag: free_port() for flag in flags}
    argv = [sys.executable, "-m", "tracemesh", "all-in-one"]
    argv += [str(x) for flag, port in ports.items() for x in (flag, port)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(pinned(1, argv), env=env, stdout=subprocess.DEVNULL)
    wait_port(ports["--admin.http-port"], timeout=60)
    return proc, ports["--otlp.grpc-port"]


def start_sidecar(
    port: int, upstream: int, admin: int, collector: int, sampling: float, src: Path = ROOT / "src"
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "tracemesh", "sidecar", "--service", "bench",
            "--label", "version=v1", "--app-port", str(upstream), "--inbound-port", str(port),
            "--outbound-port", str(free_port()), "--admin-port", str(admin),
            "--collector", f"127.0.0.1:{collector}", "--sampling", str(sampling),
            "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.Popen(pinned(0, argv), env=env)


def span_counts(admin: int) -> dict[str, float]:
    """Requests served and spans reported and dropped, from a sidecar's /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts = {"reported": 0.0, "dropped": 0.0, "requests": 0.0}
    for line in text.splitlines():
        if line.startswith("istio_requests_total{"):
            counts["requests"] += float(line.split()[-1])
        if line.startswith("tracemesh_proxy_spans_reported_total "):
            counts["reported"] = float(line.split()[-1])
        elif line.startswith("tracemesh_proxy_spans_dropped_total{"):
            counts["dropped"] += float(line.split()[-1])
    return counts


def start_tracemesh(port: int, upstream: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, __file__, "--serve", str(port), str(upstream)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(pinned(0, argv), env=env)


def start_bare(port: int, upstream: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, str(ROOT / "bench" / "bare_proxy.py"), str(port), str(upstream)]
    return subprocess.Popen(pinned(0, argv))


def serve(port: int, upstream: int) -> None:
    """The tracemesh proxy as the benchmark runs it: every request to the upstream, one header
    added (as the tracing layer will), on uvloop."""
    import uvloop

    from tracemesh.mesh.handler import BaseHandler, Exchange, Forward, Respond
    from tracemesh.mesh.server import ProxyServer

    class Bench(BaseHandler):
        forward = Forward("127.0.0.1", upstream, set_headers=((b"x-b3-sampled", b"1"),))

        def on_request(self, exchange: Exchange) -> Forward | Respond:
            return self.forward

    async def main() -> None:
        server = ProxyServer(Bench())
        await server.start("127.0.0.1", port)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(1.0)

    uvloop.run(main())


# -- load at a fixed rate (runs in its own process on CPU 1) --


class _Client(asyncio.Protocol):
    """A keep-alive client reading `HTTP/1.1 200 ...content-length: N` responses."""

    def __init__(self) -> None:
        self.buffer = b""
        self.waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        length = int(re.search(rb"content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        if len(self.buffer) >= end + 4 + length:
            self.buffer = self.buffer[end + 4 + length :]
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)


async def fixed_rate(port: int, rate: float, seconds: float, connections: int) -> list[float]:
    import uvloop  # noqa: F401  (the caller installs it)

    loop = asyncio.get_running_loop()
    request = b"GET /x HTTP/1.1\r\nHost: bench\r\n\r\n"
    latencies: list[float] = []
    interval = connections / rate

    async def one(offset: float) -> None:
        _, client = await loop.create_connection(_Client, "127.0.0.1", port)
        assert client.transport is not None
        start = time.perf_counter() + offset
        n = 0
        while True:
            due = start + n * interval
            if due > start + seconds:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            client.waiter = loop.create_future()
            sent = time.perf_counter()
            client.transport.write(request)
            await client.waiter
            latencies.append(time.perf_counter() - sent)
            n += 1
        client.transport.close()

    await asyncio.gather(*(one(i * interval / connections) for i in range(connections)))
    return latencies


def load(port: int, rate: float, seconds: float, connections: int) -> None:
    import uvloop

    latencies = uvloop.run(fixed_rate(port, rate, seconds, connections))
    print(json.dumps(latencies))


def run_fixed_rate(port: int, args: argparse.Namespace) -> tuple[float, float, float]:
    argv = [sys.executable, __file__, "--load", str(port), str(args.rate), str(args.seconds), "4"]
    out = subprocess.run(pinned(1, argv), check=True, capture_output=True, text=True).stdout
    latencies = sorted(json.loads(out))
    achieved = len(latencies) / args.seconds
    return percentile(latencies, 0.50), percentile(latencies, 0.99), achieved


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def run_wrk(port: int, connections: int, seconds: float) -> tuple[float, float, float]:
    """(requests/s, p50, p99) from wrk --latency."""
    argv = [WRK, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency",
            f"http://127.0.0.1:{port}/x"]  # fmt: skip
    out = subprocess.run(pinned(1, argv), check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(label: str) -> float:
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * UNITS[unit]

    return rps, pct("50"), pct("99")


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        for each in [process, *process.children(recursive=True)]:
            times = each.cpu_times()
            total += times.user + times.system
    return total


def rss(processes: list[psutil.Process]) -> int:
    return sum(
        each.memory_info().rss
        for process in processes
        for each in [process, *process.children(recursive=True)]
    )


def measure(
    port: int, processes: list[psutil.Process], args: argparse.Namespace
) -> dict[str, float]:
    run_wrk(port, 50, 1)  # warm up: connections, caches, allocator
    before = cpu_seconds(processes)
    p50, p99, achieved = run_fixed_rate(port, args)
    rate_cpu = (cpu_seconds(processes) - before) / args.seconds
    rate_rss = rss(processes)
    _, c1_p50, c1_p99 = run_wrk(port, 1, args.seconds)
    before = cpu_seconds(processes)
    started = time.perf_counter()
    rps, _, _ = run_wrk(port, 50, args.seconds)
    max_cpu = (cpu_seconds(processes) - before) / (time.perf_counter() - started)
    return {
        "p50": p50, "p99": p99, "achieved": achieved, "rate_cpu": rate_cpu, "rss": rate_rss,
        "c1_p50": c1_p50, "c1_p99": c1_p99, "rps": rps, "max_cpu": max_cpu,
        "max_rss": rss(processes),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--no-sidecar", action="store_true", help="skip the sidecar targets")
    parser.add_argument("--baseline", type=Path, help="another tree's src: its sidecars too")
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=4, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    if args.load:
        port, rate, seconds, connections = args.load
        load(int(port), rate, seconds, int(connections))
        return
    for tool in (NGINX, WRK):
        if not Path(tool).exists():
            sys.exit(f"{tool} is missing: apt-get install -y nginx wrk")
    if not HAVE_TASKSET:
        print("warning: no taskset or a single CPU: nothing is pinned", file=sys.stderr)
    upstream_port, nginx_port, tracemesh_port = free_port(), free_port(), free_port()
    bare_port = free_port()
    sidecars: dict[str, tuple[int, int, float, Path]] = {}
    if not args.no_sidecar:
        sources = {"": ROOT / "src", **({" (baseline)": args.baseline} if args.baseline else {})}
        for suffix, src in sources.items():
            for sampling in (0.0, 100.0):
                sidecars[f"sidecar {sampling:.0f}%{suffix}"] = (
                    free_port(), free_port(), sampling, src)  # fmt: skip
    counts: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="tracemesh-bench-") as tmp:
        workdir = Path(tmp)
        proxy_body = PROXY_BODY.format(port=nginx_port, upstream=upstream_port)
        nginx_proxy = start_nginx(workdir, "proxy", proxy_body, cpu=0)
        tracemesh = start_tracemesh(tracemesh_port, upstream_port)
        bare = start_bare(bare_port, upstream_port)
        children = [
            start_nginx(workdir, "upstream", UPSTREAM_BODY.format(port=upstream_port), cpu=1),
            nginx_proxy, tracemesh, bare,
        ]  # fmt: skip
        nginx_children = children[:2]
        try:
            sidecar_children: dict[str, subprocess.Popen[bytes]] = {}
            if sidecars:
                backend, collector = start_backend()
                children.append(backend)
                for name, (port, admin, sampling, src) in sidecars.items():
                    sidecar_children[name] = start_sidecar(
                        port, upstream_port, admin, collector, sampling, src)  # fmt: skip
                    children.append(sidecar_children[name])
            for port in (upstream_port, nginx_port, tracemesh_port, bare_port):
                wait_port(port)
            for port, admin, _, _ in sidecars.values():
                wait_port(port, timeout=60)
                wait_port(admin, timeout=60)
            targets = {
                "direct": (upstream_port, []),
                "tracemesh": (tracemesh_port, [psutil.Process(tracemesh.pid)]),
                "bare": (bare_port, [psutil.Process(bare.pid)]),
                "nginx": (nginx_port, [psutil.Process(nginx_proxy.pid)]),
            }
            for name, (port, _, _, _) in sidecars.items():
                targets[name] = (port, [psutil.Process(sidecar_children[name].pid)])
            results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            for run in range(args.runs):
                for name, (port, processes) in targets.items():
                    results[name].append(measure(port, processes, args))
                    print(f"run {run + 1} {name}: {results[name][-1]['rps']:,.0f} req/s",
                          file=sys.stderr)  # fmt: skip
            time.sleep(2.0)  # the last spans' flush interval
            counts = {name: span_counts(admin) for name, (_, admin, _, _) in sidecars.items()}
        finally:
            for child in children:
                child.send_signal(signal.SIGQUIT if child in nginx_children else signal.SIGTERM)
            for child in children:
                child.wait(timeout=30)
    report(results, args)
    for name, count in counts.items():
        print(f"  {name}: {count['requests']:,.0f} requests, {count['reported']:,.0f} spans "
              f"reported, {count['dropped']:,.0f} dropped")  # fmt: skip


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    med = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
           for name, runs in results.items()}  # fmt: skip
    direct = med["direct"]
    us = 1e6
    print(f"\nmedian of {args.runs} runs; fixed rate {args.rate:.0f} req/s over 4 connections "
          f"for {args.seconds:.0f} s; max = wrk -t1 -c50; proxies on CPU 0, load on CPU 1\n"
          )  # fmt: skip
    print("| path | added p50 / p99 @ rate | added p50 / p99 c=1 | max req/s (1 core) | "
          "CPU per 1k req/s @ rate / @ max | RSS @ rate / @ max |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, m in med.items():
        if name == "direct":
            print(f"| direct | {m['p50'] * us:.0f} / {m['p99'] * us:.0f} µs (absolute) | "
                  f"{m['c1_p50'] * us:.0f} / {m['c1_p99'] * us:.0f} µs (absolute) | "
                  f"{m['rps']:,.0f} (upstream) | - | - |")  # fmt: skip
            continue
        per_k_rate = m["rate_cpu"] / (m["achieved"] / 1000)
        per_k_max = m["max_cpu"] / (m["rps"] / 1000)

        def added(key: str, m: dict[str, float] = m) -> str:
            return f"+{(m[key] - direct[key]) * us:.0f}"

        print(f"| {name} | {added('p50')} / {added('p99')} µs | {added('c1_p50')} / "
              f"{added('c1_p99')} µs | {m['rps']:,.0f} | {per_k_rate:.3f} / {per_k_max:.3f} core | "
              f"{m['rss'] / 2**20:.0f} / {m['max_rss'] / 2**20:.0f} MB |")  # fmt: skip
    n = med["nginx"]

    def cost(m: dict[str, float]) -> float:
        return m["max_cpu"] / m["rps"] * 1e6  # CPU µs per request at max

    print(f"\nCPU µs per request at max, and its ratio to nginx's ({cost(n):.1f} µs): "
          + "; ".join(f"{name} {cost(m):.1f} ({cost(m) / cost(n):.2f}x)"
                      for name, m in med.items() if name not in ("direct", "nginx")))  # fmt: skip
    for name in ("tracemesh", "bare"):
        t = med[name]
        latency_ratio = (t["p50"] - direct["p50"]) / max(n["p50"] - direct["p50"], 1e-9)
        print(f"{name} / nginx: max req/s {t['rps'] / n['rps']:.2f}x; added p50 at rate "
              f"{latency_ratio:.2f}x; one core carries {1e6 / cost(t):,.0f} req/s vs nginx's "
              f"{1e6 / cost(n):,.0f} ({cost(n) / cost(t):.2f}x)")  # fmt: skip
    t = med["tracemesh"]
    if "sidecar 100%" in med:
        s0, s1 = med["sidecar 0%"], med["sidecar 100%"]
        print(f"tracing: CPU per request at max {cost(t):.0f} µs plain proxy, {cost(s0):.0f} µs "
              f"sidecar 0%, {cost(s1):.0f} µs sidecar 100%; max req/s "
              f"{t['rps']:,.0f} / {s0['rps']:,.0f} / {s1['rps']:,.0f}; added p50 at rate "
              f"+{(s1['p50'] - t['p50']) * us:.0f} µs over the plain proxy")  # fmt: skip
    for name, runs in results.items():
        per_run = ", ".join(f"{r['rps']:,.0f}" for r in runs)
        print(f"  {name} max req/s per run: {per_run}")


if __name__ == "__main__":
    main()
