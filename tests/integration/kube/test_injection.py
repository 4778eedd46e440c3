"""Agent injection through the real API server: the webhook patches annotated Deployments, the
controller manager's Pods carry the agent, a second admission adds nothing, removing the
annotation removes the agent, hostile AdmissionReviews get a 400, and a webhook that is down
blocks nobody."""

from __future__ import annotations

import http.client
import itertools
import json
import ssl
import time
from typing import Any

import pytest
import yaml

from tests.integration.kube.control_plane import ControlPlane, eventually, free_port
from tests.integration.kube.operator_process import OperatorProcess
from tests.integration.kube.test_operator import apply, running

_names = itertools.count()
INJECT = "sidecar.jaegertracing.io/inject"


@pytest.fixture
def namespace(plane: ControlPlane) -> str:
    name = f"apps-{next(_names)}"
    plane.kubectl("create", "namespace", name)
    return name


def deployment(
    name: str,
    namespace: str,
    annotations: dict[str, str] | None = None,
    env: list[dict[str, str]] | None = None,
) -> str:
    app = {"name": "app", "image": "example/app:1", "env": env or []}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [app]}},
        },
    }
    return yaml.safe_dump(body)


def containers(plane: ControlPlane, namespace: str, name: str) -> list[Any]:
    found = plane.get("deployment", name, "-n", namespace)
    return list(found["spec"]["template"]["spec"]["containers"])


