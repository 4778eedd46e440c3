"""The `jaegers.jaegertracing.io` CustomResourceDefinition: Jaeger's resource, with a schema that
refuses what cannot mean anything and keeps every field Jaeger's operator knows (so existing
resources apply unchanged), printer columns, and the status subresource."""

from __future__ import annotations

from tracemesh.kube.jaeger_resource import Json

GROUP, VERSION, KIND, PLURAL = "jaegertracing.io", "v1", "Jaeger", "jaegers"
API_VERSION = f"{GROUP}/{VERSION}"

_FREE: Json = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_STRINGS: Json = {"type": "object", "additionalProperties": {"type": "string"}}


def _component(*, replicas: bool = True) -> Json:
    props: Json = {
        "image": {"type": "string"},
        "options": _FREE,
        "annotations": _STRINGS,
        "labels": _STRINGS,
        "resources": _FREE,
    }
    if replicas:
        props["replicas"] = {"type": "integer", "format": "int32", "minimum": 0}
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": props}


def _spec_schema() -> Json:
    agent = _component(replicas=False)
    agent["properties"]["strategy"] = {
        "type": "string",
        "enum": ["", "DaemonSet", "daemonset", "Sidecar", "sidecar"],
    }
    storage: Json = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "type": {
                "type": "string",
                "enum": ["", "memory", "disk", "badger", "elasticsearch", "kafka"],
            },
            "options": _FREE,
            "secretName": {"type": "string"},
        },
    }
    ingress: Json = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "enabled": {"type": "boolean"},
            "hosts": {"type": "array", "items": {"type": "string"}},
            "annotations": _STRINGS,
            "ingressClassName": {"type": "string"},
            "pathType": {"type": "string", "enum": ["Exact", "Prefix", "ImplementationSpecific"]},
            "tls": {"type": "array", "items": _FREE},
        },
    }
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "strategy": {
                "type": "string",
                "enum": ["", "allInOne", "allinone", "all-in-one", "production", "streaming"],
            },
            "allInOne": _component(replicas=False),
            "collector": _component(),
            "query": _component(),
            "ingester": _component(),
            "agent": agent,
            "storage": storage,
            "ingress": ingress,
            "sampling": {"type": "object", "properties": {"options": _FREE}},
            "annotations": _STRINGS,
            "labels": _STRINGS,
        },
    }


def _status_schema() -> Json:
    condition: Json = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer"},
        },
    }
    return {
        "type": "object",
        "properties": {
            "phase": {"type": "string"},
            "version": {"type": "string"},
            "observedGeneration": {"type": "integer"},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "conditions": {
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
        },
    }


def manifest() -> Json:
    column = [
        {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Version", "type": "string", "jsonPath": ".status.version"},
        {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy"},
        {"name": "Storage", "type": "string", "jsonPath": ".spec.storage.type"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "tracemesh"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": "JaegerList",
                "plural": PLURAL,
                "singular": "jaeger",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": column,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A Jaeger instance, run by tracemesh",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": _spec_schema(),
                                "status": _status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


ISTIO_GROUP = "networking.istio.io"
# kind -> (plural, short name, printer columns)
ISTIO_KINDS = {
    "VirtualService": (
        "virtualservices",
        "vs",
        [("Gateways", ".spec.gateways"), ("Hosts", ".spec.hosts")],
    ),
    "DestinationRule": ("destinationrules", "dr", [("Host", ".spec.host")]),
    "Gateway": ("gateways", "gw", []),
}


def istio_manifests() -> list[Json]:
    """Istio's routing CRDs for clusters without Istio: every version Istio serves (v1 stored),
    specs kept whole (tracemesh reports what it cannot apply in the resource's status)."""
    out = []
    for kind, (plural, short, columns) in ISTIO_KINDS.items():
        printer = [{"name": n, "type": "string", "jsonPath": p} for n, p in columns]
        printer.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
        schema = {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": _FREE, "status": _FREE},
                "x-kubernetes-preserve-unknown-fields": True,
            }
        }
        versions: list[Json] = [
            {
                "name": v,
                "served": True,
                "storage": v == "v1",
                "schema": schema,
                "subresources": {"status": {}},
                "additionalPrinterColumns": printer,
            }
            for v in ("v1", "v1beta1", "v1alpha3")
        ]
        out.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {
                    "name": f"{plural}.{ISTIO_GROUP}",
                    "labels": {"app.kubernetes.io/part-of": "tracemesh"},
                },
                "spec": {
                    "group": ISTIO_GROUP,
                    "scope": "Namespaced",
                    "versions": versions,
                    "names": {
                        "kind": kind,
                        "listKind": f"{kind}List",
                        "plural": plural,
                        "singular": kind.lower(),
                        "shortNames": [short],
                        "categories": ["istio-io", "networking-istio-io"],
                    },
                },
            }
        )
    return out
