"""`tracemesh manifests`: everything a cluster needs to run the operator, as YAML for
`kubectl apply -f -`: namespace, CRD, service account and RBAC (cluster-wide, or one Role per
watched namespace), the operator's Deployment and webhook Service, and the webhook configuration.

The webhook fails open (`failurePolicy: Ignore`, 5 s timeout): a down operator delays Deployment
writes by at most the timeout and never blocks them; Deployments admitted meanwhile get no agent
until their next change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from tracemesh.kube import crd
from tracemesh.kube.jaeger_resource import Json
from tracemesh.kube.webhook import PATH, POD_PATH

NAME = "tracemesh-operator"
WEBHOOK_NAME = "deployment.sidecar-injector.jaegertracing.io"
POD_WEBHOOK_NAME = "pod.sidecar-injector.tracemesh.io"
_RW = ["get", "list", "watch", "create", "update", "patch", "delete"]


@dataclass
class Install:
    namespace: str = "tracemesh"
    image: str = "tracemesh/tracemesh:latest"
    watch_namespaces: list[str] = field(default_factory=list)
    webhook_url: str = ""  # an operator outside the cluster (development, tests)
    webhook_port: int = 9443
    admin_port: int = 8383
    istio_crds: bool = True  # leave them out where Istio is installed


def _namespaced_rules() -> list[Json]:
    return [
        {
            "apiGroups": ["jaegertracing.io"],
            "resources": ["jaegers"],
            "verbs": ["get", "list", "watch", "update", "patch"],
        },
        {
            "apiGroups": ["jaegertracing.io"],
            "resources": ["jaegers/status"],
            "verbs": ["get", "update", "patch"],
        },
        {"apiGroups": ["apps"], "resources": ["deployments", "daemonsets"], "verbs": _RW},
        {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": _RW},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": _RW},
        # the control plane: what its tables are made of, and Events for what it refuses
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["networking.istio.io"],
            "resources": ["virtualservices", "destinationrules", "gateways"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    ]


def _cluster_rules() -> list[Json]:
    """What every mode needs cluster-wide: namespace annotations (injection) and the webhook
    configuration's CA bundle."""
    return [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["mutatingwebhookconfigurations"],
            "resourceNames": [NAME],
            "verbs": ["get", "patch", "update"],
        },
    ]


def _binding(kind: str, name: str, role_kind: str, install: Install, namespace: str = "") -> Json:
    meta: Json = {"name": name, "labels": _labels()}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": install.namespace}],
    }


def _role(kind: str, name: str, rules: list[Json], namespace: str = "") -> Json:
    meta: Json = {"name": name, "labels": _labels()}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "rules": rules,
    }


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "tracemesh"}


def rbac(install: Install) -> list[Json]:
    out = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": NAME, "namespace": install.namespace, "labels": _labels()},
        },
        # its own namespace: the Secret that holds the webhook's certificate
        _role(
            "Role",
            f"{NAME}-certificate",
            [
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "verbs": ["get", "create", "update", "patch"],
                },
                # the control plane's mesh settings ConfigMap
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
            ],
            install.namespace,
        ),
        _binding("RoleBinding", f"{NAME}-certificate", "Role", install, install.namespace),
    ]
    if install.watch_namespaces:
        out += [
            _role("ClusterRole", f"{NAME}-cluster", _cluster_rules()),
            _binding("ClusterRoleBinding", f"{NAME}-cluster", "ClusterRole", install),
        ]
        for namespace in install.watch_namespaces:
            out += [
                _role("Role", NAME, _namespaced_rules(), namespace),
                _binding("RoleBinding", NAME, "Role", install, namespace),
            ]
    else:
        out += [
            _role("ClusterRole", NAME, _namespaced_rules() + _cluster_rules()),
            _binding("ClusterRoleBinding", NAME, "ClusterRole", install),
        ]
    return out