def test_an_annotated_deployment_and_its_pods_get_one_agent(
    plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(plane, namespace, "tracing", {})
    running(plane, namespace, "tracing")
    plane.kubectl(
        "apply",
        "-f",
        "-",
        stdin=deployment(
            "shop",
            namespace,
            {INJECT: "true"},
            env=[{"name": "OTEL_SERVICE_NAME", "value": "shop-custom"}],
        ),
    )
    stored = containers(plane, namespace, "shop")
    assert [c["name"] for c in stored] == ["app", "jaeger-agent"]
    agent = stored[1]
    assert (
        f"--agent.collector=dns:///tracing-collector-headless.{namespace}.svc:4317"
        in (agent["args"])
    )
    env = {e["name"]: e.get("value") for e in stored[0]["env"]}
    assert env["JAEGER_AGENT_HOST"] == "127.0.0.1" and env["JAEGER_AGENT_PORT"] == "6831"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
    assert env["JAEGER_SERVICE_NAME"] == f"shop.{namespace}"
    assert env["OTEL_SERVICE_NAME"] == "shop-custom"  # what the application sets wins
    labels = plane.get("deployment", "shop", "-n", namespace)["metadata"]["labels"]
    assert labels["sidecar.jaegertracing.io/injected"] == "tracing"
    pods = eventually(
        lambda: plane.get("pods", "-n", namespace, "-l", "app=shop")["items"],
        what="Pods from the controller manager",
    )
    assert [c["name"] for c in pods[0]["spec"]["containers"]] == ["app", "jaeger-agent"]
    # a second admission of the same Deployment adds nothing
    plane.kubectl(
        "apply",
        "-f",
        "-",
        stdin=deployment(
            "shop",
            namespace,
            {INJECT: "true"},
            env=[{"name": "OTEL_SERVICE_NAME", "value": "shop-custom"}],
        ),
    )
    plane.kubectl("annotate", "deployment", "shop", "-n", namespace, "touched=yes")
    again = containers(plane, namespace, "shop")
    assert [c["name"] for c in again] == ["app", "jaeger-agent"]
    assert [e["name"] for e in again[0]["env"]].count("JAEGER_AGENT_HOST") == 1
    # the annotation goes: so do the agent, the label and the variables it brought
    plane.kubectl("annotate", "deployment", "shop", "-n", namespace, f"{INJECT}-")
    plain = containers(plane, namespace, "shop")
    assert [c["name"] for c in plain] == ["app"]
    assert [e["name"] for e in plain[0]["env"]] == ["OTEL_SERVICE_NAME"]
    labels = plane.get("deployment", "shop", "-n", namespace)["metadata"].get("labels") or {}
    assert "sidecar.jaegertracing.io/injected" not in labels


def test_namespace_annotation_instance_names_and_opting_out(
    plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    other = f"{namespace}-tracing"
    plane.kubectl("create", "namespace", other)
    apply(plane, other, "central", {})
    apply(plane, other, "second", {})
    running(plane, other, "central")
    running(plane, other, "second")
    plane.kubectl("annotate", "namespace", namespace, f"{INJECT}=central")
    plane.kubectl("apply", "-f", "-", stdin=deployment("by-namespace", namespace))
    touches = itertools.count()

    def injected() -> list[Any] | None:
        # the namespace's annotation reaches the webhook through the operator's watch, so a
        # Deployment admitted a moment before it arrives is injected at its next change
        found = containers(plane, namespace, "by-namespace")
        if len(found) == 2:
            return found
        plane.kubectl(
            "annotate",
            "--overwrite",
            "deployment",
            "by-namespace",
            "-n",
            namespace,
            f"touch={next(touches)}",
        )
        return None

    stored = eventually(injected, what="agent injected by the namespace's annotation")
    assert [c["name"] for c in stored] == ["app", "jaeger-agent"]
    assert f"central-collector-headless.{other}.svc" in " ".join(stored[1]["args"])
    plane.kubectl("apply", "-f", "-", stdin=deployment("opted-out", namespace, {INJECT: "false"}))
    assert [c["name"] for c in containers(plane, namespace, "opted-out")] == ["app"]
    # "true" with two instances in the namespace and none in the Deployment's: no agent, a warning
    third = f"{namespace}-plain"
    plane.kubectl("create", "namespace", third)
    done = plane.kubectl("apply", "-f", "-", stdin=deployment("ambiguous", third, {INJECT: "true"}))
    assert [c["name"] for c in containers(plane, third, "ambiguous")] == ["app"]
    assert "name the Jaeger instance" in done.stderr  # the admission warning, shown by kubectl


def _post(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    conn.request("POST", "/mutate-v1-deployment", body, {"Content-Type": content_type})
    answer = conn.getresponse()
    data = answer.read()
    conn.close()
    return answer.status, json.loads(data) if data.startswith(b"{") else data


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'{"kind": "AdmissionReview"}',
        b'{"kind": "AdmissionReview", "request": {"uid": 7}}',
        b'{"kind": "AdmissionReview", "request": {"uid": "u", "object": {"kind": "Pod"}}}',
        b'{"kind": "AdmissionReview", "request": {"uid": "u", "object": {"kind": "Deployment",'
        b' "spec": {"template": {"spec": {"containers": "app"}}}}}}',
        b'{"kind": "AdmissionReview", "request": {"uid": "u", "object": {"kind": "Deployment",'
        b' "metadata": [], "spec": {"template": {"spec": {"containers": []}}}}}}',
        b"<html>" * 1000,
    ],
)
def test_a_malformed_review_gets_a_clear_400(operator: OperatorProcess, body: bytes) -> None:
    status, answer = _post(operator.webhook_port, body)
    assert status == 400
    assert isinstance(answer, dict) and answer["error"] and "Traceback" not in answer["error"]
    assert operator.healthy()


def test_an_oversized_review_gets_a_413(operator: OperatorProcess) -> None:
    status, _ = _post(operator.webhook_port, b" " * (9 << 20))
    assert status == 413
    assert operator.healthy()


def test_a_webhook_that_is_down_blocks_nobody(plane: ControlPlane, namespace: str) -> None:
    """The manifests' policy (Ignore, 5 s): a configuration pointing at a closed port."""
    from tracemesh.kube.manifests import Install, webhook_configuration

    config = webhook_configuration(Install(webhook_url=f"https://127.0.0.1:{free_port()}"))
    config["metadata"]["name"] = "tracemesh-down-test"
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(config))
    try:
        started = time.monotonic()
        plane.kubectl(
            "apply", "-f", "-", stdin=deployment("resilient", namespace, {INJECT: "true"})
        )
        assert time.monotonic() - started < 10
        assert plane.get("deployment", "resilient", "-n", namespace) is not None
    finally:
        plane.kubectl("delete", "mutatingwebhookconfiguration", "tracemesh-down-test")
