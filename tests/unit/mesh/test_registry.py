"""The service registry: its YAML and flag forms, their mistakes, and the round-robin pick."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tracemesh.mesh.registry import (
    Instance,
    Registry,
    from_endpoints,
    load_registry,
    parse_address,
    parse_endpoint,
    registry_from_mapping,
)
from tracemesh.mesh.yaml_nodes import ConfigError

YAML = """\
formatter:
  - {address: 127.0.0.1:15011, labels: {version: v1}}
  - address: 127.0.0.1:15012
    labels: {version: v2, zone: b}
  - address: "[::1]:15013"
    labels: {version: v2}
hello: [127.0.0.1:15001]
"""


def test_yaml_form() -> None:
    registry = load_registry(YAML)
    assert registry.services == {"formatter", "hello"}
    assert registry.instances("hello") == (Instance(("127.0.0.1", 15001)),)
    assert registry.instances("formatter")[1] == Instance(
        ("127.0.0.1", 15012), {"version": "v2", "zone": "b"}
    )
    assert registry.instances("formatter")[2].address == ("::1", 15013)
    assert load_registry("").services == frozenset()


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("- a\n", "1:1", "must be a mapping"),
        ("Formatter: [127.0.0.1:1]\n", "1:1", "not a service name"),
        ("f: 127.0.0.1:1\n", "1:4", "must be a list"),
        ("f: [127.0.0.1]\n", "1:5", "host:port"),
        ("f: [127.0.0.1:99999]\n", "1:5", "host:port"),
        ("f:\n  - {adress: 127.0.0.1:1}\n", "2:6", "unknown key 'adress'"),
        ("f:\n  - {address: 1.2.3.4:5, labels: {version: 'a b'}}\n", "2:34", "not a label"),
        ("f: [a:1]\nf: [b:2]\n", "2:1", "duplicate key"),
    ],
)
def test_yaml_mistakes_name_their_place(text: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_registry(text, "reg.yaml")
    assert str(caught.value).startswith(f"reg.yaml:{where}:")


def test_flag_form() -> None:
    assert parse_endpoint("hello=127.0.0.1:15001") == ("hello", Instance(("127.0.0.1", 15001)))
    assert parse_endpoint(" formatter[version=v2,zone=b]=localhost:8080 ") == (
        "formatter",
        Instance(("localhost", 8080), {"version": "v2", "zone": "b"}),
    )
    registry = from_endpoints(["a=h:1", "a[version=v2]=h:2", "b=h:3"])
    assert len(registry.instances("a")) == 2
    for bad in ("hello", "hello=", "hello=h", "Hello=h:1", "a[v=x y]=h:1", "=h:1"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)
    with pytest.raises(ValueError):
        parse_address(":80")


def test_pick_rotates_among_instances_the_labels_fit() -> None:
    registry = load_registry(YAML)
    v2 = Counter(registry.pick("formatter", {"version": "v2"}) for _ in range(10))
    assert v2 == {("127.0.0.1", 15012): 5, ("::1", 15013): 5}
    assert Counter(registry.pick("formatter", {}) for _ in range(9)) == {
        ("127.0.0.1", 15011): 3, ("127.0.0.1", 15012): 3, ("::1", 15013): 3,
    }  # fmt: skip
    assert registry.pick("formatter", {"version": "v3"}) is None
    assert registry.pick("nobody", {}) is None


def test_pick_avoids_the_address_that_failed_when_it_can() -> None:
    registry = load_registry(YAML)
    for _ in range(6):
        assert registry.pick("formatter", {"version": "v2"}, ("::1", 15013)) == (
            "127.0.0.1",
            15012,
        )
    assert registry.pick("hello", {}, ("127.0.0.1", 15001)) == ("127.0.0.1", 15001)  # the only


def test_merged_registry_takes_the_other_side_for_shared_services() -> None:
    merged = load_registry(YAML).merged(Registry({"hello": [Instance(("h", 2))]}))
    assert merged.instances("hello") == (Instance(("h", 2)),)
    assert len(merged.instances("formatter")) == 3


def test_a_service_with_a_cluster_ip_is_found_by_address() -> None:
    registry = load_registry(
        "ratings:\n"
        "  clusterIP: 10.96.0.30\n"
        "  ports: [9080, 9443]\n"
        "  instances: [10.252.0.7:9080, {address: '10.252.0.8:9080', labels: {version: v2}}]\n"
        "hello: [127.0.0.1:15001]\n"
    )
    assert registry.service_at(("10.96.0.30", 9080)) == "ratings"
    assert registry.service_at(("10.96.0.30", 9443)) == "ratings"
    assert registry.service_at(("10.96.0.30", 80)) is None
    assert registry.pick("ratings", {"version": "v2"}) == ("10.252.0.8", 9080)
    merged = registry.merged(load_registry("x: {clusterIP: 10.96.0.31, ports: [1], instances: []}"))
    assert merged.vips == {("10.96.0.30", 9080): "ratings", ("10.96.0.30", 9443): "ratings",
                           ("10.96.0.31", 1): "x"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: {clusterIP: nope, ports: [1], instances: []}", "1:16: 'nope' is not an IP address"),
        ("a: {clusterIP: 10.0.0.1, instances: []}", "has a clusterIP but no ports"),
        ("a: {ports: [1], instances: []}", "has ports but no clusterIP"),
        ("a: {clusterIP: 10.0.0.1, ports: [70000], instances: []}", "a port must be from"),
        ("a: {clusterIP: 10.0.0.1, ports: [1]}", "instances"),
        ("a: {clusterIP: 10.0.0.1, ports: [1], instances: []}\n"
         "b: {clusterIP: 10.0.0.1, ports: [1], instances: []}", "10.0.0.1:1 is already 'a''s"),
    ],
)  # fmt: skip
def test_bad_cluster_ips_are_reported_where_they_are(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_registry(text)


def test_the_control_planes_json_carries_cluster_ips_too() -> None:
    registry = registry_from_mapping({
        "ratings": {"clusterIP": "10.96.0.30", "ports": [9080],
                    "instances": [{"address": "10.252.0.7:9080", "labels": {"version": "v1"}}]},
        "hello": [{"address": "10.252.0.9:8080"}],
    })  # fmt: skip
    assert registry.service_at(("10.96.0.30", 9080)) == "ratings"
    assert registry.pick("ratings", {}) == ("10.252.0.7", 9080)
    assert registry.services == {"ratings", "hello"}
    for bad, message in [
        ({"a": {"clusterIP": "x", "ports": [1], "instances": []}}, "not an IP address"),
        ({"a": {"clusterIP": "10.0.0.1", "instances": []}}, "no list of ports"),
        ({"a": {"clusterIP": "10.0.0.1", "ports": ["80"], "instances": []}}, "is not a port"),
        ({"a": {"ports": [1], "instances": []}}, "has ports but no clusterIP"),
        ({"a": {"clusterIP": "10.0.0.1", "ports": [1]}}, "must be a list"),
        ({"a": {"instances": [], "vip": 1}}, "unknown fields: ['vip']"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            registry_from_mapping(bad)
