"""The operator against a real API server and controller manager: every strategy and storage type
becomes the objects Jaeger's operator would make, changes roll out, deletion cascades, and bad
specs are refused by the schema or reported in the status while everything else goes on."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import yaml

from tests.integration.kube.control_plane import ControlPlane, eventually
from tests.integration.kube.operator_process import OperatorProcess

_names = itertools.count()


@pytest.fixture
def namespace(plane: ControlPlane) -> str:
    name = f"jaeger-{next(_names)}"
    plane.kubectl("create", "namespace", name)
    return name


def apply(plane: ControlPlane, namespace: str, name: str, spec: dict[str, Any]) -> None:
    resource = {
        "apiVersion": "jaegertracing.io/v1",
        "kind": "Jaeger",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(resource))


def running(plane: ControlPlane, namespace: str, name: str, generation: int = 1) -> Any:
    def check() -> Any:
        jaeger = plane.get("jaeger", name, "-n", namespace)
        status = (jaeger or {}).get("status") or {}
        return (
            status
            if status.get("observedGeneration", 0) >= generation and status.get("phase")
            else None
        )

    return eventually(check, what=f"status of {namespace}/{name}")


def names(plane: ControlPlane, kind: str, namespace: str, instance: str) -> set[str]:
    found = plane.get(kind, "-n", namespace, "-l", f"app.kubernetes.io/instance={instance}")
    return {item["metadata"]["name"] for item in found["items"]}


def container(plane: ControlPlane, namespace: str, deployment: str) -> Any:
    found = plane.get("deployment", deployment, "-n", namespace)
    return found["spec"]["template"]["spec"]["containers"][0]


def test_simplest_runs_all_in_one_with_jaegers_objects(
    plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(plane, namespace, "simplest", {})
    status = running(plane, namespace, "simplest")
    assert status["phase"] == "Running" and status["version"]
    reconciled = {c["type"]: c for c in status["conditions"]}["Reconciled"]
    assert reconciled["status"] == "True"
    assert names(plane, "deployment", namespace, "simplest") == {"simplest"}
    assert names(plane, "service", namespace, "simplest") == {
        "simplest-collector",
        "simplest-collector-headless",
        "simplest-query",
        "simplest-agent",
    }
    assert names(plane, "configmap", namespace, "simplest") == {"simplest-sampling-configuration"}
    assert names(plane, "ingress", namespace, "simplest") == {"simplest-query"}
    collector = plane.get("service", "simplest-collector", "-n", namespace)
    ports = {p["name"]: p["port"] for p in collector["spec"]["ports"]}
    assert ports["grpc-otlp"] == 4317 and ports["http-c-binary-trft"] == 14268
    assert ports["grpc-jaeger"] == 14250 and ports["http-zipkin"] == 9411
    headless = plane.get("service", "simplest-collector-headless", "-n", namespace)
    assert headless["spec"]["clusterIP"] == "None"
    main = container(plane, namespace, "simplest")
    assert main["args"][:3] == ["all-in-one", "--host=0.0.0.0", "--storage=memory"]
    owner = plane.get("deployment", "simplest", "-n", namespace)["metadata"]["ownerReferences"][0]
    jaeger = plane.get("jaeger", "simplest", "-n", namespace)
    assert owner["kind"] == "Jaeger" and owner["uid"] == jaeger["metadata"]["uid"]
    # the controller manager makes the ReplicaSet and a (Pending) Pod from it
    eventually(
        lambda: plane.get("pods", "-n", namespace, "-l", "app.kubernetes.io/instance=simplest")[
            "items"
        ],
        what="a Pod",
    )
    table = plane.kubectl("get", "jaegers", "-n", namespace).stdout
    assert "STATUS" in table and "Running" in table and "STRATEGY" in table


def test_the_issue_example_maps_options_and_reports_what_it_changed(
    plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    spec = {
        "strategy": "allInOne",
        "allInOne": {
            "image": "jaegertracing/all-in-one:latest",
            "options": {
                "log-level": "debug",
                "query": {"base-path": "/jaeger"},
                "collector.num-workers": 50,
            },
        },
        "storage": {"type": "memory", "options": {"memory": {"max-traces": 100000}}},
        "ingress": {"enabled": False},
        "agent": {"strategy": "DaemonSet"},
        "annotations": {"scheduler.alpha.kubernetes.io/critical-pod": ""},
    }
    apply(plane, namespace, "my-jaeger", spec)
    status = running(plane, namespace, "my-jaeger")
    assert status["phase"] == "Running"
    warnings = "\n".join(status["warnings"])
    assert "jaegertracing/all-in-one:latest replaced by" in warnings
    assert "collector.num-workers: unknown option" in warnings
    args = container(plane, namespace, "my-jaeger")["args"]
    assert "--log-level=debug" in args and "--memory.max-traces=100000" in args
    assert "--query.base-path=/jaeger" in args
    assert not any("num-workers" in a for a in args)
    template = plane.get("deployment", "my-jaeger", "-n", namespace)["spec"]["template"]
    assert template["metadata"]["annotations"]["scheduler.alpha.kubernetes.io/critical-pod"] == ""
    assert names(plane, "ingress", namespace, "my-jaeger") == set()
    daemonset = plane.get("daemonset", "my-jaeger-agent-daemonset", "-n", namespace)
    agent = daemonset["spec"]["template"]["spec"]["containers"][0]
    assert (
        f"--agent.collector=dns:///my-jaeger-collector-headless.{namespace}.svc:4317"
        in (agent["args"])
    )
    assert {p["hostPort"] for p in agent["ports"] if "hostPort" in p} >= {6831, 6832, 5778}


def test_production_runs_collector_and_query_on_elasticsearch(
    plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    spec = {
        "strategy": "production",
        "collector": {"replicas": 2, "options": {"collector": {"queue-size": 5000}}},
        "storage": {
            "type": "elasticsearch",
            "secretName": "es-credentials",
            "options": {
                "es": {
                    "server-urls": "http://elasticsearch:9200",
                    "index-prefix": "team-a",
                    "bulk.flush-interval": "200ms",
                    "max-span-age": "24h",
                }
            },
        },
    }
    apply(plane, namespace, "prod", spec)
    assert running(plane, namespace, "prod")["phase"] == "Running"
    assert names(plane, "deployment", namespace, "prod") == {"prod-collector", "prod-query"}
    collector = container(plane, namespace, "prod-collector")
    for flag in (
        "--storage=elasticsearch",
        "--es.server-urls=http://elasticsearch:9200",
        "--es.index-prefix=team-a",
        "--es.bulk.flush-interval=0.2",
        "--es.max-span-age=86400.0",
        "--queue.max-spans=5000",
    ):
        assert flag in collector["args"], flag
    query = container(plane, namespace, "prod-query")
    assert query["args"][0] == "query" and "--storage=elasticsearch" in query["args"]
    assert "--queue.max-spans=5000" not in query["args"]
    env = {e["name"]: e for e in query["env"]}
    assert env["TRACEMESH_ES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "es-credentials"
    replicas = plane.get("deployment", "prod-collector", "-n", namespace)["spec"]["replicas"]
    assert replicas == 2
    selector = plane.get("service", "prod-query", "-n", namespace)["spec"]["selector"]
    assert selector["app.kubernetes.io/component"] == "query"


def test_streaming_puts_kafka_between_collector_and_ingester(
    plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    spec = {
        "strategy": "streaming",
        "collector": {
            "options": {"kafka": {"producer": {"topic": "jaeger-spans", "brokers": "kafka:9092"}}}
        },
        "ingester": {"options": {"kafka": {"consumer": {"group-id": "ingesters"}}}},
        "storage": {"type": "elasticsearch", "options": {"es": {"server-urls": "http://es:9200"}}},
    }
    apply(plane, namespace, "stream", spec)
    assert running(plane, namespace, "stream")["phase"] == "Running"
    assert names(plane, "deployment", namespace, "stream") == {
        "stream-collector",
        "stream-ingester",
        "stream-query",
    }
    collector = container(plane, namespace, "stream-collector")["args"]
    assert "--storage=kafka" in collector and "--kafka.producer.brokers=kafka:9092" in collector
    ingester = container(plane, namespace, "stream-ingester")["args"]
    assert ingester[0] == "ingester" and "--storage=elasticsearch" in ingester
    assert "--kafka.consumer.brokers=kafka:9092" in ingester  # read where the collector writes
    assert "--kafka.consumer.topic=jaeger-spans" in ingester
    assert "--kafka.consumer.group-id=ingesters" in ingester


def test_memory_with_production_falls_back_to_all_in_one_as_jaeger_does(
    plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(plane, namespace, "fallback", {"strategy": "production"})
    status = running(plane, namespace, "fallback")
    assert any("memory storage runs allInOne" in w for w in status["warnings"])
    assert names(plane, "deployment", namespace, "fallback") == {"fallback"}


def test_spec_changes_roll_out_and_unneeded_objects_go(
    plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(plane, namespace, "evolving", {"allInOne": {"options": {"log-level": "info"}}})
    running(plane, namespace, "evolving")
    eventually(lambda: len(names(plane, "replicaset", namespace, "evolving")) == 1)
    apply(plane, namespace, "evolving", {"allInOne": {"options": {"log-level": "debug"}}})
    running(plane, namespace, "evolving", generation=2)
    assert "--log-level=debug" in container(plane, namespace, "evolving")["args"]
    # a new template: the controller manager rolls out a second ReplicaSet
    eventually(
        lambda: len(names(plane, "replicaset", namespace, "evolving")) == 2,
        what="a second ReplicaSet",
    )
    apply(
        plane,
        namespace,
        "evolving",
        {
            "strategy": "production",
            "ingress": {"enabled": False},
            "storage": {"type": "elasticsearch"},
        },
    )
    running(plane, namespace, "evolving", generation=3)
    eventually(
        lambda: (
            names(plane, "deployment", namespace, "evolving")
            == {"evolving-collector", "evolving-query"}
        ),
        what="all-in-one replaced",
    )
    assert names(plane, "ingress", namespace, "evolving") == set()
    assert "evolving-agent" not in names(plane, "service", namespace, "evolving")


def test_deleting_the_resource_deletes_everything(
    plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(plane, namespace, "doomed", {"agent": {"strategy": "DaemonSet"}})
    running(plane, namespace, "doomed")
    assert names(plane, "daemonset", namespace, "doomed")
    plane.kubectl("delete", "jaeger", "doomed", "-n", namespace)
    # the controller manager's garbage collector learns of a new CRD's kind at its discovery
    # resync (every 30 s): soon after the CRD is made, collection can take that long
    for kind in ("deployment", "service", "configmap", "ingress", "daemonset"):
        eventually(
            lambda kind=kind: not names(plane, kind, namespace, "doomed"),
            timeout=90,
            what=f"{kind}s of a deleted resource collected",
        )


def test_a_deleted_object_comes_back(
    plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(plane, namespace, "healing", {})
    running(plane, namespace, "healing")
    plane.kubectl("delete", "deployment", "healing", "-n", namespace)
    eventually(lambda: plane.get("deployment", "healing", "-n", namespace), what="recreated")


@pytest.mark.parametrize(
    ("spec", "refusal"),
    [
        ({"strategy": "sideways"}, "spec.strategy"),
        ({"storage": {"type": "cassandra"}}, "spec.storage.type"),
        ({"collector": {"replicas": -1}}, "spec.collector.replicas"),
        ({"ingress": {"enabled": "sometimes"}}, "spec.ingress.enabled"),
        ({"annotations": {"a": 1}}, "spec.annotations.a"),
    ],
)
def test_the_schema_refuses_nonsense(
    plane: ControlPlane, spec: dict[str, Any], refusal: str
) -> None:
    resource = {
        "apiVersion": "jaegertracing.io/v1",
        "kind": "Jaeger",
        "metadata": {"name": "nonsense", "namespace": "default"},
        "spec": spec,
    }
    done = plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(resource), check=False)
    assert done.returncode != 0
    assert refusal in done.stderr


def test_a_bad_value_is_reported_in_status_and_nothing_else_stops(
    plane: ControlPlane, operator: OperatorProcess, namespace: str
) -> None:
    apply(
        plane,
        namespace,
        "broken",
        {"storage": {"options": {"memory": {"max-traces": "lots"}}, "type": "memory"}},
    )
    status = running(plane, namespace, "broken")
    assert status["phase"] == "Failed"
    reconciled = {c["type"]: c for c in status["conditions"]}["Reconciled"]
    assert reconciled["status"] == "False" and reconciled["reason"] == "InvalidSpec"
    assert "memory.max-traces" in reconciled["message"]
    assert names(plane, "deployment", namespace, "broken") == set()
    apply(plane, namespace, "fine", {})  # the operator goes on with the others
    assert running(plane, namespace, "fine")["phase"] == "Running"
    assert operator.healthy()
    apply(plane, namespace, "broken", {"storage": {"options": {"memory": {"max-traces": 10}}}})
    assert running(plane, namespace, "broken", generation=2)["phase"] == "Running"
    assert 'outcome="invalid"' in operator.metrics()
