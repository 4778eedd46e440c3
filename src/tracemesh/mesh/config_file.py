"""The mesh file (`services`, `routes`, `gateway`, `tracing`) read from YAML into a `MeshConfig`,
every mistake reported at its line and column, and written back to YAML.

Keys are Istio's where Istio has one (`perTryTimeout`, `retryOn`, `fixedDelay`, `httpStatus`).
Unknown keys are errors with a did-you-mean, never ignored: a misspelt `retries` silently
dropped is a retry policy nobody notices is missing. Services named in routes and the gateway
must exist when the file lists `services`; subsets must be defined under the routed service.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from yaml.nodes import Node

from tracemesh.mesh.mesh_config import (
    GATEWAY_PORT,
    PROPAGATION_FORMATS,
    Gateway,
    MeshConfig,
    Tracing,
    Workload,
)
from tracemesh.mesh.routes import (
    Abort,
    Delay,
    Destination,
    Fault,
    GatewayRoute,
    RequestMatch,
    Retries,
    RetryOn,
    Route,
    ServiceRoutes,
)
from tracemesh.mesh.string_match import MatchKind, StringMatch
from tracemesh.mesh.yaml_nodes import (
    INT,
    STR,
    ConfigError,
    NodeReader,
    compose,
    describe,
    did_you_mean,
    read_limited,
)

__all__ = [
    "ConfigError",
    "dump_mesh",
    "format_duration",
    "load_mesh",
    "parse_duration",
    "read_mesh_file",
]

MAX_RETRIES = 10  # each retry multiplies the load on a struggling service
MAX_REPLICAS = 64
MAX_NAME = 253
_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")  # a DNS name, as Kubernetes services
_HEADER = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # an RFC 9110 token, lower-cased
_HOST = re.compile(r"\*|(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
_ROUTE_NAME = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,255}")  # it travels in a header
_DURATION = re.compile(r"(\d{1,12}(?:\.\d{1,18})?)(ms|s|m|h)")
MAX_DURATION = 366 * 86400.0  # a year; longer is a typo, and keeps the text short
_UNIT = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}
_RETRY_ON = [c.value for c in RetryOn]
_Subsets = Mapping[str, Mapping[str, Mapping[str, str]]]  # service -> subset -> labels


def parse_duration(text: str) -> float:
    """Seconds in `1.5s`, `250ms`, `2m`, `1h`; ValueError unless positive with a unit."""
    found = _DURATION.fullmatch(text.strip())
    if not found:
        raise ValueError(f"must be a duration like 1.5s or 250ms, got {text!r}")
    try:
        seconds = Decimal(found[1]) * _UNIT[found[2]]
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"must be a duration like 1.5s or 250ms, got {text!r}") from None
    if not 0 < seconds <= MAX_DURATION:
        raise ValueError(f"must be more than 0 and at most 8784h, got {text!r}")
    return float(seconds)


def format_duration(seconds: float) -> str:
    """The shortest text `parse_duration` reads back as exactly `seconds`."""
    millis = round(seconds * 1000)
    if seconds < 1 and millis / 1000 == seconds:
        return f"{millis}ms"
    return f"{Decimal(repr(seconds)).normalize():f}s"  # never an exponent


def load_mesh(text: str | bytes, source: str = "mesh.yaml") -> MeshConfig:
    """The mesh in `text`; ConfigError naming `source`, line and column at the first mistake.
    An empty file is an empty mesh."""
    root = compose(text, source)
    if root is None:
        return MeshConfig()
    return _Loader(source).mesh(root)


def read_mesh_file(path: str | os.PathLike[str]) -> MeshConfig:
    """`load_mesh` on a file, reading no more than the size limit allows."""
    return load_mesh(read_limited(path), os.fspath(path))


class _Loader(NodeReader):
    def mesh(self, root: Node) -> MeshConfig:
        top = self.mapping(root, "the file", ("services", "routes", "gateway", "tracing"))
        services = self.services(top["services"]) if "services" in top else ()
        known = frozenset(w.name for w in services)
        routes = self.routes(top["routes"], known) if "routes" in top else {}
        gateway = self.gateway(top["gateway"], known) if "gateway" in top else None
        tracing = self.tracing(top["tracing"]) if "tracing" in top else Tracing()
        return MeshConfig(services, routes, gateway, tracing)

    # --- services: what the local runner starts

    def services(self, node: Node) -> tuple[Workload, ...]:
        workloads: list[Workload] = []
        first: dict[str, tuple[Workload, Node]] = {}  # service name -> its first workload
        versions: set[tuple[str, frozenset[tuple[str, str]]]] = set()
        for item in self.sequence(node, "'services'"):
            keys = ("name", "command", "port", "labels", "replicas", "env")
            fields = self.mapping(item, "a service", keys, ("name", "command", "port"))
            workload = Workload(
                name=self.name(fields["name"], "'name'"),
                command=self.command(fields["command"]),
                port=self.integer(fields["port"], "'port'", 1, 65535),
                labels=self.labels(fields["labels"]) if "labels" in fields else {},
                replicas=self.optional_int(fields, "replicas", 0, MAX_REPLICAS, 1),
                env=self.string_map(fields["env"], "'env'") if "env" in fields else {},
            )
            version = (workload.name, frozenset(workload.labels.items()))
            if version in versions:
                self.fail(
                    fields["name"],
                    f"service {workload.name!r} is listed twice with the same labels;"
                    " give each version its own labels",
                )
            versions.add(version)
            if workload.name in first and first[workload.name][0].port != workload.port:
                line = first[workload.name][1].start_mark.line + 1
                self.fail(
                    fields["port"],
                    f"service {workload.name!r} has port {first[workload.name][0].port}"
                    f" at line {line}; every version of a service shares its port",
                )
            first.setdefault(workload.name, (workload, fields["port"]))
            workloads.append(workload)
        return tuple(workloads)

    def command(self, node: Node) -> tuple[str, ...]:
        if node.tag == STR:
            try:
                words = shlex.split(self.string(node, "'command'"))
            except ValueError as exc:
                self.fail(node, f"'command' cannot be split into words: {exc}")
        else:
            items = self.sequence(node, "'command'")
            words = [self.string(item, "a 'command' word") for item in items]
        if not words:
            self.fail(node, "'command' is empty")
        return tuple(words)

    def labels(self, node: Node) -> dict[str, str]:
        labels = self.string_map(node, "'labels'")
        if not labels:
            self.fail(node, "'labels' is empty")
        return labels

    # --- routes: per destination service, subsets and ordered HTTP routes

    def routes(self, node: Node, known: frozenset[str]) -> dict[str, ServiceRoutes]:
        blocks: dict[str, dict[str, Node]] = {}
        for key, value in self.entries(node, "'routes'").items():
            name = self.service_ref(key, "a routed service", known)
            blocks[name] = self.mapping(value, f"the routes of {name!r}", ("subsets", "http"))
        # Every service's subsets first: a route may send traffic to another service's subset.
        subsets = {
            name: self.subsets(block["subsets"]) if "subsets" in block else {}
            for name, block in blocks.items()
        }
        result = {}
        for name, block in blocks.items():
            items = self.sequence(block["http"], "'http'") if "http" in block else []
            http = tuple(self.route(item, known, subsets) for item in items)
            result[name] = ServiceRoutes(subsets[name], http)
        return result

    def subsets(self, node: Node) -> dict[str, dict[str, str]]:
        result: dict[str, dict[str, str]] = {}
        for key, value in self.entries(node, "'subsets'").items():
            name = self.name(key, "a subset name")
            fields = self.mapping(value, f"subset {name!r}", ("labels",), ("labels",))
            result[name] = self.labels(fields["labels"])
        return result

    def route(self, node: Node, known: frozenset[str], subsets: _Subsets) -> Route:
        keys = ("name", "match", "route", "timeout", "retries", "fault")
        fields = self.mapping(node, "a route", keys, ("route",))
        if "fault" in fields and ("retries" in fields or "timeout" in fields):
            self.fail(
                fields["fault"],
                "a route with a fault gets no timeout or retries in Istio;"
                " remove 'timeout' and 'retries', or the fault",
            )
        match: tuple[RequestMatch, ...] = ()
        if "match" in fields:
            match = tuple(self.request_match(m) for m in self.sequence(fields["match"], "'match'"))
            if not match:
                self.fail(fields["match"], "'match' is empty; leave it out to match everything")
        return Route(
            route=self.destinations(fields["route"], known, subsets),
            name=self.route_name(fields["name"]) if "name" in fields else None,
            match=match,
            timeout=self.duration(fields["timeout"], "'timeout'") if "timeout" in fields else None,
            retries=self.retries(fields["retries"]) if "retries" in fields else None,
            fault=self.fault(fields["fault"]) if "fault" in fields else None,
        )

    def route_name(self, node: Node, what: str = "'name'") -> str:
        name = self.string(node, what)
        if not _ROUTE_NAME.fullmatch(name):
            self.fail(node, f"{what} must be 1 to 256 printable ASCII characters, got {name!r}")
        return name

    def request_match(self, node: Node) -> RequestMatch:
        fields = self.mapping(node, "a match", ("uri", "method", "headers", "baggage"))
        headers: dict[str, StringMatch] = {}
        for key, value in self.entries(fields.get("headers", _EMPTY), "'headers'").items():
            name = key.value.lower()
            if not _HEADER.fullmatch(name):
                self.fail(key, f"{key.value!r} is not a header name")
            if name in headers:
                self.fail(key, f"header {key.value!r} is matched twice")
            headers[name] = self.string_match(value, f"header {key.value!r}", present=True)
        baggage = {
            key.value: self.string_match(value, f"baggage {key.value!r}", present=True)
            for key, value in self.entries(fields.get("baggage", _EMPTY), "'baggage'").items()
        }
        return RequestMatch(
            uri=self.string_match(fields["uri"], "'uri'") if "uri" in fields else None,
            method=self.string_match(fields["method"], "'method'") if "method" in fields else None,
            headers=headers,
            baggage=baggage,
        )

    def string_match(self, node: Node, what: str, present: bool = False) -> StringMatch:
        fields = self.mapping(node, what, ("exact", "prefix", "regex"))
        if len(fields) > 1:
            self.fail(node, f"{what} has {' and '.join(fields)}; give one")
        if not fields:
            if present:
                return StringMatch(MatchKind.PRESENT)
            self.fail(node, f"{what} needs one of exact, prefix, regex")
        (kind, value_node), *_ = fields.items()
        value = self.string(value_node, f"{what} {kind}")
        try:
            return StringMatch(MatchKind(kind), value)
        except ValueError as exc:
            self.fail(value_node, str(exc))

    def destinations(
        self, node: Node, known: frozenset[str], subsets: _Subsets
    ) -> tuple[Destination, ...]:
        items = self.sequence(node, "'route'")
        if not items:
            self.fail(node, "'route' needs at least one destination")
        result = []
        for item in items:
            fields = self.mapping(
                item, "a destination", ("service", "subset", "weight"), ("service",)
            )
            service = self.service_ref(fields["service"], "'service'", known)
            subset = None
            if "subset" in fields:
                subset = self.string(fields["subset"], "'subset'")
                defined = subsets.get(service, {})
                if subset not in defined:
                    hint = did_you_mean(subset, defined) if defined else "; it defines no subsets"
                    message = f"unknown subset {subset!r} of service {service!r}{hint}"
                    self.fail(fields["subset"], message)
            weight = self.optional_int(fields, "weight", 0, 100, 100 if len(items) == 1 else 0)
            if len(items) == 1 and weight != 100:
                self.fail(fields["weight"], "a single destination's weight must be 100 or left out")
            result.append(Destination(service, subset, weight))
        total = sum(d.weight for d in result)
        if total != 100:
            self.fail(node, f"route weights sum to {total}, must be 100")
        return tuple(result)

    def retries(self, node: Node) -> Retries:
        keys = ("attempts", "perTryTimeout", "retryOn")
        fields = self.mapping(node, "'retries'", keys, ("attempts",))
        attempts = self.integer(fields["attempts"], "'attempts'", 0, MAX_RETRIES)
        per_try = None
        if "perTryTimeout" in fields:
            per_try = self.duration(fields["perTryTimeout"], "'perTryTimeout'")
        if "retryOn" not in fields:
            return Retries(attempts, per_try)  # Istio keeps its default conditions
        conditions: set[RetryOn] = set()
        codes: set[int] = set()
        for item, where in self.retry_on_items(fields["retryOn"]):
            if item.isascii() and item.isdigit() and 100 <= int(item) <= 599:
                codes.add(int(item))  # Istio: a number in retryOn is a retriable status
            elif item in _RETRY_ON:
                conditions.add(RetryOn(item))
            else:
                choices = [*_RETRY_ON, "a status code"]
                self.fail(where, f"unsupported retryOn {item!r}{did_you_mean(item, choices)}")
        if not conditions and not codes:
            self.fail(fields["retryOn"], "'retryOn' names no condition")
        return Retries(attempts, per_try, frozenset(conditions), frozenset(codes))

    def retry_on_items(self, node: Node) -> list[tuple[str, Node]]:
        """Istio's comma-separated string, or a list of names and status codes."""
        if node.tag == STR:
            text = self.string(node, "'retryOn'")
            return [(part.strip(), node) for part in text.split(",") if part.strip()]
        items = []
        for item in self.sequence(node, "'retryOn'"):
            if item.tag == INT:
                items.append((str(self.integer(item, "a retryOn status", 100, 599)), item))
            else:
                items.append((self.string(item, "a retryOn condition"), item))
        return items

    def fault(self, node: Node) -> Fault:
        fields = self.mapping(node, "'fault'", ("delay", "abort"))
        if not fields:
            self.fail(node, "'fault' needs a delay, an abort, or both")
        delay = abort = None
        if "delay" in fields:
            keys = ("fixedDelay", "percentage")
            delay_fields = self.mapping(fields["delay"], "'delay'", keys, ("fixedDelay",))
            delay = Delay(
                self.duration(delay_fields["fixedDelay"], "'fixedDelay'"),
                self.percentage(delay_fields),
            )
        if "abort" in fields:
            keys = ("httpStatus", "percentage")
            abort_fields = self.mapping(fields["abort"], "'abort'", keys, ("httpStatus",))
            abort = Abort(
                self.integer(abort_fields["httpStatus"], "'httpStatus'", 200, 599),
                self.percentage(abort_fields),
            )
        return Fault(delay, abort)

    def percentage(self, fields: Mapping[str, Node]) -> float:
        if "percentage" not in fields:
            return 100.0
        return self.number(fields["percentage"], "'percentage'", 0, 100)

    # --- gateway and tracing

    def gateway(self, node: Node, known: frozenset[str]) -> Gateway:
        fields = self.mapping(node, "'gateway'", ("port", "routes", "upstream_span"))
        routes = []
        for item in self.sequence(fields.get("routes", _EMPTY_LIST), "'routes'"):
            keys = ("hosts", "prefix", "service", "rewrite", "name")
            route = self.mapping(item, "a gateway route", keys, ("service",))
            hosts = tuple(
                self.host(h) for h in self.sequence(route.get("hosts", _ANY_HOST), "'hosts'")
            )
            if not hosts:
                self.fail(route["hosts"], "'hosts' is empty; leave it out to match any host")
            routes.append(
                GatewayRoute(
                    service=self.service_ref(route["service"], "'service'", known),
                    prefix=self.path(route["prefix"], "'prefix'") if "prefix" in route else "/",
                    hosts=hosts,
                    rewrite=self.path(route["rewrite"], "'rewrite'")
                    if "rewrite" in route
                    else None,
                    name=self.route_name(route["name"]) if "name" in route else None,
                )
            )
        upstream_span = (
            self.boolean(fields["upstream_span"], "'upstream_span'")
            if "upstream_span" in fields
            else True
        )
        port = self.optional_int(fields, "port", 1, 65535, GATEWAY_PORT)
        return Gateway(port, tuple(routes), upstream_span)

    def host(self, node: Node) -> str:
        host = self.string(node, "a host").lower()
        if not _HOST.fullmatch(host):
            self.fail(node, f"a host must be a name, '*.' and a name, or '*', got {host!r}")
        return host

    def path(self, node: Node, what: str) -> str:
        path = self.string(node, what)
        if not path.startswith("/"):
            self.fail(node, f"{what} must start with '/', got {path!r}")
        return path

    def tracing(self, node: Node) -> Tracing:
        fields = self.mapping(node, "'tracing'", ("sampling", "collector", "propagation"))
        tracing = Tracing()
        sampling = tracing.sampling
        if "sampling" in fields:
            sampling = self.number(fields["sampling"], "'sampling'", 0, 100)
        collector = tracing.collector
        if "collector" in fields:
            collector = self.string(fields["collector"], "'collector'")
            host, _, port = collector.rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                self.fail(fields["collector"], f"'collector' must be host:port, got {collector!r}")
        propagation = tracing.propagation
        if "propagation" in fields:
            formats: list[str] = []
            for item in self.sequence(fields["propagation"], "'propagation'"):
                name = self.string(item, "a propagation format")
                if name not in PROPAGATION_FORMATS:
                    hint = did_you_mean(name, PROPAGATION_FORMATS)
                    self.fail(item, f"unknown propagation format {name!r}{hint}")
                if name in formats:
                    self.fail(item, f"propagation format {name!r} is listed twice")
                formats.append(name)
            if not formats:
                self.fail(fields["propagation"], "'propagation' is empty")
            propagation = tuple(formats)
        return Tracing(sampling, collector, propagation)

    # --- shared value kinds

    def name(self, node: Node, what: str) -> str:
        name = self.string(node, what)
        if len(name) > MAX_NAME or not _NAME.fullmatch(name):
            self.fail(
                node,
                f"{what} must be lower-case letters, digits, '-' and '.', starting and ending"
                f" with a letter or digit, got {name!r}",
            )
        return name

    def service_ref(self, node: Node, what: str, known: frozenset[str]) -> str:
        """A service name; one the file's `services` list, when it has one."""
        name = self.name(node, what)
        if known and name not in known:
            self.fail(node, f"unknown service {name!r}{did_you_mean(name, sorted(known))}")
        return name

    def duration(self, node: Node, what: str) -> float:
        if node.tag != STR:
            self.fail(node, f"{what} must be a duration like 1.5s or 250ms, got {describe(node)}")
        try:
            return parse_duration(self.string(node, what))
        except ValueError as exc:
            self.fail(node, f"{what} {exc}")

    def optional_int(
        self, fields: Mapping[str, Node], key: str, low: int, high: int, default: int
    ) -> int:
        if key not in fields:
            return default
        return self.integer(fields[key], repr(key), low, high)


