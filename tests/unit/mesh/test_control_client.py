"""The proxy's control plane client keeps its last good tables."""

from __future__ import annotations

import orjson
import pytest

from tracemesh.mesh.control_client import ControlClient
from tracemesh.mesh.mesh_config import MeshConfig
from tracemesh.mesh.registry import Registry
from tracemesh.mesh.yaml_nodes import ConfigError

ROUTES = "routes:\n  formatter:\n    http:\n      - route: [{service: formatter}]\n"


def test_newer_versions_apply_and_bad_ones_change_nothing() -> None:
    applied: list[tuple[MeshConfig, Registry]] = []
    client = ControlClient("http://control:15010", "hello", lambda m, r: applied.append((m, r)))
    good = {"version": 3, "mesh": ROUTES, "registry": {"formatter": [{"address": "10.0.0.1:8080"}]}}
    assert client.take(orjson.dumps(good)) is True
    assert client.version == 3 and "formatter" in applied[0][0].routes
    assert client.take(orjson.dumps({**good, "version": 2})) is False  # older: ignored
    broken = {"version": 4, "mesh": "routes: [", "registry": {}}
    with pytest.raises(ConfigError):
        client.take(orjson.dumps(broken))
    assert client.version == 3 and len(applied) == 1
    with pytest.raises(orjson.JSONDecodeError):
        client.take(b"<html>")


def test_a_route_change_without_the_registry_reuses_the_one_held() -> None:
    applied: list[tuple[MeshConfig, Registry]] = []
    client = ControlClient("http://control:15010", "hello", lambda m, r: applied.append((m, r)))
    first = {
        "version": 1,
        "mesh": ROUTES,
        "registry_hash": "abc",
        "registry": {"formatter": [{"address": "10.0.0.1:8080"}]},
    }
    client.take(orjson.dumps(first))
    assert client.take(orjson.dumps({"version": 2, "mesh": ROUTES, "registry_hash": "abc"}))
    assert applied[1][1] is applied[0][1]
    with pytest.raises(ValueError, match="no registry"):
        client.take(orjson.dumps({"version": 3, "mesh": ROUTES, "registry_hash": "zzz"}))
