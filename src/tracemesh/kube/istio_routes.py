"""Istio's routing resources and the cluster's Services, EndpointSlices and Pods, turned into the
tables tracemesh's proxies use: a mesh document (routes, subsets, gateway routes, tracing) in the
mesh file's format and a registry document (service -> instances with their Pod's labels), per
namespace.

Pure. Each VirtualService is translated alone and checked with the mesh file's own reader: one it
cannot apply whole is left out and reported with the field at fault, never applied half.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracemesh.kube.jaeger_resource import Json
from tracemesh.mesh.config_file import load_mesh
from tracemesh.mesh.mesh_config import GATEWAY_PORT
from tracemesh.mesh.yaml_nodes import ConfigError

MESH_GATEWAY = "mesh"  # Istio's name for "the sidecars" in a VirtualService's gateways
_MATCH_KEYS = {"uri", "method", "headers"}
BAGGAGE_HEADERS = ("baggage-", "uberctx-")
_HTTP_KEYS = {"name", "match", "route", "timeout", "retries", "fault"}


@dataclass(frozen=True)
class Problem:
    """A resource that could not be applied: which, the field, and why."""

    kind: str
    namespace: str
    name: str
    message: str


@dataclass
class Tables:
    mesh: Json = field(default_factory=dict)
    registry: Json = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


class _Refused(ValueError):
    """A field tracemesh cannot apply; the message names it."""


def short_name(host: str, namespace: str) -> str:
    """`formatter`, `formatter.ns`, `formatter.ns.svc[.cluster.local]` -> `formatter` (in ns)."""
    parts = host.lower().split(".")
    if len(parts) > 1 and parts[1] != namespace:
        raise _Refused(f"host {host!r} is in another namespace")
    return parts[0]


def _string_match(value: Any, where: str) -> Json:
    if (
        not isinstance(value, dict)
        or len(value) != 1
        or next(iter(value)) not in ("exact", "prefix", "regex")
    ):
        raise _Refused(f"{where}: one of exact, prefix, regex is expected")
    return dict(value)


def _match(match: Any, where: str) -> Json:
    if not isinstance(match, dict):
        raise _Refused(f"{where}: must be an object")
    extra = set(match) - _MATCH_KEYS
    if extra:
        raise _Refused(f"{where}.{sorted(extra)[0]}: not supported by tracemesh")
    out: Json = {}
    for key in ("uri", "method"):
        if key in match:
            out[key] = _string_match(match[key], f"{where}.{key}")
    if "headers" in match:
        headers = match["headers"]
        if not isinstance(headers, dict):
            raise _Refused(f"{where}.headers: must be an object")
        for name, value in headers.items():
            checked = _string_match(value, f"{where}.headers.{name}")
            lower = str(name).lower()
            # `baggage-<key>` and `uberctx-<key>` are how B3 and Jaeger clients carry baggage:
            # matched as baggage, the rule holds whichever format the request's baggage uses
            prefix = next((p for p in BAGGAGE_HEADERS if lower.startswith(p)), "")
            if prefix and len(lower) > len(prefix):
                out.setdefault("baggage", {})[lower[len(prefix) :]] = checked
            else:
                out.setdefault("headers", {})[name] = checked
    return out


def _percentage(value: Any) -> Any:
    return value.get("value", 100) if isinstance(value, dict) else value


def _http(rule: Any, where: str, namespace: str) -> Json:
    if not isinstance(rule, dict):
        raise _Refused(f"{where}: must be an object")
    extra = set(rule) - _HTTP_KEYS
    if extra:
        raise _Refused(f"{where}.{sorted(extra)[0]}: not supported by tracemesh")
    out: Json = {}
    if "name" in rule:
        out["name"] = rule["name"]
    if rule.get("match"):
        out["match"] = [_match(m, f"{where}.match[{i}]") for i, m in enumerate(rule["match"])]
    route = rule.get("route")
    if not isinstance(route, list) or not route:
        raise _Refused(f"{where}.route: at least one destination is needed")
    destinations = []
    for i, item in enumerate(route):
        dest = item.get("destination") if isinstance(item, dict) else None
        if not isinstance(dest, dict) or not isinstance(dest.get("host"), str):
            raise _Refused(f"{where}.route[{i}].destination.host: missing")
        entry: Json = {"service": short_name(dest["host"], namespace)}
        if dest.get("subset"):
            entry["subset"] = dest["subset"]
        if "weight" in item:
            entry["weight"] = item["weight"]
        destinations.append(entry)
    out["route"] = destinations
    for key in ("timeout", "retries"):
        if key in rule:
            out[key] = rule[key]
    if "fault" in rule and isinstance(rule["fault"], dict):
        fault: Json = {}
        for kind in ("delay", "abort"):
            part = rule["fault"].get(kind)
            if isinstance(part, dict):
                fault[kind] = {
                    k: _percentage(v) if k == "percentage" else v for k, v in part.items()
                }
        out["fault"] = fault
    return out


def _subsets(rules: Iterable[Json], namespace: str) -> dict[str, dict[str, Json]]:
    """service -> subset name -> {labels: ...}, from DestinationRules."""
    out: dict[str, dict[str, Json]] = {}
    for rule in rules:
        spec = rule.get("spec") or {}
        try:
            service = short_name(str(spec.get("host", "")), namespace)
        except _Refused:
            continue
        for subset in spec.get("subsets") or []:
            if isinstance(subset, dict) and subset.get("name"):
                out.setdefault(service, {})[str(subset["name"])] = {
                    "labels": dict(subset.get("labels") or {})
                }
    return out


def _gateway_routes(spec: Json, namespace: str, where: str) -> list[Json]:
    hosts = [h for h in spec.get("hosts") or ["*"] if isinstance(h, str)]
    out = []
    for i, rule in enumerate(spec.get("http") or []):
        translated = _http(rule, f"{where}.http[{i}]", namespace)
        (service,) = {d["service"] for d in translated["route"]} or {""}
        prefixes = [
            m.get("uri", {}).get("prefix") or m.get("uri", {}).get("exact") or "/"
            for m in translated.get("match", [{}])
        ]
        for prefix in prefixes:
            out.append(
                {
                    "prefix": prefix,
                    "service": service,
                    "hosts": ["*" if h == "*" else h.lower() for h in hosts],
                }
            )
    return out


def _bound_to(spec: Json, gateway_names: set[str], namespace: str) -> tuple[bool, bool]:
    """(applies to the sidecars, applies to one of our gateways)."""
    gateways = [str(g) for g in spec.get("gateways") or [MESH_GATEWAY]]
    names = {g.split("/")[-1] for g in gateways if g.split("/")[0] in (namespace, g)}
    return MESH_GATEWAY in gateways, bool(names & gateway_names)


def tables(
    namespace: str,
    endpoint_slices: Iterable[Json],
    pod_labels: Mapping[str, Mapping[str, str]],
    virtual_services: Iterable[Json],
    destination_rules: Iterable[Json],
    gateways: Iterable[Json],
    tracing: Json,
    services: Iterable[Json] = (),
) -> Tables:
    """The tables of one namespace. `pod_labels` maps Pod names to their labels."""
    out = Tables()
    subsets = _subsets(destination_rules, namespace)
    gateway_names = {str((g.get("metadata") or {}).get("name")) for g in gateways}
    routes: dict[str, Json] = {svc: {"subsets": s} for svc, s in subsets.items()}
    gateway_routes: list[Json] = []
    for vs in sorted(virtual_services, key=lambda v: str(v["metadata"].get("name"))):
        name = str(vs["metadata"].get("name"))
        spec = vs.get("spec") or {}
        try:
            sidecars, edge = _bound_to(spec, gateway_names, namespace)
            mine: dict[str, Json] = {}
            if sidecars:
                http = [
                    _http(r, f"spec.http[{i}]", namespace)
                    for i, r in enumerate(spec.get("http") or [])
                ]
                for host in spec.get("hosts") or []:
                    if host == "*":
                        continue
                    service = short_name(str(host), namespace)
                    mine[service] = {"subsets": subsets.get(service, {}), "http": http}
            edge_routes = _gateway_routes(spec, namespace, "spec") if edge else []
            _check({**routes, **mine}, edge_routes)
        except (_Refused, ConfigError) as exc:
            out.problems.append(Problem("VirtualService", namespace, name, str(exc)))
            continue
        routes.update(mine)
        gateway_routes += edge_routes
    mesh: Json = {"routes": routes, "tracing": tracing}
    if gateway_routes:
        mesh["gateway"] = {"port": _gateway_port(gateways), "routes": gateway_routes}
    out.mesh = mesh
    out.registry = _with_cluster_ips(_registry(endpoint_slices, pod_labels), services)
    return out


def _with_cluster_ips(registry: Json, services: Iterable[Json]) -> Json:
    """A Service with a cluster IP becomes `{clusterIP, ports, instances}`: a captured call to
    that address is routed as a call to the Service."""
    out = dict(registry)
    for service in services:
        name = str((service.get("metadata") or {}).get("name", ""))
        spec = service.get("spec") or {}
        ip = spec.get("clusterIP")
        ports = [
            p["port"]
            for p in spec.get("ports") or []
            if isinstance(p.get("port"), int) and p.get("protocol", "TCP") == "TCP"
        ]
        if not name or not ip or ip == "None" or not ports:
            continue
        out[name] = {"clusterIP": ip, "ports": ports, "instances": registry.get(name, [])}
    return out


def _check(routes: Json, gateway_routes: list[Json]) -> None:
    """The mesh file's reader is the judge: what it refuses is not applied."""
    import yaml

    document: Json = {"routes": routes}
    if gateway_routes:
        document["gateway"] = {"routes": gateway_routes}
    load_mesh(yaml.safe_dump(document), "VirtualService")


def _gateway_port(gateways: Iterable[Json]) -> int:
    """Istio's ingress gateway listens on the server's port, +8000 below 1024 (non-root)."""
    for gateway in gateways:
        for server in (gateway.get("spec") or {}).get("servers") or []:
            number = (server.get("port") or {}).get("number")
            if isinstance(number, int) and 0 < number < 65536:
                return number + 8000 if number < 1024 else number
    return GATEWAY_PORT


def _registry(slices: Iterable[Json], pod_labels: Mapping[str, Mapping[str, str]]) -> Json:
    out: dict[str, list[Json]] = {}
    for piece in slices:
        service = (piece.get("metadata", {}).get("labels") or {}).get("kubernetes.io/service-name")
        ports = [p for p in piece.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        if not service or not ports or not isinstance(ports[0].get("port"), int):
            continue
        port = ports[0]["port"]
        for endpoint in piece.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            target = endpoint.get("targetRef") or {}
            labels = dict(pod_labels.get(str(target.get("name")), {}))
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                out.setdefault(service, []).append({"address": f"{host}:{port}", "labels": labels})
    return out
