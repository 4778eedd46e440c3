"""The operator on a real control plane (the tests' etcd, kube-apiserver and controller manager):
how soon a `Jaeger` resource's objects exist, how fast the injection webhook answers, and how much
memory the operator holds.

  reconcile   from the create call's answer to the last of the resource's 7 objects seen on a
              watch (Deployment, 4 Services, ConfigMap, Ingress), one resource at a time
  admission   one AdmissionReview of a Deployment to inject, POSTed over a kept-alive TLS
              connection as the API server does (client-side time, the server-side histogram
              beside it), and Deployments applied through the API server, which calls the
              webhook for each (the whole call's time)
  rss         the operator's resident and peak memory after the runs, and its CPU time

Usage: python bench/kube_operator.py [--resources 20] [--reviews 2000] [--deployments 50]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import ssl
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.kube.control_plane import ControlPlane
from tests.integration.kube.operator_process import OperatorProcess

from tracemesh.kube.cluster import Cluster

NAMESPACE = "bench"
OBJECTS = 7  # simplest: Deployment, 4 Services, ConfigMap, Ingress


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def reconcile_times(kubeconfig: Path, count: int) -> list[float]:
    cluster = Cluster(str(kubeconfig))
    await cluster.start()
    seen: dict[str, set[tuple[str, str]]] = {}
    arrived: dict[str, float] = {}

    async def follow(api_version: str, kind: str) -> None:
        labels = {"app.kubernetes.io/managed-by": "tracemesh-operator"}
        async for _, obj in cluster.watch(api_version, kind, NAMESPACE, labels):
            meta = obj["metadata"]
            owner = meta["labels"]["app.kubernetes.io/instance"]
            seen.setdefault(owner, set()).add((kind, meta["name"]))
            if len(seen[owner]) == OBJECTS and owner not in arrived:
                arrived[owner] = time.perf_counter()

    watches = [
        asyncio.create_task(follow(v, k))
        for v, k in (
            ("apps/v1", "Deployment"),
            ("v1", "Service"),
            ("v1", "ConfigMap"),
            ("networking.k8s.io/v1", "Ingress"),
        )
    ]
    await asyncio.sleep(1.0)  # the watches are open
    times = []
    try:
        for number in range(count):
            name = f"r{number}"
            await cluster.apply(
                {
                    "apiVersion": "jaegertracing.io/v1",
                    "kind": "Jaeger",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {},
                }
            )
            created = time.perf_counter()
            deadline = created + 30
            while name not in arrived and time.perf_counter() < deadline:
                await asyncio.sleep(0.002)
            if name not in arrived:
                raise SystemExit(f"{name}: objects not all present in 30 s: {seen.get(name)}")
            times.append(arrived[name] - created)
    finally:
        for task in watches:
            task.cancel()
        await cluster.close()
    return times


def review_body(number: int) -> bytes:
    deployment = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": f"app-{number}",
            "namespace": NAMESPACE,
            "annotations": {"sidecar.jaegertracing.io/inject": "r0"},
        },
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "app", "image": "x"}]},
            },
        },
    }
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(number),
                "namespace": NAMESPACE,
                "operation": "CREATE",
                "object": deployment,
            },
        }
    ).encode()


def admission_times(port: int, count: int) -> list[float]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    times = []
    for number in range(count):
        body = review_body(number)
        started = time.perf_counter()
        conn.request("POST", "/mutate-v1-deployment", body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        data = answer.read()
        times.append(time.perf_counter() - started)
        assert answer.status == 200 and b'"patch"' in data, data[:200]
    conn.close()
    return times


async def through_api_server(kubeconfig: Path, count: int) -> list[float]:
    """Deployments created through the API server, which calls the webhook for each."""
    cluster = Cluster(str(kubeconfig))
    await cluster.start()
    times = []
    try:
        for number in range(count):
            body = json.loads(review_body(number))["request"]["object"]
            body["metadata"]["name"] = f"via-api-{number}"
            started = time.perf_counter()
            stored = await cluster.apply(body)
            times.append(time.perf_counter() - started)
            names = [c["name"] for c in stored["spec"]["template"]["spec"]["containers"]]
            assert names == ["app", "jaeger-agent"], names
    finally:
        await cluster.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resources", type=int, default=20)
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--deployments", type=int, default=50)
    options = parser.parse_args()
    plane = ControlPlane()
    plane.start()
    operator = OperatorProcess(plane)
    try:
        operator.start()
        plane.kubectl("create", "namespace", NAMESPACE)
        process = psutil.Process(operator.proc.pid if operator.proc else 0)
        child = next(iter(process.children(recursive=True)), process)
        load = os.getloadavg()[0]
        cpu0 = sum(child.cpu_times()[:2])
        reconcile = asyncio.run(reconcile_times(plane.kubeconfig, options.resources))
        cpu1 = sum(child.cpu_times()[:2])
        admission = admission_times(operator.webhook_port, options.reviews)
        cpu2 = sum(child.cpu_times()[:2])
        api = asyncio.run(through_api_server(plane.kubeconfig, options.deployments))
        status = Path(f"/proc/{child.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss_mb = int(fields["VmRSS"].split()[0]) / 1024
        peak_mb = int(fields["VmHWM"].split()[0]) / 1024
        served = [
            line
            for line in operator.metrics().splitlines()
            if line.startswith("tracemesh_operator_admission_seconds_bucket")
        ]
    finally:
        operator.stop()
        plane.stop()
    ms = 1000.0
    report: dict[str, Any] = {
        "load_average_1m": round(load, 2),
        "reconcile_ms": {
            "p50": round(statistics.median(reconcile) * ms, 1),
            "p90": round(percentile(reconcile, 0.9) * ms, 1),
            "max": round(max(reconcile) * ms, 1),
            "n": len(reconcile),
        },
        "operator_cpu_ms_per_reconcile": round((cpu1 - cpu0) * ms / len(reconcile), 2),
        "admission_ms": {
            "p50": round(statistics.median(admission) * ms, 2),
            "p99": round(percentile(admission, 0.99) * ms, 2),
            "n": len(admission),
        },
        "operator_cpu_us_per_admission": round((cpu2 - cpu1) * 1e6 / len(admission), 1),
        "create_through_api_server_ms": {
            "p50": round(statistics.median(api) * ms, 1),
            "p99": round(percentile(api, 0.99) * ms, 1),
        },
        "operator_rss_mb": round(rss_mb, 1),
        "operator_peak_rss_mb": round(peak_mb, 1),
        "server_side_histogram": served,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
