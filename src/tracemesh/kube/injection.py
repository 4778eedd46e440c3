"""Agent injection, decided as Jaeger's operator decides it: an AdmissionReview of a Deployment in,
the AdmissionReview answer (a JSON patch, or none) out. Pure: the caller supplies the Jaeger
instances and namespace annotations it knows.

`sidecar.jaegertracing.io/inject` on the Deployment, else on its namespace, says what to do:
`"true"` picks the one Jaeger instance of the Deployment's namespace (else the one of the
cluster), another value names an instance, `"false"` or nothing means no agent. An injected
Deployment carries the `sidecar.jaegertracing.io/injected` label; when the annotation goes, the
agent, the label and the variables that were added go too. A second admission changes nothing.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tracemesh.kube.jaeger_resource import JaegerInstance, Json
from tracemesh.kube.render import INJECT_ANNOTATION, MANAGED_BY, agent_container
from tracemesh.runtime import ports

INJECTED_LABEL = "sidecar.jaegertracing.io/injected"
ADDED_ENV_ANNOTATION = "tracemesh.io/injected-env"
AGENT = "jaeger-agent"


class ReviewError(ValueError):
    """The AdmissionReview cannot be read; the message says why (answered with HTTP 400)."""


@dataclass(frozen=True)
class Decision:
    instance: JaegerInstance | None  # None: no agent wanted
    warning: str = ""


def choose(value: str | None, namespace: str, instances: Iterable[JaegerInstance]) -> Decision:
    if value is None or value.strip().lower() in ("", "false"):
        return Decision(None)
    known = list(instances)
    if value.strip().lower() == "true":
        local = [i for i in known if i.namespace == namespace]
        pick = local if local else known
        if len(pick) == 1:
            return Decision(pick[0])
        why = "none is" if not pick else f"{len(pick)} are"
        return Decision(
            None,
            f"{INJECT_ANNOTATION}=true: no agent injected, {why} available; "
            "name the Jaeger instance instead",
        )
    named = [i for i in known if i.name == value]
    local = [i for i in named if i.namespace == namespace]
    if local or len(named) == 1:
        return Decision((local or named)[0])
    return Decision(
        None, f"{INJECT_ANNOTATION}={value}: no such Jaeger instance, no agent injected"
    )


def service_name(deployment: Json) -> str:
    """`<app>.<namespace>`, as Jaeger's operator names an injected application."""
    meta = deployment.get("metadata") or {}
    template_labels = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
    pod_labels = template_labels.get("labels") or {}
    app = (
        pod_labels.get("app")
        or pod_labels.get("app.kubernetes.io/name")
        or meta.get("name")
        or "app"
    )
    namespace = meta.get("namespace")
    return f"{app}.{namespace}" if namespace else str(app)


def app_env(deployment: Json) -> dict[str, str]:
    """What Jaeger clients and OpenTelemetry SDKs read, pointed at the agent beside them."""
    name = service_name(deployment)
    return {
        "JAEGER_SERVICE_NAME": name,
        "JAEGER_AGENT_HOST": "127.0.0.1",
        "JAEGER_AGENT_PORT": str(ports.AGENT_JAEGER_COMPACT),
        "JAEGER_PROPAGATION": "jaeger,b3,w3c",
        "OTEL_SERVICE_NAME": name,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports.OTLP_GRPC}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }


def _remove(deployment: Json) -> Json:
    out = copy.deepcopy(deployment)
    template = out["spec"]["template"]
    annotations = template.get("metadata", {}).get("annotations") or {}
    added = set(filter(None, annotations.pop(ADDED_ENV_ANNOTATION, "").split(",")))
    containers = [c for c in template["spec"].get("containers", []) if c.get("name") != AGENT]
    for container in containers:
        if "env" in container:
            container["env"] = [e for e in container["env"] if e.get("name") not in added]
    template["spec"]["containers"] = containers
    (out["metadata"].get("labels") or {}).pop(INJECTED_LABEL, None)
    return out


