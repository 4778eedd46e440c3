"""Where each service's instances are: service -> (labels, inbound sidecar address) entries, read
from a YAML file or `--endpoint` flags, and a round-robin pick among those a subset's labels fit.

The registry stands in for Kubernetes endpoints: an outbound sidecar or the gateway sends a call
for `formatter` subset `v2` (labels `{version: v2}`) to the inbound sidecar of an instance whose
labels include those. The file maps a service to its instances:

    formatter:
      - {address: 127.0.0.1:15011, labels: {version: v1}}
      - address: 127.0.0.1:15012
        labels: {version: v2}
    hello: [127.0.0.1:15001]          # an instance without labels may be a bare address
    ratings:                          # a Service with a cluster IP (transparent capture)
      clusterIP: 10.96.0.30
      ports: [9080]
      instances: [10.252.0.7:9080]

and the flag form is `SERVICE=HOST:PORT` or `SERVICE[k=v,k2=v2]=HOST:PORT`, repeatable.

A captured connection to a cluster IP and one of its ports is a call to that Service (Kubernetes'
Service VIP); with capture, instances are Pod addresses and the app's port, whose own sidecar
captures the call on arrival.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from yaml.nodes import MappingNode, Node

from tracemesh.mesh.yaml_nodes import STR, NodeReader, compose, read_limited

T = TypeVar("T")

Address = tuple[str, int]
_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?")
_FLAG = re.compile(r"(?P<service>[^\[=]+)(?:\[(?P<labels>[^\]]*)\])?=(?P<address>.+)")


@dataclass(frozen=True, slots=True)
class Instance:
    address: Address
    labels: Mapping[str, str] = field(default_factory=dict)

    def fits(self, labels: Mapping[str, str]) -> bool:
        return all(self.labels.get(key) == value for key, value in labels.items())


def parse_address(text: str) -> Address:
    """`host:port` (or `[v6]:port`) -> (host, port); ValueError when not one."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"an address must be host:port, got {text!r}")
    return host, int(port)


class Registry:
    """Instances per service; `pick` rotates through those that fit, so load spreads evenly."""

    def __init__(
        self,
        instances: Mapping[str, Sequence[Instance]] | None = None,
        vips: Mapping[Address, str] | None = None,
    ) -> None:
        self._instances = {name: tuple(items) for name, items in (instances or {}).items()}
        self._vips = dict(vips or {})  # (cluster IP, service port) -> service
        self._turns: dict[tuple[str, frozenset[tuple[str, str]]], itertools.count[int]] = {}
        self._fitting: dict[tuple[str, frozenset[tuple[str, str]]], tuple[Instance, ...]] = {}

    @property
    def services(self) -> frozenset[str]:
        return frozenset(self._instances)

    @property
    def vips(self) -> Mapping[Address, str]:
        return self._vips

    def service_at(self, address: Address) -> str | None:
        """The Service whose cluster IP and port are `address`, or None."""
        return self._vips.get(address)

    def instances(self, service: str) -> tuple[Instance, ...]:
        return self._instances.get(service, ())

    def pick(
        self, service: str, labels: Mapping[str, str], avoid: Address | None = None
    ) -> Address | None:
        """The next instance of `service` carrying `labels`, preferring one other than `avoid`
        (the address a failed try went to); None when no instance fits."""
        key = (service, frozenset(labels.items()))
        fitting = self._fitting.get(key)
        if fitting is None:
            fitting = tuple(i for i in self._instances.get(service, ()) if i.fits(labels))
            self._fitting[key] = fitting
            self._turns[key] = itertools.count()
        if not fitting:
            return None
        turn = next(self._turns[key])
        address = fitting[turn % len(fitting)].address
        if address == avoid and len(fitting) > 1:
            address = fitting[(turn + 1) % len(fitting)].address
        return address

    def merged(self, other: Registry) -> Registry:
        """This registry with `other`'s services added (`other` wins a service both name)."""
        return Registry({**self._instances, **other._instances}, {**self._vips, **other._vips})


def parse_endpoint(text: str) -> tuple[str, Instance]:
    """One `SERVICE[k=v,...]=HOST:PORT` flag value; ValueError naming what is wrong."""
    found = _FLAG.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"an endpoint must be SERVICE=HOST:PORT or SERVICE[k=v]=HOST:PORT, "
                         f"got {text!r}")  # fmt: skip
    service = _service(found["service"].strip())
    labels: dict[str, str] = {}
    for item in filter(None, (found["labels"] or "").split(",")):
        key, sep, value = item.partition("=")
        labels[_label(key.strip())] = _label(value.strip()) if sep else ""
    return service, Instance(parse_address(found["address"]), labels)


def from_endpoints(values: Iterable[str]) -> Registry:
    grouped: dict[str, list[Instance]] = {}
    for text in values:
        service, instance = parse_endpoint(text)
        grouped.setdefault(service, []).append(instance)
    return Registry(grouped)


