"""Istio's routing resources -> the proxies' tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tracemesh.kube.istio_routes import tables
from tracemesh.mesh.config_file import load_mesh
from tracemesh.mesh.registry import load_registry, registry_from_mapping

NS = "hello"


def meta(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": NS}


FORMATTER_RULE = {
    "metadata": meta("formatter"),
    "spec": {
        "host": "formatter",
        "subsets": [
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}},
        ],
    },
}
FORMATTER_ROUTE = {
    "metadata": meta("formatter-virtual-svc"),
    "spec": {
        "hosts": ["formatter.hello.svc.cluster.local"],
        "http": [
            {
                "match": [{"headers": {"baggage-user-agent": {"regex": ".*Netscape.*"}}}],
                "route": [{"destination": {"host": "formatter", "subset": "v2"}}],
                "retries": {"attempts": 2, "perTryTimeout": "1s"},
            },
            {
                "route": [{"destination": {"host": "formatter", "subset": "v1"}}],
                "fault": {"delay": {"fixedDelay": "10ms", "percentage": {"value": 5}}},
            },
        ],
    },
}
GATEWAY = {
    "metadata": meta("hello-app-gateway"),
    "spec": {
        "selector": {"istio": "ingressgateway"},
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}],
    },
}
HELLO_ROUTE = {
    "metadata": meta("hello-app"),
    "spec": {
        "hosts": ["*"],
        "gateways": ["hello-app-gateway"],
        "http": [
            {
                "match": [{"uri": {"prefix": "/sayHello"}}, {"uri": {"prefix": "/sayHello2"}}],
                "route": [{"destination": {"host": "hello", "port": {"number": 8080}}}],
            }
        ],
    },
}
SLICE = {
    "metadata": {
        "name": "formatter-abc",
        "namespace": NS,
        "labels": {"kubernetes.io/service-name": "formatter"},
    },
    "ports": [{"port": 8080, "protocol": "TCP"}],
    "endpoints": [
        {"addresses": ["10.1.0.5"], "targetRef": {"kind": "Pod", "name": "f-1"}},
        {"addresses": ["10.1.0.6"], "targetRef": {"kind": "Pod", "name": "f-2"}},
        {"addresses": ["10.1.0.7"], "conditions": {"ready": False}},
    ],
}


def build(*routes: dict[str, Any]) -> Any:
    return tables(
        NS,
        [SLICE],
        {
            "f-1": {"app": "formatter", "version": "v1"},
            "f-2": {"app": "formatter", "version": "v2"},
        },
        list(routes),
        [FORMATTER_RULE],
        [GATEWAY],
        {"sampling": 10},
    )


def test_the_hello_routing_becomes_the_mesh_files_routes() -> None:
    out = build(FORMATTER_ROUTE, HELLO_ROUTE)
    assert out.problems == []
    mesh = load_mesh(yaml.safe_dump(out.mesh))
    formatter = mesh.routes["formatter"]
    assert dict(formatter.subsets) == {"v1": {"version": "v1"}, "v2": {"version": "v2"}}
    first, second = formatter.http
    assert first.match[0].baggage["user-agent"].value == ".*Netscape.*"  # any baggage format
    assert first.route[0].subset == "v2" and second.route[0].subset == "v1"
    assert first.retries is not None and first.retries.attempts == 2
    assert second.fault is not None and second.fault.delay is not None
    assert second.fault.delay.percentage == 5
    assert mesh.gateway is not None and mesh.gateway.port == 8080  # Istio's 80 -> 8080
    assert [(r.prefix, r.service) for r in mesh.gateway.routes] == [
        ("/sayHello", "hello"),
        ("/sayHello2", "hello"),
    ]
    assert mesh.tracing.sampling == 10
    registry = load_registry(yaml.safe_dump(out.registry))
    assert {(i.address, i.labels.get("version")) for i in registry.instances("formatter")} == {
        (("10.1.0.5", 8080), "v1"),
        (("10.1.0.6", 8080), "v2"),
    }  # not-ready left out


def test_a_resource_that_cannot_apply_whole_is_left_out_and_named() -> None:
    mirror = {
        "metadata": meta("mirrored"),
        "spec": {
            "hosts": ["hello"],
            "http": [{"route": [{"destination": {"host": "hello"}}], "mirror": {"host": "shadow"}}],
        },
    }
    bad_subset = {
        "metadata": meta("bad-subset"),
        "spec": {
            "hosts": ["formatter"],
            "http": [{"route": [{"destination": {"host": "formatter", "subset": "v3"}}]}],
        },
    }
    split = {
        "metadata": meta("split"),
        "spec": {
            "hosts": ["formatter"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": "formatter", "subset": "v1"}, "weight": 60},
                        {"destination": {"host": "formatter", "subset": "v2"}, "weight": 30},
                    ]
                }
            ],
        },
    }
    out = build(FORMATTER_ROUTE, mirror, bad_subset, split)
    problems = {p.name: p.message for p in out.problems}
    assert "spec.http[0].mirror: not supported" in problems["mirrored"]
    assert "unknown subset 'v3'" in problems["bad-subset"]
    assert "weights sum to 90" in problems["split"]
    mesh = load_mesh(yaml.safe_dump(out.mesh))
    assert mesh.routes["formatter"].http[0].route[0].subset == "v2"  # the good one stands
    assert "hello" not in mesh.routes


def test_services_with_a_cluster_ip_carry_it_for_captured_calls() -> None:
    service = {
        "metadata": meta("formatter"),
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 8080, "protocol": "TCP"}]},
    }
    headless = {"metadata": meta("db"), "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}
    out = tables(NS, [SLICE], {}, [], [], [], {}, [service, headless])
    assert out.registry["formatter"]["clusterIP"] == "10.96.0.20"
    assert out.registry["formatter"]["ports"] == [8080]
    assert len(out.registry["formatter"]["instances"]) == 2
    assert "db" not in out.registry
    registry = registry_from_mapping(out.registry)
    assert registry.service_at(("10.96.0.20", 8080)) == "formatter"


def test_the_hello_demos_kubernetes_manifests_route_as_the_local_demo() -> None:
    manifests = Path(__file__).parents[3] / "src/tracemesh/demos/hello/kubernetes.yaml"
    documents = [d for d in yaml.safe_load_all(manifests.read_text()) if d]
    kinds: dict[str, list[Any]] = {}
    for doc in documents:
        kinds.setdefault(doc["kind"], []).append(doc)
    out = tables(
        "hello", [], {}, kinds["VirtualService"], kinds["DestinationRule"], kinds["Gateway"], {}
    )
    assert out.problems == []
    mesh = load_mesh(yaml.safe_dump(out.mesh))
    rule = mesh.routes["formatter"].http[0]
    assert rule.match[0].baggage["user-agent"].value == ".*Netscape.*"
    assert rule.route[0].subset == "v2"
    assert mesh.gateway is not None
    assert [(r.prefix, r.service) for r in mesh.gateway.routes] == [("/sayHello", "hello")]
    hello = next(d for d in kinds["Deployment"] if d["metadata"]["name"] == "hello-v1")
    env = {e["name"]: e["value"] for e in hello["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TRACEMESH_OUTBOUND"] == "direct"  # no HTTP_PROXY: the sidecar captures