# Stand-ins for absent optional collections, so one code path reads both cases.
_EMPTY = yaml.MappingNode("tag:yaml.org,2002:map", [])
_EMPTY_LIST = yaml.SequenceNode("tag:yaml.org,2002:seq", [])
_ANY_HOST = yaml.SequenceNode("tag:yaml.org,2002:seq", [yaml.ScalarNode(STR, "*")])
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_mesh(config: MeshConfig) -> str:
    """YAML that `load_mesh` reads back as an equal `MeshConfig`; defaults are left out."""
    data: dict[str, Any] = {}
    if config.services:
        data["services"] = [_workload(w) for w in config.services]
    if config.routes:
        data["routes"] = {name: _service_routes(r) for name, r in config.routes.items()}
    if config.gateway is not None:
        data["gateway"] = {
            "port": config.gateway.port,
            "routes": [_gateway_route(r) for r in config.gateway.routes],
        }
        if not config.gateway.upstream_span:
            data["gateway"]["upstream_span"] = False
    if config.tracing != Tracing():
        data["tracing"] = {
            "sampling": config.tracing.sampling,
            "collector": config.tracing.collector,
            "propagation": list(config.tracing.propagation),
        }
    if not data:
        return ""
    return yaml.dump(
        data, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, default_flow_style=None
    )


