"""Sidecar injection: who gets a proxy, what it looks like, kube-inject and the Pod review."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tracemesh.kube.injection import ReviewError
from tracemesh.kube.sidecar_injection import (
    ProxySettings,
    containers,
    kube_inject,
    review_pod,
    wanted,
)

SETTINGS = ProxySettings(image="img", collector="c.tracing.svc:4317", sampling=5)


@pytest.mark.parametrize(
    ("meta", "namespace", "expected"),
    [
        ({}, {}, False),
        ({}, {"istio-injection": "enabled"}, True),
        ({}, {"istio-injection": "disabled"}, False),
        ({"annotations": {"sidecar.istio.io/inject": "true"}}, {}, True),
        ({"labels": {"sidecar.istio.io/inject": "true"}}, {}, True),
        ({"annotations": {"tracemesh.io/inject": "true"}}, {}, True),
        (
            {"annotations": {"sidecar.istio.io/inject": "false"}},
            {"istio-injection": "enabled"},
            False,
        ),
    ],
)
def test_who_gets_a_sidecar(
    meta: dict[str, Any], namespace: dict[str, str], expected: bool
) -> None:
    assert wanted(meta, namespace) is expected


def test_the_proxy_carries_the_pods_identity_and_exclusions() -> None:
    meta = {
        "labels": {"app": "formatter", "version": "v2"},
        "annotations": {
            "traffic.sidecar.istio.io/excludeInboundPorts": "9090, 9091",
            "traffic.sidecar.istio.io/excludeOutboundPorts": "3306",
        },
    }
    spec = {"containers": [{"name": "app", "ports": [{"containerPort": 8081}]}]}
    init, proxy = containers(meta, spec, "shop", SETTINGS)
    assert "--exclude-inbound-ports=9090,9091" in init["args"]
    assert "--exclude-outbound-ports=3306" in init["args"]
    assert "NET_ADMIN" in init["securityContext"]["capabilities"]["add"]
    args = proxy["args"]
    for flag in (
        "--service=formatter",
        "--namespace=shop",
        "--label=version=v2",
        "--app-port=8081",
        "--collector=c.tracing.svc:4317",
        "--sampling=5",
        "--capture",
    ):
        assert flag in args, flag
    assert proxy["securityContext"]["runAsUser"] == 1337
    assert proxy["restartPolicy"] == "Always" and proxy["startupProbe"]["httpGet"]["port"] == 15020


def test_a_bad_port_list_is_refused() -> None:
    meta = {"annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "3306,mysql"}}
    with pytest.raises(ValueError, match="mysql"):
        containers(meta, {"containers": []}, "ns", SETTINGS)


def deployment(**annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "hello"}, "annotations": dict(annotations)},
                "spec": {"containers": [{"name": "hello"}]},
            }
        },
    }


def test_kube_inject_is_idempotent_and_honours_opt_out() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"}}
    once = kube_inject([service, deployment()], SETTINGS)
    assert once[0] == service
    pod = once[1]["spec"]["template"]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == [
        "tracemesh-init",
        "tracemesh-proxy",
    ]
    assert "sidecar.istio.io/status" in pod["metadata"]["annotations"]
    assert kube_inject(once, SETTINGS) == once
    skipped = kube_inject([deployment(**{"sidecar.istio.io/inject": "false"})], SETTINGS)
    assert "initContainers" not in skipped[0]["spec"]["template"]["spec"]


def pod_review(meta: dict[str, Any], namespace_labels: dict[str, dict[str, str]]) -> Any:
    body = {
        "kind": "AdmissionReview",
        "request": {
            "uid": "p",
            "namespace": "shop",
            "object": {"kind": "Pod", "metadata": meta, "spec": {"containers": [{"name": "app"}]}},
        },
    }
    return review_pod(body, namespace_labels, lambda namespace: SETTINGS)["response"]


def test_pod_review_patches_once() -> None:
    response = pod_review({"labels": {"app": "hello"}}, {"shop": {"istio-injection": "enabled"}})
    ops = json.loads(base64.b64decode(response["patch"]))
    assert [op["path"] for op in ops] == [
        "/spec/initContainers",
        "/metadata/annotations",
        "/metadata/labels",
    ]
    injected = {"labels": {"app": "hello"}, "annotations": ops[1]["value"]}
    assert "patch" not in pod_review(injected, {"shop": {"istio-injection": "enabled"}})
    warned = pod_review(
        {
            "annotations": {
                "sidecar.istio.io/inject": "true",
                "traffic.sidecar.istio.io/excludeInboundPorts": "x",
            }
        },
        {},
    )
    assert "patch" not in warned and "no sidecar injected" in warned["warnings"][0]


def test_pod_review_refuses_malformed_pods() -> None:
    body = {"kind": "AdmissionReview", "request": {"uid": "p", "object": {"kind": "Pod"}}}
    with pytest.raises(ReviewError):
        review_pod(body, {}, lambda namespace: SETTINGS)
