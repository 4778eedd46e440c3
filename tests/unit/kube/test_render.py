"""The objects rendered for each strategy: names, ports, flags, owners."""

from __future__ import annotations

from typing import Any

from tracemesh.kube.jaeger_resource import read
from tracemesh.kube.render import objects


def render(spec: Any) -> dict[tuple[str, str], Any]:
    inst = read({"metadata": {"name": "j", "namespace": "ns", "uid": "u-1"}, "spec": spec}, "img")
    return {(o["kind"], o["metadata"]["name"]): o for o in objects(inst)}


def args(obj: Any) -> list[str]:
    return list(obj["spec"]["template"]["spec"]["containers"][0]["args"])


def test_every_object_is_owned_and_labelled() -> None:
    for obj in render({"agent": {"strategy": "DaemonSet"}}).values():
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "u-1"
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "j"
        assert obj["metadata"]["namespace"] == "ns"


def test_all_in_one() -> None:
    out = render({})
    assert set(out) == {
        ("ConfigMap", "j-sampling-configuration"),
        ("Deployment", "j"),
        ("Service", "j-agent"),
        ("Service", "j-collector"),
        ("Service", "j-collector-headless"),
        ("Service", "j-query"),
        ("Ingress", "j-query"),
    }
    assert "--sampling.strategies-file=/etc/jaeger/sampling/sampling.json" in args(
        out[("Deployment", "j")]
    )
    ports = out[("Deployment", "j")]["spec"]["template"]["spec"]["containers"][0]["ports"]
    names = [p["name"] for p in ports]
    assert all(len(n) <= 15 for n in names) and len(names) == len(set(names))
    pod = out[("Deployment", "j")]["spec"]["template"]["metadata"]
    assert pod["annotations"]["sidecar.jaegertracing.io/inject"] == "false"


def test_disk_gets_a_data_volume() -> None:
    deployment = render({"storage": {"type": "disk"}})[("Deployment", "j")]
    assert "--disk.path=/var/lib/tracemesh" in args(deployment)
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "emptyDir": {}} in volumes


def test_production_with_kafka_storage_has_nothing_to_query() -> None:
    out = render({"strategy": "production", "storage": {"type": "kafka"}})
    assert ("Deployment", "j-collector") in out and ("Deployment", "j-query") not in out
    assert ("Ingress", "j-query") not in out
    assert "--storage=kafka" in args(out[("Deployment", "j-collector")])


def test_ingress_hosts_base_path_and_class() -> None:
    out = render(
        {
            "ingress": {
                "hosts": ["tracing.example"],
                "ingressClassName": "nginx",
                "annotations": {"a": "b"},
            },
            "allInOne": {"options": {"query.base-path": "/jaeger"}},
        }
    )
    ingress = out[("Ingress", "j-query")]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "tracing.example"
    assert rule["http"]["paths"][0]["path"] == "/jaeger"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"a": "b"}


def test_user_volumes_reach_every_backend_pod_and_replace_the_empty_dir() -> None:
    spec = {
        "storage": {"type": "badger", "options": {"badger.directory-value": "/data"}},
        "volumes": [{"name": "store", "persistentVolumeClaim": {"claimName": "traces"}}],
        "volumeMounts": [{"name": "store", "mountPath": "/data"}],
    }
    deployment = render(spec)[("Deployment", "j")]
    pod = deployment["spec"]["template"]["spec"]
    assert "--disk.path=/data" in args(deployment)
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "traces"}} in pod["volumes"]
    assert all(v["name"] != "data" for v in pod["volumes"])
    assert {"name": "store", "mountPath": "/data"} in pod["containers"][0]["volumeMounts"]
