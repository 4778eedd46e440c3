"""gRPC benchmark: unary calls direct vs through a real `tracemesh sidecar` pair (the caller's
outbound listener -> HTTP/2 -> the callee's inbound listener -> the gRPC server), side by side.

The gRPC server (grpcio, one unary method returning its request reversed) and the load run on
CPU 1, both sidecars on CPU 0, so "CPU per call" is the pair's own: two proxies, each parsing,
routing, propagating and (at 100%) building and reporting a span over OTLP/gRPC to a real
`tracemesh all-in-one` (CPU 1) for every call. Per target and run:
  c=1      one caller, calls back to back: p50/p99 latency (added = pair - direct)
  c=32     32 callers on one channel (one HTTP/2 connection): calls/s, and the pair's CPU time
           per call and RSS
The grpcio client itself is the bottleneck at c=32 for `direct`; read the pair's CPU per call.
Usage: python bench/proxy_grpc.py [--runs 3] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy import (  # the HTTP benchmark's process helpers
    ROOT,
    cpu_seconds,
    free_port,
    percentile,
    pinned,
    rss,
    span_counts,
    start_backend,
    wait_port,
)

METHOD = "/bench.Echo/Reverse"
PAYLOAD = b"x" * 100


def serve_echo(port: int) -> None:
    import grpc
    import uvloop

    async def main() -> None:
        server = grpc.aio.server()

        async def reverse(request: bytes, context: Any) -> bytes:
            return request[::-1]

        handler = grpc.unary_unary_rpc_method_handler(reverse)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("bench.Echo", {"Reverse": handler}),)
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.run(main())


def load(port: int, authority: str, seconds: float, callers: int) -> None:
    """Calls for `seconds` with `callers` in flight; prints the latencies as JSON."""
    import grpc
    import uvloop

    async def main() -> list[float]:
        options = [("grpc.default_authority", authority)] if authority else []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            call = channel.unary_unary(METHOD)
            for _ in range(200):  # warm up
                await call(PAYLOAD)
            latencies: list[float] = []
            deadline = time.perf_counter() + seconds

            async def caller() -> None:
                while (start := time.perf_counter()) < deadline:
                    await call(PAYLOAD)
                    latencies.append(time.perf_counter() - start)

            await asyncio.gather(*(caller() for _ in range(callers)))
            return latencies

    print(json.dumps(uvloop.run(main())))


def run_load(port: int, authority: str, seconds: float, callers: int) -> list[float]:
    argv = [sys.executable, __file__, "--load", str(port), authority, str(seconds), str(callers)]
    out = subprocess.run(pinned(1, argv), check=True, capture_output=True, text=True).stdout
    return sorted(json.loads(out))


def start_sidecar(service: str, args: list[str], collector: int, sampling: float) -> Any:
    argv = [sys.executable, "-m", "tracemesh", "sidecar", "--service", service,
            "--collector", f"127.0.0.1:{collector}", "--sampling", str(sampling),
            "--log-level", "warning", *args]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(pinned(0, argv), env=env)


def measure(
    port: int, authority: str, procs: list[psutil.Process], seconds: float
) -> dict[str, float]:
    c1 = run_load(port, authority, seconds, 1)
    before = cpu_seconds(procs)
    c32 = run_load(port, authority, seconds, 32)
    cpu = cpu_seconds(procs) - before
    return {
        "p50": percentile(c1, 0.5), "p99": percentile(c1, 0.99),
        "rps": len(c32) / seconds, "cpu_per_call": cpu / len(c32) if procs else 0.0,
        "rss": float(rss(procs)) if procs else 0.0,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--serve-echo", type=int)
    parser.add_argument("--load", nargs=4)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo(args.serve_echo)
        return
    if args.load:
        port, authority, seconds, callers = args.load
        load(int(port), authority, float(seconds), int(callers))
        return
    echo_port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    echo = subprocess.Popen(pinned(1, [sys.executable, __file__, "--serve-echo", str(echo_port)]),
                            env=env)  # fmt: skip
    backend, collector = start_backend()
    results: dict[str, list[dict[str, float]]] = {}
    spans: dict[str, dict[str, float]] = {}
    try:
        wait_port(echo_port)
        for sampling in (0.0, 100.0):
            name = f"sidecar pair {sampling:.0f}%"
            inbound, outbound, admins = free_port(), free_port(), (free_port(), free_port())
            callee = start_sidecar("echo", ["--app-port", str(echo_port), "--inbound-port",
                                            str(inbound), "--outbound-port", str(free_port()),
                                            "--admin-port", str(admins[0])],
                                   collector, sampling)  # fmt: skip
            caller = start_sidecar("client", ["--app-port", "1", "--inbound-port",
                                              str(free_port()), "--outbound-port", str(outbound),
                                              "--admin-port", str(admins[1]), "--endpoint",
                                              f"echo=127.0.0.1:{inbound}"],
                                   collector, sampling)  # fmt: skip
            try:
                wait_port(inbound, 30)
                wait_port(outbound, 30)
                procs = [psutil.Process(callee.pid), psutil.Process(caller.pid)]
                for _ in range(args.runs):
                    results.setdefault("direct", []).append(
                        measure(echo_port, "", [], args.seconds)
                    )
                    results.setdefault(name, []).append(
                        measure(outbound, "echo:50051", procs, args.seconds))  # fmt: skip
                time.sleep(1.5)  # let the reporters flush
                sides = zip(("callee", "caller"), admins, strict=True)
                spans[name] = {side: span_counts(admin)["reported"] for side, admin in sides}
            finally:
                for proc in (callee, caller):
                    proc.terminate()
                    proc.wait(10)
    finally:
        echo.terminate()
        backend.send_signal(2)
        backend.wait(20)
    report(results, spans)


def report(results: dict[str, list[dict[str, float]]], spans: dict[str, Any]) -> None:
    med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
           for name, runs in results.items()}  # fmt: skip
    direct = med["direct"]
    print("| path | p50 c=1 | p99 c=1 | added p50 / p99 | calls/s c=32 | pair CPU per call "
          "| RSS (both) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, m in med.items():
        p50, p99 = (m[k] - direct[k] for k in ("p50", "p99"))
        added = "-" if name == "direct" else f"+{p50 * 1e6:,.0f} / +{p99 * 1e6:,.0f} µs"
        cpu = "-" if name == "direct" else f"{m['cpu_per_call'] * 1e6:,.0f} µs"
        size = "-" if name == "direct" else f"{m['rss'] / 1e6:.0f} MB"
        print(f"| {name} | {m['p50'] * 1e6:,.0f} µs | {m['p99'] * 1e6:,.0f} µs | {added} | "
              f"{m['rps']:,.0f} | {cpu} | {size} |")  # fmt: skip
    print("spans reported:", json.dumps(spans))


if __name__ == "__main__":
    main()
