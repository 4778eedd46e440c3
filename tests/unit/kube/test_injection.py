"""Injection decisions and patches, without a cluster."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from tracemesh.kube.injection import ReviewError, choose, review
from tracemesh.kube.jaeger_resource import JaegerInstance, read

INJECT = "sidecar.jaegertracing.io/inject"


def instance(name: str, namespace: str) -> JaegerInstance:
    return read({"metadata": {"name": name, "namespace": namespace, "uid": name}}, "img")


def deployment(annotations: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": "shop",
            "namespace": "apps",
            "annotations": annotations or {},
            **extra,
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {"containers": [{"name": "app", "image": "a"}]},
            }
        },
    }


def apply_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Enough of RFC 6902 for the ops injection emits (add / replace on object members)."""
    out = copy.deepcopy(obj)
    for op in ops:
        *parents, last = op["path"].lstrip("/").split("/")
        target = out
        for part in parents:
            target = target[part]
        assert op["op"] in ("add", "replace")
        target[last] = op["value"]
    return out


def admit(
    obj: dict[str, Any],
    instances: list[JaegerInstance],
    namespaces: dict[str, dict[str, str]] | None = None,
) -> tuple[dict[str, Any], Any]:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "r-1", "namespace": "apps", "object": obj},
    }
    answer = review(body, instances, namespaces or {})
    response = answer["response"]
    assert response["uid"] == "r-1" and response["allowed"] is True
    if "patch" not in response:
        return obj, response
    return apply_patch(obj, json.loads(base64.b64decode(response["patch"]))), response


def test_choose_follows_jaegers_rules() -> None:
    here, there, other = instance("a", "apps"), instance("b", "tracing"), instance("c", "tracing")
    assert choose("true", "apps", [here, there]).instance is here
    assert choose("true", "web", [there]).instance is there
    ambiguous = choose("true", "web", [there, other])
    assert ambiguous.instance is None and "2 are" in ambiguous.warning
    assert choose("c", "apps", [here, other]).instance is other
    assert choose("false", "apps", [here]).instance is None
    assert choose(None, "apps", [here]).instance is None
    assert "no such Jaeger instance" in choose("zz", "apps", [here]).warning


def test_inject_is_idempotent_and_removable() -> None:
    jaeger = [instance("tracing", "apps")]
    once, response = admit(deployment({INJECT: "true"}), jaeger)
    assert response["patchType"] == "JSONPatch"
    containers = once["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "jaeger-agent"]
    assert once["metadata"]["labels"]["sidecar.jaegertracing.io/injected"] == "tracing"
    twice, response = admit(once, jaeger)
    assert "patch" not in response and twice == once
    once["metadata"]["annotations"] = {}
    removed, _ = admit(once, jaeger)
    assert [c["name"] for c in removed["spec"]["template"]["spec"]["containers"]] == ["app"]
    assert removed["spec"]["template"]["spec"]["containers"][0]["env"] == []
    assert "sidecar.jaegertracing.io/injected" not in removed["metadata"]["labels"]


def test_namespace_annotation_and_deployment_opt_out() -> None:
    jaeger = [instance("tracing", "apps")]
    namespaces = {"apps": {INJECT: "tracing"}}
    injected, _ = admit(deployment(), jaeger, namespaces)
    assert len(injected["spec"]["template"]["spec"]["containers"]) == 2
    untouched, response = admit(deployment({INJECT: "false"}), jaeger, namespaces)
    assert "patch" not in response and untouched == deployment({INJECT: "false"})


def test_own_workloads_and_deletes_are_left_alone() -> None:
    ours = deployment(
        {INJECT: "true"}, labels={"app.kubernetes.io/managed-by": "tracemesh-operator"}
    )
    _, response = admit(ours, [instance("tracing", "apps")])
    assert "patch" not in response
    body = {"kind": "AdmissionReview", "request": {"uid": "d", "operation": "DELETE"}}
    assert review(body, [], {})["response"] == {"uid": "d", "allowed": True}


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"kind": "Other"},
        {"kind": "AdmissionReview"},
        {"kind": "AdmissionReview", "request": {"uid": 1}},
        {"kind": "AdmissionReview", "request": {"uid": "u", "object": {"kind": "Pod"}}},
        {"kind": "AdmissionReview", "request": {"uid": "u", "object": {"kind": "Deployment"}}},
        {
            "kind": "AdmissionReview",
            "request": {
                "uid": "u",
                "object": {
                    "kind": "Deployment",
                    "spec": {"template": {"spec": {"containers": ["x"]}}},
                },
            },
        },
    ],
)
def test_malformed_reviews_raise_review_error(body: Any) -> None:
    with pytest.raises(ReviewError):
        review(body, [], {})
