"""`tracemesh sidecar` and `tracemesh gateway` as a user runs them (real processes, flags, admin
port, SIGTERM), and the sampling decision as the backend sees it: percentage, forcing, debug ids,
and remote strategies from the collector's `/api/sampling`."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.mesh_apps import MESH_YAML, Formatter, Hello, mesh, tags, wait_for_trace
from tests.e2e.server import ROOT, Server, free_port, start
from tests.integration.mesh.harness import run


@pytest.fixture
def mesh_file(tmp_path: Path) -> str:
    path = tmp_path / "mesh.yaml"
    path.write_text(MESH_YAML)
    return str(path)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"never healthy:\n{log.read_text()}")


@pytest.fixture
def roles(server: Server, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A static web app behind `tracemesh sidecar`, with `tracemesh gateway` in front."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>hello from the app</h1>")
    (tmp_path / "gw.yaml").write_text("gateway:\n  routes:\n    - {prefix: /, service: web}\n")
    ports = {name: free_port() for name in ("app", "inbound", "outbound", "gateway",
                                             "sidecar_admin", "gateway_admin")}  # fmt: skip
    commands = {
        "app": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(ports["app"]),
                "--directory", str(site)],
        "sidecar": [sys.executable, "-m", "tracemesh", "sidecar", "--service", "web",
                    "--label", "version=v7", "--app-port", str(ports["app"]),
                    "--inbound-port", str(ports["inbound"]),
                    "--outbound-port", str(ports["outbound"]),
                    "--admin-port", str(ports["sidecar_admin"]),
                    "--collector", server.otlp_grpc, "--service-port", "80"],
        "gateway": [sys.executable, "-m", "tracemesh", "gateway", "--mesh",
                    str(tmp_path / "gw.yaml"), "--endpoint", f"web=127.0.0.1:{ports['inbound']}",
                    "--port", str(ports["gateway"]), "--admin-port", str(ports["gateway_admin"]),
                    "--collector", f"http://127.0.0.1:{server.ports['otlp_http']}",
                    "--collector-protocol", "http", "--sampling", "0"],
    }  # fmt: skip
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: tmp_path / f"{name}.log" for name in commands}
    try:
        for name, argv in commands.items():
            with logs[name].open("wb") as out:
                procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_healthy(f"http://127.0.0.1:{ports['sidecar_admin']}/health", procs["sidecar"],
                     logs["sidecar"])  # fmt: skip
        wait_healthy(f"http://127.0.0.1:{ports['gateway_admin']}/health", procs["gateway"],
                     logs["gateway"])  # fmt: skip
        yield {"ports": ports, "procs": procs, "logs": logs}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_cli_roles_trace_a_request_and_expose_health_and_metrics(
    server: Server, roles: dict[str, Any]
) -> None:
    ports = roles["ports"]
    # Sampling is 0 at the gateway: only a request that asks for a trace gets one.
    plain = httpx.get(f"http://127.0.0.1:{ports['gateway']}/index.html", timeout=10)
    assert plain.status_code == 200 and "hello from the app" in plain.text
    response = httpx.get(f"http://127.0.0.1:{ports['gateway']}/index.html", timeout=10,
                         headers={"jaeger-debug-id": "cli-roles-1"})  # fmt: skip
    assert response.status_code == 200
    trace = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and trace is None:
        found = httpx.get(f"{server.query}/api/traces", timeout=10, params={
            "service": "ingress-gateway.default", "tags": '{"jaeger-debug-id":"cli-roles-1"}',
            "lookback": "1h"}).json()["data"]  # fmt: skip
        if found and len(found[0]["spans"]) == 3:
            trace = found[0]
        time.sleep(0.1)
    assert trace is not None, roles["logs"]["gateway"].read_text()
    names = {
        (trace["processes"][s["processID"]]["serviceName"], tags(s)["span.kind"]): s
        for s in trace["spans"]
    }
    gw = "ingress-gateway.default"
    assert set(names) == {(gw, "server"), (gw, "client"), ("web.default", "server")}
    web, gateway, upstream = (
        names["web.default", "server"],
        names[gw, "server"],
        names[gw, "client"],
    )
    assert web["references"][0]["spanID"] == upstream["spanID"]
    assert upstream["references"][0]["spanID"] == gateway["spanID"]
    assert web["operationName"] == gateway["operationName"] == "web:80/*"
    assert tags(web)["istio.canonical_revision"] == "v7"
    # The plain request made no span, but its metrics count.
    metrics = httpx.get(f"http://127.0.0.1:{ports['sidecar_admin']}/metrics", timeout=10).text
    line = next(x for x in metrics.splitlines() if x.startswith("istio_requests_total{"))
    assert 'reporter="destination"' in line and 'destination_workload="web-v7"' in line
    assert 'response_code="200"' in line and line.endswith(" 2.0")
    assert "istio_request_duration_milliseconds_bucket{" in metrics
    gw_metrics = httpx.get(f"http://127.0.0.1:{ports['gateway_admin']}/metrics", timeout=10).text
    assert 'destination_service="web"' in gw_metrics
    health = httpx.get(f"http://127.0.0.1:{ports['sidecar_admin']}/health", timeout=10).json()
    assert health["roles"] == {"inbound": True, "outbound": True, "admin": True}
    # Outbound from the app to an unknown host: 404 NR, no open relay.
    refused = httpx.get(f"http://127.0.0.1:{ports['outbound']}/", timeout=10,
                        headers={"host": "example.com"})  # fmt: skip
    assert refused.status_code == 404
    for name in ("sidecar", "gateway"):
        roles["procs"][name].send_signal(signal.SIGTERM)
        assert roles["procs"][name].wait(20) == 0, roles["logs"][name].read_text()


def test_sampling_percentage_forcing_and_debug_ids(server: Server, mesh_file: str) -> None:
    hello = Hello()

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with mesh(server, mesh_file, hello, {"v1": Formatter("v1")}, sampling=50.0,
                        trust="all") as m, httpx.AsyncClient(timeout=10) as client:  # fmt: skip
            # The draw is the request id's first 8 hex digits mod 10000: 4999 in, 5000 out.
            for key, draw in (("in", 4999), ("out", 5000)):
                request_id = f"{draw:08x}-0000-4000-8000-000000000000"
                response = await client.get(f"{m.url}/sayHello/x",
                                            headers={"x-request-id": request_id})  # fmt: skip
                out[key] = response.json()["formatter"]["headers"]
            for proxy in (m.gateway, m.hello, *m.formatters.values()):
                proxy.sampler.percentage = 0.0
            response = await client.get(f"{m.url}/sayHello/x", headers={"jaeger-debug-id": "d1"})
            out["debug"] = response.json()["formatter"]["headers"]
            response = await client.get(f"{m.url}/sayHello/x",
                                        headers={"x-envoy-force-trace": "1"})  # fmt: skip
            out["forced"] = response.json()["formatter"]["headers"]
            await asyncio.sleep(1.5)  # a reporting interval: unsampled spans would have arrived
            out["sent"] = sum(p.reporter.sent for p in (m.gateway, m.hello, *m.formatters.values())
                              if p.reporter)  # fmt: skip
        return out

    out = run(main())
    assert out["in"]["x-b3-sampled"] == "1" and out["in"]["x-request-id"][14] == "9"
    assert out["out"]["x-b3-sampled"] == "0" and out["out"]["x-request-id"][14] == "4"
    assert out["debug"]["x-b3-sampled"] == "1" and out["debug"]["x-b3-flags"] == "1"
    assert out["forced"]["x-b3-sampled"] == "1"  # trust=all: forcing from outside is honoured
    assert out["forced"]["x-request-id"][14] == "a"
    for key in ("in", "debug", "forced"):
        trace = run(wait_for_trace(server, out[key]["x-b3-traceid"], 5))
        assert len(trace["spans"]) == 5  # the gateway's two, two at hello, one at the formatter
    assert out["sent"] == 15
    missing = httpx.get(f"{server.query}/api/traces/{out['out']['x-b3-traceid']}", timeout=10)
    assert missing.status_code == 404


def test_remote_strategies_from_the_collector_replace_the_percentage(
    tmp_path: Path, mesh_file: str
) -> None:
    strategies = tmp_path / "strategies.json"
    strategies.write_text(json.dumps({
        "default_strategy": {"type": "probabilistic", "param": 1.0},
        "service_strategies": [{"service": "hello.default", "type": "probabilistic", "param": 0}],
    }))  # fmt: skip
    backend = start(tmp_path, "--sampling.strategies-file", str(strategies))
    try:
        sampling_server = f"http://127.0.0.1:{backend.ports['jaeger_http']}"

        async def main() -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
            async with mesh(backend, mesh_file, Hello(), {"v1": Formatter("v1")}, sampling=0.0,
                            sampling_server=sampling_server) as m:  # fmt: skip
                assert m.hello.poller is not None and m.hello.poller.fetches == 1
                hello_strategy = m.hello.sampler.strategy
                async with httpx.AsyncClient(timeout=10) as client:
                    hello_port = m.hello.port_of("inbound")
                    formatter_port = m.formatters["v1"].port_of("inbound")
                    to_hello = await client.get(f"http://127.0.0.1:{hello_port}/sayHello/a")
                    to_formatter = await client.get(
                        f"http://127.0.0.1:{formatter_port}/formatGreeting?name=b"
                    )
                return to_hello.json(), to_formatter.json(), [hello_strategy]

        to_hello, to_formatter, (strategy,) = run(main())
        assert strategy.probability == 0.0
        assert to_hello["formatter"]["headers"]["x-b3-sampled"] == "0"  # hello.default: 0
        assert to_formatter["headers"]["x-b3-sampled"] == "1"  # the default strategy: 1.0
        trace = run(wait_for_trace(backend, to_formatter["headers"]["x-b3-traceid"], 1))
        assert trace["processes"][trace["spans"][0]["processID"]]["serviceName"] == (
            "formatter.default"
        )
    finally:
        backend.stop()