def load_registry(text: str | bytes, source: str = "registry.yaml") -> Registry:
    """The registry in a YAML document; ConfigError at the line and column of the first
    mistake. An empty document is an empty registry."""
    root = compose(text, source)
    if root is None:
        return Registry()
    reader = _Reader(source)
    grouped: dict[str, list[Instance]] = {}
    vips: dict[Address, str] = {}
    for key, value in reader.entries(root, "the registry").items():
        service = reader.checked(key, _service, reader.string(key, "a service name"))
        if isinstance(value, MappingNode):
            value = reader.service(value, service, vips)
        items = reader.sequence(value, f"the instances of {service!r}")
        grouped[service] = [reader.instance(item) for item in items]
    return Registry(grouped, vips)


def registry_from_mapping(data: Any) -> Registry:
    """The registry as decoded JSON (`{service: [{address, labels}]}`, or for a Service with a
    cluster IP `{service: {clusterIP, ports, instances}}`), as the control plane sends it: no
    YAML parsing for thousands of instances. ValueError names what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("the registry must be an object of services")
    grouped: dict[str, list[Instance]] = {}
    vips: dict[Address, str] = {}
    for service, items in data.items():
        if isinstance(items, dict):
            items = _json_service(str(service), items, vips)
        if not isinstance(items, list):
            raise ValueError(f"the instances of {service!r} must be a list")
        instances = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("address"), str):
                raise ValueError(f"an instance of {service!r} needs an address")
            labels = item.get("labels") or {}
            if not isinstance(labels, dict):
                raise ValueError(f"the labels of an instance of {service!r} must be an object")
            checked = {_label(str(k)): _label(str(v)) for k, v in labels.items()}
            instances.append(Instance(parse_address(item["address"]), checked))
        grouped[_service(str(service))] = instances
    return Registry(grouped, vips)


def _json_service(name: str, data: dict[str, Any], vips: dict[Address, str]) -> Any:
    """A Service object's cluster IP and ports into `vips`; its instances."""
    unknown = set(data) - {"clusterIP", "ports", "instances"}
    if unknown:
        raise ValueError(f"the service {name!r} has unknown fields: {sorted(unknown)}")
    if "clusterIP" in data:
        ip = _ip(str(data["clusterIP"]))
        ports = data.get("ports")
        if not isinstance(ports, list) or not ports:
            raise ValueError(f"{name!r} has a clusterIP but no list of ports")
        for port in ports:
            if type(port) is not int or not 0 < port < 65536:
                raise ValueError(f"{port!r} is not a port of {name!r} (1-65535)")
            if vips.setdefault((ip, port), name) != name:
                raise ValueError(f"{ip}:{port} is already {vips[(ip, port)]!r}'s")
    elif "ports" in data:
        raise ValueError(f"{name!r} has ports but no clusterIP")
    return data.get("instances")


def read_registry(path: str | os.PathLike[str]) -> Registry:
    """`load_registry` on a file, reading no more than the size limit allows."""
    return load_registry(read_limited(path), os.fspath(path))


class _Reader(NodeReader):
    def service(self, node: MappingNode, name: str, vips: dict[Address, str]) -> Node:
        """A Service's cluster IP and ports into `vips`; its instances' node."""
        fields = self.mapping(node, f"the service {name!r}", ("clusterIP", "ports", "instances"),
                              ("instances",))  # fmt: skip
        if "clusterIP" in fields:
            ip = self.checked(fields["clusterIP"], _ip, self.string(fields["clusterIP"],
                                                                    "'clusterIP'"))  # fmt: skip
            if "ports" not in fields:
                self.fail(node, f"{name!r} has a clusterIP but no ports")
            for item in self.sequence(fields["ports"], "'ports'"):
                port = self.integer(item, "a port", 1, 65535)
                if vips.setdefault((ip, port), name) != name:
                    self.fail(item, f"{ip}:{port} is already {vips[(ip, port)]!r}'s")
        elif "ports" in fields:
            self.fail(fields["ports"], f"{name!r} has ports but no clusterIP")
        return fields["instances"]

    def instance(self, node: Node) -> Instance:
        if node.tag == STR:
            return Instance(self.checked(node, parse_address, self.string(node, "an address")))
        fields = self.mapping(node, "an instance", ("address", "labels"), ("address",))
        address = self.checked(
            fields["address"], parse_address, self.string(fields["address"], "'address'")
        )
        labels: dict[str, str] = {}
        if "labels" in fields:
            for key, value in self.string_map(fields["labels"], "'labels'").items():
                labels[self.checked(fields["labels"], _label, key)] = self.checked(
                    fields["labels"], _label, value
                )
        return Instance(address, labels)

    def checked(self, node: Node, check: Callable[[str], T], text: str) -> T:
        try:
            return check(text)
        except ValueError as exc:
            self.fail(node, str(exc))


def _service(name: str) -> str:
    if not _NAME.fullmatch(name) or len(name) > 253:
        raise ValueError(f"{name!r} is not a service name (lower-case DNS name)")
    return name


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def _label(text: str) -> str:
    if text and not _LABEL.fullmatch(text):
        raise ValueError(f"{text!r} is not a label name or value")
    return text
