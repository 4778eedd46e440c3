"""The Kubernetes objects that run one `Jaeger` resource: Deployments, Services, the sampling
ConfigMap, an Ingress and the agent DaemonSet, named and labelled as Jaeger's operator names them
so that clients, dashboards and scripts written for Jaeger find what they look for.

Pure: a `JaegerInstance` in, a list of manifests out. Every object carries an owner reference to
the resource, so deleting the resource deletes them all (the garbage collector does it).
"""

from __future__ import annotations

import json
from typing import Any

from tracemesh.kube.jaeger_resource import (
    ALL_IN_ONE,
    STREAMING,
    Component,
    JaegerInstance,
    Json,
)
from tracemesh.runtime import ports

MANAGED_BY = "tracemesh-operator"
INJECT_ANNOTATION = "sidecar.jaegertracing.io/inject"
SAMPLING_DIR = "/etc/jaeger/sampling"
DATA_DIR = "/var/lib/tracemesh"
MANAGED_KINDS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("networking.k8s.io/v1", "Ingress"),
)

# (name, port, protocol) as Jaeger's operator names them: Istio and dashboards read the prefix.
COLLECTOR_PORTS = (
    ("http-zipkin", ports.ZIPKIN_HTTP, "TCP"),
    ("grpc-jaeger", ports.COLLECTOR_GRPC, "TCP"),
    ("http-c-binary-trft", ports.COLLECTOR_HTTP, "TCP"),
    ("grpc-otlp", ports.OTLP_GRPC, "TCP"),
    ("http-otlp", ports.OTLP_HTTP, "TCP"),
)
COLLECTOR_SERVICE_PORTS = (*COLLECTOR_PORTS, ("admin-http", ports.ADMIN_HTTP, "TCP"))
AGENT_PORTS = (
    ("zk-compact-trft", ports.AGENT_ZIPKIN_COMPACT, "UDP"),
    ("config-rest", ports.AGENT_SAMPLING_HTTP, "TCP"),
    ("jg-compact-trft", ports.AGENT_JAEGER_COMPACT, "UDP"),
    ("jg-binary-trft", ports.AGENT_JAEGER_BINARY, "UDP"),
)
AGENT_OTLP_PORTS = (("grpc-otlp", ports.OTLP_GRPC, "TCP"), ("http-otlp", ports.OTLP_HTTP, "TCP"))
QUERY_PORTS = (("http-query", ports.QUERY_HTTP, "TCP"),)
# Container port names are limited to 15 characters; Jaeger's shorter ones for its containers.
CONTAINER_PORT_NAMES = {
    "http-zipkin": "zipkin",
    "grpc-jaeger": "grpc",
    "http-c-binary-trft": "c-binary-trft",
    "http-query": "query",
}
# component -> (tracemesh command, its admin port)
ROLE_OF = {
    "all-in-one": ("all-in-one", ports.ADMIN_HTTP),
    "collector": ("collector", ports.ADMIN_HTTP),
    "query": ("query", ports.QUERY_ADMIN_HTTP),
    "ingester": ("ingester", ports.INGESTER_ADMIN_HTTP),
    "agent": ("agent", ports.AGENT_ADMIN_HTTP),
}


def labels(inst: JaegerInstance, name: str, component: str) -> dict[str, str]:
    return {
        "app": "jaeger",
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": inst.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "jaeger",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector(inst: JaegerInstance, component: str) -> dict[str, str]:
    """Pod labels a workload selects on: never changed once created (selectors are immutable)."""
    return {
        "app": "jaeger",
        "app.kubernetes.io/instance": inst.name,
        "app.kubernetes.io/component": component,
    }


def owner_reference(inst: JaegerInstance) -> Json:
    return {
        "apiVersion": "jaegertracing.io/v1",
        "kind": "Jaeger",
        "name": inst.name,
        "uid": inst.uid,
        "controller": True,
    }


def _meta(inst: JaegerInstance, name: str, component: str, **extra: Any) -> Json:
    meta: Json = {
        "name": name,
        "namespace": inst.namespace,
        "labels": {**inst.labels, **labels(inst, name, component)},
        "ownerReferences": [owner_reference(inst)],
    }
    meta.update(extra)
    return meta


def _ports(table: tuple[tuple[str, int, str], ...], host: bool = False) -> list[Json]:
    out = []
    for name, port, protocol in table:
        item: Json = {
            "name": CONTAINER_PORT_NAMES.get(name, name),
            "containerPort": port,
            "protocol": protocol,
        }
        if host:
            item["hostPort"] = port
        out.append(item)
    return out


def _service(
    inst: JaegerInstance,
    name: str,
    component: str,
    pods: str,
    table: tuple[tuple[str, int, str], ...],
    headless: bool = False,
) -> Json:
    spec: Json = {
        "selector": selector(inst, pods),
        "ports": [
            {"name": n, "port": p, "targetPort": p, "protocol": proto} for n, p, proto in table
        ],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(inst, name, component),
        "spec": spec,
    }


def storage_args(inst: JaegerInstance, storage: str) -> list[str]:
    args = [f"--storage={storage}"]
    if storage == inst.storage_type:
        args += inst.storage_flags.args
    if storage == "disk" and not any(a.startswith("--disk.path=") for a in args):  # an emptyDir
        args.append(f"--disk.path={DATA_DIR}")
    return args


def _backend_container(
    inst: JaegerInstance,
    component: str,
    part: Component,
    args: list[str],
    table: tuple[tuple[str, int, str], ...],
) -> Json:
    command, admin = ROLE_OF[component]
    env: list[Json] = []
    if inst.secret_name:  # Jaeger's variable names in the secret, ours in the process
        for key in ("ES_USERNAME", "ES_PASSWORD"):
            env.append(
                {
                    "name": f"TRACEMESH_{key}",
                    "valueFrom": {
                        "secretKeyRef": {"name": inst.secret_name, "key": key, "optional": True}
                    },
                }
            )
    probe = {"httpGet": {"path": "/health", "port": admin}, "periodSeconds": 5}
    container: Json = {
        "name": f"jaeger-{component}" if component != "all-in-one" else "jaeger",
        "image": part.image,
        "command": ["tracemesh"],
        "args": [command, "--host=0.0.0.0", *args, *part.flags.args],
        "ports": [
            *_ports(table),
            {"name": "admin-http", "containerPort": admin, "protocol": "TCP"},
        ],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 5, "initialDelaySeconds": 5},
        "env": env,
        "volumeMounts": list(inst.volume_mounts),
    }
    if part.resources:
        container["resources"] = part.resources
    return container


