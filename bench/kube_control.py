"""The mesh control plane on a real API server (the tests' etcd, kube-apiserver and controller
manager): 1,000 Services with 5,000 endpoints in one namespace (the worst case for a proxy, which
holds its namespace's tables), 20 proxies following it, 20 VirtualService changes.

  propagation   from a VirtualService apply's answer to each of the 20 proxies holding the new
                tables (long poll answered, mesh and registry parsed by the proxy's own client)
  control       the control plane's RSS and CPU time after the load and the changes
  proxy tables  memory of one proxy's parsed tables at that size (tracemalloc)

Usage: python bench/kube_control.py [--services 1000] [--endpoints-per-service 5]
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
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.kube.control_plane import ControlPlane, eventually, free_port

from tracemesh.kube.cluster import Cluster
from tracemesh.kube.crd import istio_manifests
from tracemesh.mesh.config_file import load_mesh
from tracemesh.mesh.control_client import ControlClient
from tracemesh.mesh.registry import registry_from_mapping

NS = "bench-mesh"


def slices(services: int, per: int) -> list[dict[str, Any]]:
    out = []
    for n in range(services):
        name = f"svc-{n}"
        out.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-x",
                    "namespace": NS,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "ports": [{"port": 8080, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": [f"10.{n // 250}.{n % 250}.{e + 1}"]} for e in range(per)
                ],
            }
        )
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"selector": {"app": name}, "ports": [{"port": 8080}]},
            }
        )
    return out


def route(weight: int) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "svc-0", "namespace": NS},
        "spec": {
            "hosts": ["svc-0"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": "svc-0"}, "weight": weight},
                        {"destination": {"host": "svc-1"}, "weight": 100 - weight},
                    ]
                }
            ],
        },
    }


async def propagation(kubeconfig: Path, url: str, proxies: int, changes: int) -> list[float]:
    cluster = Cluster(str(kubeconfig))
    await cluster.start()
    seen: dict[int, dict[int, float]] = {}  # weight -> proxy -> when its tables held it
    clients = []
    for number in range(proxies):

        def apply(mesh: Any, registry: Any, number: int = number) -> None:
            rule = mesh.routes.get("svc-0")
            if rule is not None:
                weight = rule.http[0].route[0].weight
                seen.setdefault(weight, {}).setdefault(number, time.perf_counter())

        client = ControlClient(url, NS, apply)
        await client.start()
        clients.append(client)
    times: list[float] = []
    try:
        await cluster.apply(route(50))
        deadline = time.perf_counter() + 60
        while len(seen.get(50, {})) < proxies and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        for change in range(changes):
            weight = 10 + change  # a new split each time
            started = time.perf_counter()
            await cluster.apply(route(weight))
            applied = time.perf_counter()
            deadline = applied + 30
            while len(seen.get(weight, {})) < proxies and time.perf_counter() < deadline:
                await asyncio.sleep(0.002)
            if len(seen.get(weight, {})) < proxies:
                raise SystemExit(
                    f"change {change}: {len(seen.get(weight, {}))} proxies of {proxies} in 30 s"
                )
            times += [t - applied for t in seen[weight].values()]
            del started
    finally:
        for client in clients:
            await client.stop()
        await cluster.close()
    return times


def _up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints-per-service", type=int, default=5)
    parser.add_argument("--proxies", type=int, default=20)
    parser.add_argument("--changes", type=int, default=20)
    options = parser.parse_args()
    plane = ControlPlane()
    plane.start()
    process = None
    try:
        plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(istio_manifests()))
        plane.kubectl("create", "namespace", NS)
        plane.kubectl("create", "namespace", "tracemesh")
        port, admin = free_port(), free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tracemesh",
                "control",
                f"--kubeconfig={plane.kubeconfig}",
                "--host=127.0.0.1",
                f"--port={port}",
                f"--admin.http-port={admin}",
                "--log-level=warning",
            ]
        )
        url = f"http://127.0.0.1:{port}"
        eventually(lambda: _up(admin), timeout=30, what="control plane up")
        control = psutil.Process(process.pid)
        load = os.getloadavg()[0]
        started = time.monotonic()
        documents = slices(options.services, options.endpoints_per_service)
        for at in range(0, len(documents), 500):
            plane.kubectl(
                "apply",
                "--server-side",
                "-f",
                "-",
                stdin=yaml.safe_dump_all(documents[at : at + 500]),
                timeout=300,
            )

        def loaded() -> bool:
            with urllib.request.urlopen(f"{url}/v1/config?namespace={NS}&wait=0") as answer:
                body = json.loads(answer.read())
            registry = body["registry"]
            return len(registry) == options.services

        eventually(loaded, timeout=300, what="every endpoint in the tables")
        load_seconds = time.monotonic() - started
        cpu_loaded = sum(control.cpu_times()[:2])
        times = asyncio.run(propagation(plane.kubeconfig, url, options.proxies, options.changes))
        cpu_end = sum(control.cpu_times()[:2])
        status = Path(f"/proc/{process.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        with urllib.request.urlopen(f"{url}/v1/config?namespace={NS}&wait=0") as answer:
            body = json.loads(answer.read())
        tracemalloc.start()
        mesh = load_mesh(body["mesh"])
        registry = registry_from_mapping(body["registry"])
        table_bytes, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert len(registry.services) == options.services and mesh.routes
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        plane.stop()
    ms = 1000.0
    ordered = sorted(times)
    report = {
        "load_average_1m": round(load, 2),
        "services": options.services,
        "endpoints": options.services * options.endpoints_per_service,
        "seconds_to_load_every_endpoint": round(load_seconds, 1),
        "propagation_ms": {
            "p50": round(statistics.median(times) * ms, 1),
            "p99": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * ms, 1),
            "max": round(ordered[-1] * ms, 1),
            "n": len(times),
        },
        "control_cpu_s_loading": round(cpu_loaded, 2),
        "control_cpu_ms_per_change": round((cpu_end - cpu_loaded) * ms / options.changes, 1),
        "control_rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
        "control_peak_rss_mb": round(int(fields["VmHWM"].split()[0]) / 1024, 1),
        "proxy_tables_mb": round(table_bytes / 2**20, 2),
        "tables_json_kb": round(len(json.dumps(body)) / 1024, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
