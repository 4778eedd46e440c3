"""Reading a Jaeger resource the way Jaeger's operator does."""

from __future__ import annotations

from typing import Any

import pytest

from tracemesh.kube.jaeger_resource import read

IMAGE = "tracemesh/tracemesh:test"


def resource(spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "j", "namespace": "ns", "uid": "u-1", "generation": 3},
        "spec": spec,
    }


def test_empty_spec_is_all_in_one_on_memory() -> None:
    inst = read(resource({}), IMAGE)
    assert (inst.strategy, inst.storage_type, inst.agent_strategy) == (
        "allInOne",
        "memory",
        "Sidecar",
    )
    assert inst.errors == [] and inst.warnings == []
    assert inst.components["allInOne"].image == IMAGE
    assert inst.sampling["default_strategy"]["type"] == "probabilistic"


@pytest.mark.parametrize("word", ["allinone", "all-in-one", "AllInOne", ""])
def test_all_in_one_spellings(word: str) -> None:
    inst = read(resource({"strategy": word}), IMAGE)
    assert inst.strategy == "allInOne" and inst.warnings == []


def test_memory_cannot_be_shared_so_production_falls_back() -> None:
    inst = read(resource({"strategy": "production"}), IMAGE)
    assert inst.strategy == "allInOne"
    assert "memory storage runs allInOne" in inst.warnings[0]


def test_badger_is_the_disk_store_and_only_all_in_one() -> None:
    inst = read(resource({"storage": {"type": "badger"}}), IMAGE)
    assert inst.storage_type == "disk" and not inst.errors
    inst = read(resource({"strategy": "production", "storage": {"type": "badger"}}), IMAGE)
    assert any("disk runs only with strategy allInOne" in e for e in inst.errors)


def test_streaming_needs_elasticsearch() -> None:
    inst = read(resource({"strategy": "streaming", "storage": {"type": "kafka"}}), IMAGE)
    assert any("streaming needs" in e for e in inst.errors)


def test_jaeger_images_are_replaced_and_others_kept() -> None:
    inst = read(
        resource(
            {
                "collector": {"image": "jaegertracing/jaeger-collector:1.60"},
                "query": {"image": "registry.example/tracemesh:dev"},
            }
        ),
        IMAGE,
    )
    assert inst.components["collector"].image == IMAGE
    assert inst.components["query"].image == "registry.example/tracemesh:dev"
    assert any("jaeger-collector:1.60 replaced" in w for w in inst.warnings)


@pytest.mark.parametrize(
    "spec",
    [
        {"storage": {"type": "cassandra"}},
        {"collector": {"replicas": -2}},
        {"collector": {"replicas": True}},
        {"query": "yes"},
        {"annotations": ["a"]},
        {"sampling": {"options": "always"}},
        "not a map",
    ],
)
def test_nonsense_is_an_error_never_an_exception(spec: Any) -> None:
    assert read(resource(spec), IMAGE).errors