def _deployment(
    inst: JaegerInstance,
    name: str,
    component: str,
    part: Component,
    container: Json,
    volumes: list[Json],
    recreate: bool = False,
) -> Json:
    pod_labels = {
        **inst.labels,
        **part.labels,
        **selector(inst, component),
        **labels(inst, name, component),
    }
    _, admin = ROLE_OF[component]
    annotations = {
        **inst.annotations,
        **part.annotations,
        INJECT_ANNOTATION: "false",  # no agent beside tracemesh's own Pods
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(admin),
    }
    spec: Json = {
        "replicas": part.replicas,
        "selector": {"matchLabels": selector(inst, component)},
        "template": {
            "metadata": {"labels": pod_labels, "annotations": annotations},
            "spec": {"containers": [container], "volumes": [*volumes, *inst.volumes]},
        },
    }
    if recreate:
        spec["strategy"] = {"type": "Recreate"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(inst, name, component, annotations=dict(inst.annotations)),
        "spec": spec,
    }


def _sampling(inst: JaegerInstance) -> tuple[Json, Json, list[str]]:
    """The strategies ConfigMap, the volume that mounts it, and the flag that reads it."""
    name = f"{inst.name}-sampling-configuration"
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(inst, name, "sampling-configuration"),
        "data": {"sampling": json.dumps(inst.sampling, indent=2, sort_keys=True)},
    }
    volume = {
        "name": "sampling-configuration",
        "configMap": {"name": name, "items": [{"key": "sampling", "path": "sampling.json"}]},
    }
    return config_map, volume, [f"--sampling.strategies-file={SAMPLING_DIR}/sampling.json"]


def _mount_sampling(container: Json) -> None:
    container["volumeMounts"].append(
        {"name": "sampling-configuration", "mountPath": SAMPLING_DIR, "readOnly": True}
    )


def _ingress(inst: JaegerInstance) -> Json | None:
    spec_in = inst.ingress
    if spec_in.get("enabled") is False:
        return None
    base = next(
        (
            a.split("=", 1)[1]
            for a in inst.components["query"].flags.args + inst.components["allInOne"].flags.args
            if a.startswith("--query.base-path=")
        ),
        "",
    )
    backend = {"service": {"name": f"{inst.name}-query", "port": {"number": ports.QUERY_HTTP}}}
    spec: Json = {}
    hosts = [str(h) for h in spec_in.get("hosts") or []]
    if hosts or base:
        path = {
            "path": base or "/",
            "pathType": str(spec_in.get("pathType") or "Prefix"),
            "backend": backend,
        }
        spec["rules"] = [{"host": h, "http": {"paths": [path]}} for h in hosts] or [
            {"http": {"paths": [path]}}
        ]
    else:
        spec["defaultBackend"] = backend
    if spec_in.get("ingressClassName"):
        spec["ingressClassName"] = str(spec_in["ingressClassName"])
    if isinstance(spec_in.get("tls"), list):
        spec["tls"] = spec_in["tls"]
    meta = _meta(inst, f"{inst.name}-query", "query-ingress")
    if isinstance(spec_in.get("annotations"), dict):
        meta["annotations"] = {str(k): str(v) for k, v in spec_in["annotations"].items()}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def agent_container(inst: JaegerInstance, name: str, host_ports: bool) -> Json:
    """The agent beside an application (injected) or on every node (DaemonSet)."""
    part = inst.components["agent"]
    collector = f"dns:///{inst.collector_headless}.{inst.namespace}.svc:{ports.OTLP_GRPC}"
    args = [
        "agent",
        "--host=0.0.0.0",
        "--agent.otlp=true",
        f"--agent.collector={collector}",
        *part.flags.args,
    ]
    _, admin = ROLE_OF["agent"]
    container: Json = {
        "name": name,
        "image": part.image,
        "command": ["tracemesh"],
        "args": args,
        "ports": [
            *_ports(AGENT_PORTS + AGENT_OTLP_PORTS, host=host_ports),
            {"name": "admin-http", "containerPort": admin, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/health", "port": admin}, "periodSeconds": 5},
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }
    if part.resources:
        container["resources"] = part.resources
    return container


def _daemonset(inst: JaegerInstance) -> Json:
    name = f"{inst.name}-agent-daemonset"
    part = inst.components["agent"]
    pod_labels = {
        **inst.labels,
        **part.labels,
        **selector(inst, "agent"),
        **labels(inst, name, "agent"),
    }
    annotations = {**inst.annotations, **part.annotations, INJECT_ANNOTATION: "false"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _meta(inst, name, "agent"),
        "spec": {
            "selector": {"matchLabels": selector(inst, "agent")},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": {
                    "containers": [agent_container(inst, "jaeger-agent-daemonset", host_ports=True)]
                },
            },
        },
    }