def _inject(deployment: Json, instance: JaegerInstance) -> Json:
    out = _remove(deployment)
    template = out["spec"]["template"]
    containers = template["spec"]["containers"]
    added: set[str] = set()
    for container in containers:
        env = container.setdefault("env", [])
        present = {e.get("name") for e in env}
        for key, value in app_env(deployment).items():
            if key not in present:  # what the application sets itself wins
                env.append({"name": key, "value": value})
                added.add(key)
    containers.append(agent_container(instance, AGENT, host_ports=False))
    template.setdefault("metadata", {}).setdefault("annotations", {})
    if added:
        template["metadata"]["annotations"][ADDED_ENV_ANNOTATION] = ",".join(sorted(added))
    out["metadata"].setdefault("labels", {})[INJECTED_LABEL] = instance.name
    return out


def _patch(old: Json, new: Json) -> list[Json]:
    """JSON patch ops that turn `old` into `new` on the few paths injection touches."""
    ops: list[Json] = []
    old_meta = old["spec"]["template"].get("metadata")
    new_meta = new["spec"]["template"].get("metadata")
    if old_meta is None and new_meta is not None:
        ops.append({"op": "add", "path": "/spec/template/metadata", "value": new_meta})
    elif (
        old_meta is not None
        and new_meta is not None
        and old_meta.get("annotations") != new_meta.get("annotations")
    ):
        value = new_meta.get("annotations") or {}
        ops.append({"op": "add", "path": "/spec/template/metadata/annotations", "value": value})
    if old["spec"]["template"]["spec"].get("containers") != new["spec"]["template"]["spec"].get(
        "containers"
    ):
        ops.append(
            {
                "op": "replace",
                "path": "/spec/template/spec/containers",
                "value": new["spec"]["template"]["spec"]["containers"],
            }
        )
    if old["metadata"].get("labels") != new["metadata"].get("labels"):
        ops.append(
            {"op": "add", "path": "/metadata/labels", "value": new["metadata"].get("labels") or {}}
        )
    return ops


def _deployment_of(request: Json) -> Json | None:
    obj = request.get("object")
    if obj is None:  # DELETE and CONNECT carry no object
        return None
    if not isinstance(obj, dict) or obj.get("kind") != "Deployment":
        raise ReviewError("request.object: a Deployment is expected")
    spec = obj.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(pod, dict) or not isinstance(pod.get("containers"), list):
        raise ReviewError("request.object.spec.template.spec.containers: missing")
    if not isinstance(obj.setdefault("metadata", {}), dict):
        raise ReviewError("request.object.metadata: must be an object")
    if any(not isinstance(c, dict) for c in pod["containers"]):
        raise ReviewError("request.object.spec.template.spec.containers: must hold objects")
    return obj


def envelope(body: Any) -> tuple[Json, Json]:
    """The request of an AdmissionReview, and an answer that allows it unchanged."""
    if not isinstance(body, dict) or body.get("kind") != "AdmissionReview":
        raise ReviewError("body: an AdmissionReview object is expected")
    request = body.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        raise ReviewError("request.uid: missing")
    answer: Json = {
        "apiVersion": body.get("apiVersion") or "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": request["uid"], "allowed": True},
    }
    return request, answer


def with_patch(answer: Json, ops: list[Json]) -> Json:
    if ops:
        answer["response"]["patchType"] = "JSONPatch"
        answer["response"]["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
    return answer


def review(
    body: Any,
    instances: Iterable[JaegerInstance],
    namespace_annotations: Mapping[str, Mapping[str, str]],
) -> Json:
    """The AdmissionReview answer to `body` (the decoded JSON the API server posted)."""
    request, answer = envelope(body)
    response = answer["response"]
    deployment = _deployment_of(request)
    if deployment is None:
        return answer
    meta = deployment["metadata"]
    labels = meta.get("labels") or {}
    if labels.get("app.kubernetes.io/managed-by") == MANAGED_BY:
        return answer  # tracemesh's own workloads
    namespace = str(meta.get("namespace") or request.get("namespace") or "")
    meta.setdefault("namespace", namespace)
    annotations = meta.get("annotations") or {}
    value = annotations.get(INJECT_ANNOTATION)
    if value is None:
        value = namespace_annotations.get(namespace, {}).get(INJECT_ANNOTATION)
    decision = choose(value, namespace, instances)
    if decision.warning:
        response["warnings"] = [decision.warning]
    if decision.instance is not None:
        new = _inject(deployment, decision.instance)
    elif INJECTED_LABEL in labels:
        new = _remove(deployment)
    else:
        return answer
    return with_patch(answer, _patch(deployment, new))