def _deployment(install: Install) -> Json:
    env: list[Json] = [
        {"name": "WATCH_NAMESPACE", "value": ",".join(install.watch_namespaces)},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TRACEMESH_IMAGE", "value": install.image},
    ]
    probe = {"httpGet": {"path": "/health", "port": install.admin_port}, "periodSeconds": 10}
    container = {
        "name": "operator",
        "image": install.image,
        "command": ["tracemesh"],
        "args": [
            "operator",
            f"--webhook.port={install.webhook_port}",
            f"--admin.http-port={install.admin_port}",
        ],
        "env": env,
        "ports": [
            {"name": "webhook", "containerPort": install.webhook_port},
            {"name": "metrics", "containerPort": install.admin_port},
        ],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "failureThreshold": 6},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # the webhook's certificate reaches the TLS library through files in /tmp
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    selector = {"app.kubernetes.io/name": NAME}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": install.namespace, "labels": _labels()},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**_labels(), **selector}},
                "spec": {
                    "serviceAccountName": NAME,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def _webhook_service(install: Install) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"{NAME}-webhook",
            "namespace": install.namespace,
            "labels": _labels(),
        },
        "spec": {
            "selector": {"app.kubernetes.io/name": NAME},
            "ports": [{"name": "https-webhook", "port": 443, "targetPort": install.webhook_port}],
        },
    }


def _client(install: Install, path: str) -> Json:
    if install.webhook_url:
        return {"url": install.webhook_url.rstrip("/") + path}
    service = {"name": f"{NAME}-webhook", "namespace": install.namespace, "path": path, "port": 443}
    return {"service": service}


def _webhook(name: str, install: Install, path: str, rule: Json) -> Json:
    if install.watch_namespaces:
        values, operator = sorted(set(install.watch_namespaces)), "In"
    else:
        values, operator = ["kube-system", install.namespace], "NotIn"
    match = {"key": "kubernetes.io/metadata.name", "operator": operator, "values": values}
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "timeoutSeconds": 5,
        "matchPolicy": "Equivalent",
        "reinvocationPolicy": "Never",
        "clientConfig": _client(install, path),
        "namespaceSelector": {"matchExpressions": [match]},
        "rules": [{**rule, "scope": "Namespaced"}],
    }


def webhook_configuration(install: Install) -> Json:
    """Agents into Deployments (the controller manager copies the template into every Pod),
    sidecars into Pods at creation; never in kube-system or the operator's own namespace; the
    CA bundle is filled in by the operator."""
    deployments = {
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["deployments"],
    }
    pods = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["pods"],
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": NAME, "labels": _labels()},
        "webhooks": [
            _webhook(WEBHOOK_NAME, install, PATH, deployments),
            _webhook(POD_WEBHOOK_NAME, install, POD_PATH, pods),
        ],
    }


def objects(install: Install) -> list[Json]:
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": install.namespace, "labels": _labels()},
    }
    out = [namespace, crd.manifest()]
    if install.istio_crds:
        out += crd.istio_manifests()
    out += rbac(install)
    if not install.webhook_url:  # an operator outside the cluster runs no Pod of its own
        out += [_deployment(install), _webhook_service(install), *_control(install)]
    out.append(webhook_configuration(install))
    return out


def _control(install: Install) -> list[Json]:
    """`tracemesh control` and the Service proxies reach it by (port 15010)."""
    name = "tracemesh-control"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "tracemesh"}
    env = [
        {"name": "WATCH_NAMESPACE", "value": ",".join(install.watch_namespaces)},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    container = {
        "name": "control",
        "image": install.image,
        "command": ["tracemesh"],
        "args": ["control", "--port=15010", "--admin.http-port=15014"],
        "env": env,
        "ports": [
            {"name": "http-config", "containerPort": 15010},
            {"name": "http-monitoring", "containerPort": 15014},
        ],
        "readinessProbe": {"httpGet": {"path": "/health", "port": 15014}, "periodSeconds": 5},
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    selector = {"app.kubernetes.io/name": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": install.namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"serviceAccountName": NAME, "containers": [container]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": install.namespace, "labels": labels},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http-config", "port": 15010, "targetPort": 15010}],
        },
    }
    return [deployment, service]


def to_yaml(items: list[Json]) -> str:
    return yaml.safe_dump_all(items, sort_keys=False, default_flow_style=False)
