"""Sidecar injection, as Istio's injector decides and shapes it: who gets a proxy, and the Pod
spec with it. Pure: used by the webhook (Pods at creation) and by `tracemesh kube-inject`
(workload templates in a file, offline).

Who: a Pod annotated or labelled `sidecar.istio.io/inject` or `tracemesh.io/inject` `"true"`,
or any Pod of a namespace labelled `istio-injection=enabled` (or `tracemesh.io/inject=enabled`);
`"false"` on the Pod opts out. What: an init container that redirects the Pod's TCP to the
proxy with iptables (`tracemesh iptables`), and the proxy as a native sidecar (an init container
that keeps running: the kubelet starts the application only once its startup probe passes), run
as uid 1337 so the rules leave its own traffic alone. The Pod's `app` and `version` labels, its
namespace and service account are the proxy's identity in spans.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tracemesh.kube.injection import ReviewError, envelope, with_patch
from tracemesh.kube.jaeger_resource import Json
from tracemesh.runtime import ports

POD_ANNOTATIONS = ("sidecar.istio.io/inject", "tracemesh.io/inject")
NAMESPACE_LABELS = ("istio-injection", "tracemesh.io/inject")
STATUS_ANNOTATION = "sidecar.istio.io/status"
EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"
EXCLUDE_OUTBOUND = "traffic.sidecar.istio.io/excludeOutboundPorts"
PROXY, INIT = "tracemesh-proxy", "tracemesh-init"
PROXY_UID = 1337
INJECTABLE = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod")


@dataclass(frozen=True)
class ProxySettings:
    """What every injected proxy shares (from the operator's flags or kube-inject's)."""

    image: str
    collector: str  # host:port of an OTLP/gRPC collector
    sampling: float = 100.0
    control: str = ""  # the control plane's address, when one runs


def wanted(pod_meta: Json, namespace_labels: Mapping[str, str]) -> bool:
    marks = {**(pod_meta.get("labels") or {}), **(pod_meta.get("annotations") or {})}
    for key in POD_ANNOTATIONS:
        value = str(marks.get(key, "")).lower()
        if value in ("true", "false"):
            return value == "true"
    return any(namespace_labels.get(key) == "enabled" for key in NAMESPACE_LABELS)


def _ports(text: str) -> str:
    """A port list as the annotation gives it (`"3306, 6379"`), checked and normalized."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise ValueError(f"not a port: {part!r}")
        out.append(str(int(part)))
    return ",".join(out)


def identity(pod_meta: Json, namespace: str) -> tuple[str, str]:
    labels = pod_meta.get("labels") or {}
    app = (
        labels.get("app")
        or labels.get("app.kubernetes.io/name")
        or pod_meta.get("generateName", "").rstrip("-")
        or pod_meta.get("name")
        or "app"
    )
    version = labels.get("version") or labels.get("app.kubernetes.io/version") or ""
    return str(app), str(version)


def _app_port(spec: Json) -> int:
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("protocol", "TCP") == "TCP" and isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
    return 0


