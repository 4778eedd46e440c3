"""Mesh sidecars through the real API server: Pods the controller manager creates in a namespace
labelled for injection get the iptables init container and the proxy; `tracemesh kube-inject`
output is accepted by the server; Istio's routing resources are served in all three versions."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.integration.kube.control_plane import ControlPlane, eventually
from tests.integration.kube.operator_process import OperatorProcess
from tests.integration.kube.test_injection import deployment
from tests.integration.kube.test_operator import apply, running


def pods(plane: ControlPlane, namespace: str, app: str) -> list[dict[str, object]]:
    found = plane.get("pods", "-n", namespace, "-l", f"app={app}")
    return list(found["items"])


def test_pods_of_a_labelled_namespace_get_the_proxy(
    plane: ControlPlane, operator: OperatorProcess
) -> None:
    namespace = "mesh-apps"
    plane.kubectl("create", "namespace", namespace)
    plane.kubectl("label", "namespace", namespace, "istio-injection=enabled")
    apply(plane, namespace, "tracing", {})
    running(plane, namespace, "tracing")
    plane.kubectl("apply", "-f", "-", stdin=deployment("hello", namespace))

    def injected() -> object:
        # the label reaches the webhook through the operator's namespace watch; a Pod made
        # before it did is replaced here until one is injected
        found = pods(plane, namespace, "hello")
        if found and not found[0]["spec"].get("initContainers"):  # type: ignore[index]
            plane.kubectl("delete", "pods", "-n", namespace, "-l", "app=hello", "--wait=false")
            return None
        return found[0] if found else None

    pod = eventually(injected, timeout=30, what="an injected Pod")
    init = pod["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["tracemesh-init", "tracemesh-proxy"]
    proxy = init[1]
    assert f"--collector=tracing-collector.{namespace}.svc:4317" in proxy["args"]
    assert "--service=hello" in proxy["args"] and f"--namespace={namespace}" in proxy["args"]
    assert proxy["restartPolicy"] == "Always"
    # opting a Deployment's Pods out
    opted = yaml.safe_load(deployment("legacy", namespace))
    opted["spec"]["template"]["metadata"]["annotations"] = {"sidecar.istio.io/inject": "false"}
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(opted))
    legacy = eventually(lambda: pods(plane, namespace, "legacy"), what="the opted-out Pod")
    assert not legacy[0]["spec"].get("initContainers")


def test_kube_inject_output_passes_the_api_server(plane: ControlPlane) -> None:
    source = (
        deployment("offline", "default")
        + "---\n"
        + yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "offline"},
                "spec": {"selector": {"app": "offline"}, "ports": [{"port": 8080}]},
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "tracemesh", "kube-inject", "-f", "-"],
        input=source,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    documents = list(yaml.safe_load_all(done.stdout))
    assert [d["kind"] for d in documents] == ["Deployment", "Service"]
    checked = plane.kubectl("apply", "--dry-run=server", "-f", "-", stdin=done.stdout)
    assert checked.stdout.count("(server dry run)") == 2
    bad = subprocess.run(
        [sys.executable, "-m", "tracemesh", "kube-inject", "-f", "-"],
        input="kind: [",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "kube-inject" in bad.stderr


def test_istio_routing_resources_in_every_version(
    plane: ControlPlane, operator: OperatorProcess
) -> None:
    route = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "VirtualService",
        "metadata": {"name": "formatter", "namespace": "default"},
        "spec": {
            "hosts": ["formatter"],
            "http": [
                {
                    "match": [{"headers": {"baggage": {"regex": ".*user-agent=Netscape.*"}}}],
                    "route": [{"destination": {"host": "formatter", "subset": "v2"}}],
                },
                {"route": [{"destination": {"host": "formatter", "subset": "v1"}}]},
            ],
        },
    }
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(route))
    stored = plane.get("virtualservices.v1.networking.istio.io", "formatter", "-n", "default")
    assert stored["apiVersion"] == "networking.istio.io/v1"
    assert stored["spec"]["http"][1]["route"][0]["destination"]["subset"] == "v1"
    assert "formatter" in plane.kubectl("get", "vs", "-n", "default").stdout
    for kind, version in (("DestinationRule", "v1beta1"), ("Gateway", "v1")):
        body = {
            "apiVersion": f"networking.istio.io/{version}",
            "kind": kind,
            "metadata": {"name": "x", "namespace": "default"},
            "spec": {},
        }
        plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body))
