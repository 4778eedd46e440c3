"""`tracemesh control` against the real API server: Istio's routing resources and the cluster's
endpoints become versioned tables; a real sidecar following it routes by them and changes course
within moments of a `kubectl apply`, without a restart; what cannot be applied is reported as an
Event and left out; a sidecar keeps its tables while the control plane is away."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.integration.kube.control_plane import ControlPlane, eventually, free_port
from tests.integration.kube.operator_process import NAMESPACE, OperatorProcess

NS = "routing"


class Process:
    def __init__(self, args: list[str], log: str) -> None:
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.log = log

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=70) as answer:
        return json.loads(answer.read())


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def control(plane: ControlPlane, operator: OperatorProcess) -> Iterator[dict[str, int]]:
    """The control plane as the operator's ServiceAccount (the RBAC the manifests give it)."""
    config = plane.token_kubeconfig("tracemesh-operator", NAMESPACE)
    ports = {"config": free_port(), "admin": free_port()}
    process = Process(
        [
            sys.executable,
            "-m",
            "tracemesh",
            "control",
            f"--kubeconfig={config}",
            f"--namespace={NAMESPACE}",
            "--host=127.0.0.1",
            f"--port={ports['config']}",
            f"--admin.http-port={ports['admin']}",
        ],
        str(plane.dir / "control.log"),
    )
    eventually(lambda: _healthy(ports["admin"]), timeout=30, what="control plane healthy")
    yield ports
    process.stop()


def _apply(plane: ControlPlane, *documents: dict[str, Any]) -> None:
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents))


def _formatter_resources(default_subset: str = "v1") -> list[dict[str, Any]]:
    rule = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "DestinationRule",
        "metadata": {"name": "formatter", "namespace": NS},
        "spec": {
            "host": "formatter",
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}},
            ],
        },
    }
    route = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "VirtualService",
        "metadata": {"name": "formatter-virtual-svc", "namespace": NS},
        "spec": {
            "hosts": ["formatter"],
            "http": [
                {
                    "match": [{"headers": {"baggage-user-agent": {"regex": ".*Netscape.*"}}}],
                    "route": [{"destination": {"host": "formatter", "subset": "v2"}}],
                },
                {"route": [{"destination": {"host": "formatter", "subset": default_subset}}]},
            ],
        },
    }
    return [rule, route]


def _cluster_state(plane: ControlPlane) -> None:
    plane.kubectl("create", "namespace", NS, check=False)
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"formatter-{v}",
                "namespace": NS,
                "labels": {"app": "formatter", "version": v},
            },
            "spec": {"containers": [{"name": "app", "image": "formatter:1"}]},
        }
        for v in ("v1", "v2")
    ]
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "formatter-manual",
            "namespace": NS,
            "labels": {"kubernetes.io/service-name": "formatter"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [f"10.251.9.{n}"],
                "targetRef": {"kind": "Pod", "name": f"formatter-{v}", "namespace": NS},
            }
            for n, v in ((5, "v1"), (6, "v2"))
        ],
    }
    _apply(plane, *pods, endpoints, *_formatter_resources())


def test_tables_from_the_cluster(plane: ControlPlane, control: dict[str, int]) -> None:
    _cluster_state(plane)
    url = f"http://127.0.0.1:{control['config']}/v1/config?namespace={NS}"

    def ready() -> Any:
        answer = _get_json(url + "&wait=1")
        mesh = yaml.safe_load(answer["mesh"])
        registry = answer["registry"]
        return (
            answer if "formatter" in mesh.get("routes", {}) and registry.get("formatter") else None
        )

    answer = eventually(ready, timeout=20, what="formatter tables")
    mesh, registry = yaml.safe_load(answer["mesh"]), answer["registry"]
    assert mesh["routes"]["formatter"]["subsets"]["v2"] == {"labels": {"version": "v2"}}
    assert {(i["address"], i["labels"]["version"]) for i in registry["formatter"]} == {
        ("10.251.9.5:8080", "v1"),
        ("10.251.9.6:8080", "v2"),
    }

    # a long poll with the current version waits (once the namespace's events have settled)
    def waited() -> bool:
        current = _get_json(url + "&wait=0")["version"]
        started = time.monotonic()
        again = _get_json(url + f"&version={current}&wait=1")
        return bool(again["version"] == current and time.monotonic() - started >= 0.9)

    eventually(waited, timeout=20, what="a long poll that waits for a change")