def _field_env(name: str, path: str) -> Json:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def containers(
    pod_meta: Json, spec: Json, namespace: str, settings: ProxySettings
) -> tuple[Json, Json]:
    """The init container that installs the redirect, and the proxy."""
    annotations = pod_meta.get("annotations") or {}
    app, version = identity(pod_meta, namespace)
    excluded_in = _ports(str(annotations.get(EXCLUDE_INBOUND, "")))
    excluded_out = _ports(str(annotations.get(EXCLUDE_OUTBOUND, "")))
    init_args = [
        "iptables",
        f"--proxy-uid={PROXY_UID}",
        f"--inbound-port={ports.SIDECAR_INBOUND}",
        f"--outbound-port={ports.SIDECAR_OUTBOUND}",
    ]
    if excluded_in:
        init_args.append(f"--exclude-inbound-ports={excluded_in}")
    if excluded_out:
        init_args.append(f"--exclude-outbound-ports={excluded_out}")
    init = {
        "name": INIT,
        "image": settings.image,
        "command": ["tracemesh"],
        "args": init_args,
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
        },
    }
    args = [
        "sidecar",
        "--capture",
        "--host=0.0.0.0",
        f"--service={app}",
        f"--namespace={namespace}",
        f"--inbound-port={ports.SIDECAR_INBOUND}",
        f"--outbound-port={ports.SIDECAR_OUTBOUND}",
        f"--admin-port={ports.SIDECAR_ADMIN}",
        f"--collector={settings.collector}",
        f"--sampling={settings.sampling:g}",
    ]
    if version:
        args.append(f"--label=version={version}")
    app_port = _app_port(spec)
    if app_port:
        args.append(f"--app-port={app_port}")
    if settings.control:
        args.append(f"--control={settings.control}")
    health = {"httpGet": {"path": "/health", "port": ports.SIDECAR_ADMIN}, "periodSeconds": 2}
    proxy = {
        "name": PROXY,
        "image": settings.image,
        "command": ["tracemesh"],
        "args": args,
        "restartPolicy": "Always",  # a native sidecar: runs beside the app, started first
        "ports": [{"name": "http-envoy-prom", "containerPort": ports.SIDECAR_ADMIN}],
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            _field_env("INSTANCE_IP", "status.podIP"),
            _field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ],
        "startupProbe": {**health, "failureThreshold": 60, "periodSeconds": 1},
        "readinessProbe": health,
        "securityContext": {
            "runAsUser": PROXY_UID,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return init, proxy


def inject(
    pod_meta: Json, spec: Json, namespace: str, settings: ProxySettings
) -> tuple[Json, Json]:
    """The Pod's metadata and spec with the proxy (the same again if it has one already)."""
    meta, out = copy.deepcopy(pod_meta), copy.deepcopy(spec)
    init, proxy = containers(meta, out, namespace, settings)
    kept = [c for c in out.get("initContainers") or [] if c.get("name") not in (INIT, PROXY)]
    out["initContainers"] = [init, proxy, *kept]
    status = {"initContainers": [INIT, PROXY], "version": 1}
    meta.setdefault("annotations", {})[STATUS_ANNOTATION] = json.dumps(status, sort_keys=True)
    labels = meta.setdefault("labels", {})
    app, version = identity(pod_meta, namespace)
    labels.setdefault("service.istio.io/canonical-name", app)
    if version:
        labels.setdefault("service.istio.io/canonical-revision", version)
    return meta, out


def _opted_out(meta: Json) -> bool:
    marks = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    return any(str(marks.get(key, "")).lower() == "false" for key in POD_ANNOTATIONS)


def kube_inject(
    documents: list[Any], settings: ProxySettings, namespace: str = "default"
) -> list[Any]:
    """`istioctl kube-inject`: every workload's Pod template gets the proxy unless it opts
    out; other documents pass unchanged."""
    out = []
    for doc in documents:
        if not isinstance(doc, dict) or doc.get("kind") not in INJECTABLE:
            out.append(doc)
            continue
        doc = copy.deepcopy(doc)
        ns = str((doc.get("metadata") or {}).get("namespace") or namespace)
        pod = doc if doc["kind"] == "Pod" else doc.setdefault("spec", {}).setdefault("template", {})
        meta = pod.setdefault("metadata", {})
        if not _opted_out(meta):
            pod["metadata"], pod["spec"] = inject(meta, pod.get("spec") or {}, ns, settings)
        out.append(doc)
    return out


def review_pod(
    body: Any,
    namespace_labels: Mapping[str, Mapping[str, str]],
    settings_for: Callable[[str], ProxySettings],
) -> Json:
    """The AdmissionReview answer for a Pod being created."""
    request, answer = envelope(body)
    pod = request.get("object")
    if pod is None:
        return answer
    if not isinstance(pod, dict) or pod.get("kind") != "Pod":
        raise ReviewError("request.object: a Pod is expected")
    spec, meta = pod.get("spec"), pod.setdefault("metadata", {})
    if not isinstance(spec, dict) or not isinstance(spec.get("containers"), list):
        raise ReviewError("request.object.spec.containers: missing")
    if not isinstance(meta, dict):
        raise ReviewError("request.object.metadata: must be an object")
    namespace = str(meta.get("namespace") or request.get("namespace") or "")
    already = STATUS_ANNOTATION in (meta.get("annotations") or {})
    if already or not wanted(meta, namespace_labels.get(namespace, {})):
        return answer
    try:
        new_meta, new_spec = inject(meta, spec, namespace, settings_for(namespace))
    except ValueError as exc:  # an annotation that is not a port list
        answer["response"]["warnings"] = [f"no sidecar injected: {exc}"]
        return answer
    ops = [
        {"op": "add", "path": "/spec/initContainers", "value": new_spec["initContainers"]},
        {"op": "add", "path": "/metadata/annotations", "value": new_meta["annotations"]},
        {"op": "add", "path": "/metadata/labels", "value": new_meta["labels"]},
    ]
    return with_patch(answer, ops)