def _some(**values: Any) -> dict[str, Any]:
    """The entries that are given (not None, not empty)."""
    return {k: v for k, v in values.items() if v is not None and v != {} and v != []}


def _workload(w: Workload) -> dict[str, Any]:
    return _some(
        name=w.name,
        command=list(w.command),
        port=w.port,
        labels=dict(w.labels),
        replicas=w.replicas if w.replicas != 1 else None,
        env=dict(w.env),
    )


def _service_routes(routes: ServiceRoutes) -> dict[str, Any]:
    return _some(
        subsets={name: {"labels": dict(labels)} for name, labels in routes.subsets.items()},
        http=[_route(r) for r in routes.http],
    )


def _route(route: Route) -> dict[str, Any]:
    single = len(route.route) == 1
    return _some(
        name=route.name,
        match=[_request_match(m) for m in route.match],
        route=[
            _some(service=d.service, subset=d.subset, weight=None if single else d.weight)
            for d in route.route
        ],
        timeout=format_duration(route.timeout) if route.timeout is not None else None,
        retries=_retries(route.retries) if route.retries is not None else None,
        fault=_fault(route.fault) if route.fault is not None else None,
    )


def _request_match(match: RequestMatch) -> dict[str, Any]:
    return _some(
        uri=_string_match(match.uri) if match.uri else None,
        method=_string_match(match.method) if match.method else None,
        headers={name: _string_match(m) for name, m in match.headers.items()},
        baggage={key: _string_match(m) for key, m in match.baggage.items()},
    )