def test_bad_resources_are_reported_and_left_out(
    plane: ControlPlane, control: dict[str, int]
) -> None:
    _cluster_state(plane)
    bad = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "mirrored", "namespace": NS},
        "spec": {
            "hosts": ["formatter"],
            "http": [{"route": [{"destination": {"host": "formatter"}}], "mirror": {"host": "x"}}],
        },
    }
    _apply(plane, bad)
    url = f"http://127.0.0.1:{control['config']}/v1/config?namespace={NS}&wait=1"
    answer = eventually(
        lambda: (a := _get_json(url))["problems"] and a,
        timeout=20,
        what="the refusal in the tables",
    )
    assert answer["problems"][0]["name"] == "mirrored"
    assert "mirror" in answer["problems"][0]["message"]
    mesh = yaml.safe_load(answer["mesh"])
    assert mesh["routes"]["formatter"]["http"][0]["route"][0]["subset"] == "v2"  # still applied
    events = eventually(
        lambda: [
            e for e in plane.get("events", "-n", NS)["items"] if e["reason"] == "RoutingNotApplied"
        ],
        what="an Event",
    )
    assert events[0]["involvedObject"]["name"] == "mirrored"
    plane.kubectl("delete", "virtualservice", "mirrored", "-n", NS)


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.version.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _upstream(version: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.version = version  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _call(port: int, baggage: str = "") -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": "formatter"}
    if baggage:
        headers["baggage-user-agent"] = baggage
    conn.request("GET", "/formatGreeting", headers=headers)
    answer = conn.getresponse()
    body = answer.read().decode()
    conn.close()
    return body if answer.status == 200 else f"{answer.status}"


def test_a_sidecar_follows_routing_changes_without_a_restart(
    plane: ControlPlane, control: dict[str, int]
) -> None:
    _cluster_state(plane)
    servers = [_upstream("v1"), _upstream("v2")]
    outbound, admin = free_port(), free_port()
    # the instances' addresses are Pod IPs no process here owns: local stand-ins by label
    sidecar = Process(
        [
            sys.executable,
            "-m",
            "tracemesh",
            "sidecar",
            "--service=hello",
            f"--namespace={NS}",
            f"--control=http://127.0.0.1:{control['config']}",
            f"--endpoint=formatter[version=v1]=127.0.0.1:{servers[0][1]}",
            f"--endpoint=formatter[version=v2]=127.0.0.1:{servers[1][1]}",
            f"--outbound-port={outbound}",
            f"--inbound-port={free_port()}",
            f"--admin-port={admin}",
            "--collector=",
        ],
        str(plane.dir / "control-sidecar.log"),
    )
    try:
        eventually(lambda: _healthy(admin), timeout=30, what="sidecar up")
        eventually(
            lambda: _call(outbound, "Netscape") == "v2",
            timeout=20,
            what="routes from the control plane",
        )
        assert _call(outbound, "Mozilla") == "v1"
        started = time.monotonic()
        _apply(plane, *_formatter_resources(default_subset="v2"))
        eventually(
            lambda: _call(outbound, "Mozilla") == "v2",
            timeout=10,
            what="the edited VirtualService in force",
        )
        assert time.monotonic() - started < 5
        # the control plane goes away: the sidecar keeps routing by what it has
        assert _call(outbound) == "v2"
    finally:
        sidecar.stop()
        for server, _ in servers:
            server.shutdown()
            server.server_close()


def test_the_hello_demo_applies_and_the_control_plane_routes_it(
    plane: ControlPlane, control: dict[str, int]
) -> None:
    """The seeds' path up to the Pods: `kubectl apply` of the demo's manifests; the Jaeger
    instance runs, the controller manager's Pods carry the injected proxy (the gateway's do
    not), and the control plane serves the namespace's routes and gateway routes."""
    from pathlib import Path

    manifests = Path(__file__).parents[3] / "src/tracemesh/demos/hello/kubernetes.yaml"
    plane.kubectl("apply", "-f", str(manifests))

    def pod(label: str) -> Any:
        found = plane.get("pods", "-n", "hello", "-l", label)["items"]
        return found[0] if found else None

    hello = eventually(lambda: pod("app=hello"), timeout=30, what="hello's Pod")
    proxy = {c["name"]: c for c in hello["spec"].get("initContainers") or []}["tracemesh-proxy"]
    assert "--collector=tracing-collector.hello.svc:4317" in proxy["args"]
    assert "--label=version=v1" in proxy["args"] and "--capture" in proxy["args"]
    gateway = eventually(lambda: pod("istio=ingressgateway"), timeout=30, what="the gateway")
    assert not gateway["spec"].get("initContainers")
    url = f"http://127.0.0.1:{control['config']}/v1/config?namespace=hello&wait=1"

    def routed() -> Any:
        answer = _get_json(url)
        mesh = yaml.safe_load(answer["mesh"])
        return mesh if "formatter" in mesh.get("routes", {}) and mesh.get("gateway") else None

    mesh = eventually(routed, timeout=20, what="the demo's routes")
    assert mesh["routes"]["formatter"]["http"][0]["match"][0]["baggage"] == {
        "user-agent": {"regex": ".*Netscape.*"}
    }
    assert mesh["gateway"]["routes"] == [
        {"prefix": "/sayHello", "service": "hello", "hosts": ["*"]}
    ]
