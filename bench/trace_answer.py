"""Benchmark: how long the query server takes to answer `GET /api/traces/{id}` for a large trace.

Run: `.venv/bin/python bench/trace_answer.py [--runs 7]`. Starts two real `tracemesh all-in-one`
processes on loopback, one with the C accelerators and one with `TRACEMESH_NO_ACCEL=1` (the
pure-Python reference), sends both the same traces over OTLP/HTTP, then asks each for every trace
in turn, alternating servers so that both see the same load. For each answer it records the wall
time the client waited and the CPU time the server process spent (user + system, from psutil),
and prints their medians. Both servers must answer with the same bytes.

Traces: the browser tests' 10,000- and 40,000-span traces (`tests/e2e/ui_seed.large`: one
attribute a span) and a 10,000-span trace of richer spans (eight attributes, an event on every
tenth span, a link on every hundredth), closer to what instrumented HTTP services send.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the end-to-end tests' server starter and seed data

from tests.e2e import ui_seed  # noqa: E402
from tests.e2e.server import Server, start  # noqa: E402

from tracemesh.model.span import Event, Link, Span, SpanKind  # noqa: E402


def rich(rnd: random.Random, start_ns: int, count: int) -> list[Span]:
    """`ui_seed.large`'s tree shape with spans carrying what HTTP and DB instrumentation sets."""
    spans = ui_seed.large(rnd, start_ns, count)
    for i, span in enumerate(spans):
        span.kind = SpanKind.CLIENT if i % 2 else SpanKind.SERVER
        span.attributes |= {
            "http.request.method": "GET",
            "url.full": f"https://shop.example/api/items/{i}?page=2",
            "http.response.status_code": 200,
            "server.address": "shop.example",
            "server.port": 443,
            "network.protocol.version": "1.1",
            "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64)",
        }
        if i % 10 == 0:
            span.events.append(
                Event(span.start_ns + 1000, "cache.miss", {"cache.key": f"item:{i}", "hit": False})
            )
        if i % 100 == 0:
            span.links.append(Link(rnd.randbytes(16), rnd.randbytes(8)))
    return spans


def seed(servers: list[Server]) -> dict[str, str]:
    """Sends the same traces to every server; their ids (hex) by name."""
    rnd = random.Random(11)
    now = time.time_ns() - 60_000_000_000
    traces = {
        "seed 10k": ui_seed.large(rnd, now, 10_000),
        "seed 40k": ui_seed.large(rnd, now + 1_000_000_000, 40_000),
        "rich 10k": rich(rnd, now + 2_000_000_000, 10_000),
    }
    for spans in traces.values():
        for server in servers:
            ui_seed.post(server.otlp_http, spans)
    return {name: spans[0].trace_id.hex() for name, spans in traces.items()}


def server_cpu(server: Server) -> float:
    times = psutil.Process(server.proc.pid).cpu_times()
    return float(times.user + times.system)


def answer(client: httpx.Client, server: Server, trace_id: str) -> tuple[float, float, bytes]:
    """(wall seconds, server CPU seconds, body) of one request."""
    cpu = server_cpu(server)
    started = time.perf_counter()
    response = client.get(f"{server.query}/api/traces/{trace_id}")
    wall = time.perf_counter() - started
    time.sleep(0.05)  # let the server's last bookkeeping land in its CPU counters
    response.raise_for_status()
    return wall, server_cpu(server) - cpu, response.content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="answers timed per trace and server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("accel", "python"):
            (Path(tmp) / name).mkdir()
        servers = {
            "C accel": start(Path(tmp) / "accel"),
            "Python": start(Path(tmp) / "python", env={"TRACEMESH_NO_ACCEL": "1"}),
        }
        try:
            run(servers, seed(list(servers.values())), args.runs)
        finally:
            for server in servers.values():
                server.stop()


def run(servers: dict[str, Server], ids: dict[str, str], runs: int) -> None:
    print(f"{psutil.cpu_count()} CPUs, load average {psutil.getloadavg()[0]:.1f}; {runs} runs")
    print(f"{'trace':9} {'server':8} {'bytes':>10} {'wall ms':>8} {'CPU ms':>8}")
    with httpx.Client(timeout=120) as client:
        for name, trace_id in ids.items():
            walls: dict[str, list[float]] = {label: [] for label in servers}
            cpus: dict[str, list[float]] = {label: [] for label in servers}
            bodies: dict[str, bytes] = {}
            for label, server in servers.items():  # a first answer each, untimed: warm-up
                bodies[label] = answer(client, server, trace_id)[2]
            if len(set(bodies.values())) != 1:
                raise SystemExit(f"{name}: the servers' answers differ")
            for _ in range(runs):
                for label, server in servers.items():
                    wall, cpu, _ = answer(client, server, trace_id)
                    walls[label].append(wall)
                    cpus[label].append(cpu)
            for label in servers:
                size = len(bodies[label])
                wall_ms = statistics.median(walls[label]) * 1000
                cpu_ms = statistics.median(cpus[label]) * 1000
                print(f"{name:9} {label:8} {size:>10,} {wall_ms:>8.0f} {cpu_ms:>8.0f}")
            fast = max(statistics.median(cpus["C accel"]), 1e-3)
            ratio = statistics.median(cpus["Python"]) / fast
            print(f"{name:9} Python / C accel CPU: {ratio:.1f}x")


if __name__ == "__main__":
    main()