def _string_match(match: StringMatch) -> dict[str, str]:
    return {} if match.kind is MatchKind.PRESENT else {match.kind.value: match.value}


def _retries(retries: Retries) -> dict[str, Any]:
    retry_on: list[str | int] = [*sorted(c.value for c in retries.retry_on)]
    retry_on += sorted(retries.status_codes)
    return _some(
        attempts=retries.attempts,
        perTryTimeout=format_duration(retries.per_try_timeout)
        if retries.per_try_timeout is not None
        else None,
        retryOn=retry_on,
    )


def _fault(fault: Fault) -> dict[str, Any]:
    return _some(
        delay=_some(
            fixedDelay=format_duration(fault.delay.fixed_delay),
            percentage=_percentage(fault.delay.percentage),
        )
        if fault.delay
        else None,
        abort=_some(
            httpStatus=fault.abort.http_status, percentage=_percentage(fault.abort.percentage)
        )
        if fault.abort
        else None,
    )


def _percentage(value: float) -> float | None:
    return None if value == 100.0 else value


def _gateway_route(route: GatewayRoute) -> dict[str, Any]:
    return _some(
        hosts=list(route.hosts) if route.hosts != ("*",) else None,
        prefix=route.prefix if route.prefix != "/" else None,
        service=route.service,
        rewrite=route.rewrite,
        name=route.name,
    )