def objects(inst: JaegerInstance) -> list[Json]:
    """Every object the resource needs, in the order they are best created."""
    config_map, sampling_volume, sampling_args = _sampling(inst)
    out: list[Json] = [config_map]
    name = inst.name
    if inst.strategy == ALL_IN_ONE:
        part = inst.components["allInOne"]
        container = _backend_container(
            inst,
            "all-in-one",
            part,
            storage_args(inst, inst.storage_type) + sampling_args,
            COLLECTOR_PORTS + AGENT_PORTS + QUERY_PORTS,
        )
        _mount_sampling(container)
        volumes = [sampling_volume]
        if f"--disk.path={DATA_DIR}" in container["args"]:  # no volume of the user's named
            container["volumeMounts"].append({"name": "data", "mountPath": DATA_DIR})
            volumes.append({"name": "data", "emptyDir": {}})
        out.append(_deployment(inst, name, "all-in-one", part, container, volumes, recreate=True))
        collector_pods = query_pods = "all-in-one"
        out.append(
            _service(
                inst, f"{name}-agent", "service-agent", "all-in-one", AGENT_PORTS, headless=True
            )
        )
    else:
        collector_storage = "kafka" if inst.strategy == STREAMING else inst.storage_type
        part = inst.components["collector"]
        container = _backend_container(
            inst,
            "collector",
            part,
            storage_args(inst, collector_storage) + sampling_args,
            COLLECTOR_PORTS,
        )
        _mount_sampling(container)
        out.append(
            _deployment(inst, f"{name}-collector", "collector", part, container, [sampling_volume])
        )
        collector_pods = "collector"
        query_pods = "query"
        if inst.storage_type != "kafka":
            part = inst.components["query"]
            container = _backend_container(
                inst, "query", part, storage_args(inst, inst.storage_type), QUERY_PORTS
            )
            out.append(_deployment(inst, f"{name}-query", "query", part, container, []))
        if inst.strategy == STREAMING:
            part = inst.components["ingester"]
            args = storage_args(inst, inst.storage_type) + _consumer_defaults(inst)
            container = _backend_container(inst, "ingester", part, args, ())
            out.append(_deployment(inst, f"{name}-ingester", "ingester", part, container, []))
    out.append(
        _service(
            inst,
            inst.collector_service,
            "service-collector",
            collector_pods,
            COLLECTOR_SERVICE_PORTS,
        )
    )
    out.append(
        _service(
            inst,
            inst.collector_headless,
            "service-collector",
            collector_pods,
            COLLECTOR_SERVICE_PORTS,
            headless=True,
        )
    )
    if inst.storage_type != "kafka":
        out.append(_service(inst, f"{name}-query", "service-query", query_pods, QUERY_PORTS))
        ingress = _ingress(inst)
        if ingress is not None:
            out.append(ingress)
    if inst.agent_strategy == "DaemonSet":
        out.append(_daemonset(inst))
    return out


def _consumer_defaults(inst: JaegerInstance) -> list[str]:
    """The ingester reads where the collector writes unless told otherwise."""
    given = {a.split("=", 1)[0] for a in inst.components["ingester"].flags.args}
    producer = dict(
        a.split("=", 1)
        for a in inst.components["collector"].flags.args + inst.storage_flags.args
        if a.startswith("--kafka.producer.")
    )
    out = []
    for what in ("brokers", "topic", "encoding"):
        value = producer.get(f"--kafka.producer.{what}")
        if value is not None and f"--kafka.consumer.{what}" not in given:
            out.append(f"--kafka.consumer.{what}={value}")
    return out
