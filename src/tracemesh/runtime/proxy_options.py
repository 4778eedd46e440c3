"""Every setting of `tracemesh sidecar` and `tracemesh gateway`, each with its flag, its
`TRACEMESH_*` variable and its default. Tracing settings left unset come from the mesh file's
`tracing` section (`--mesh`), then from its defaults."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from typing import Any

from tracemesh.runtime import ports
from tracemesh.runtime.config import env_name

SIDECAR, GATEWAY = "sidecar", "gateway"
GATEWAY_SERVICE = "ingress-gateway"


@dataclass(slots=True)
class ProxyOptions:
    host: str = "127.0.0.1"
    service: str = ""
    namespace: str = "default"
    label: list[str] = field(default_factory=list)
    inbound_port: int = ports.SIDECAR_INBOUND
    app_port: int = 8080
    app_host: str = "127.0.0.1"
    service_port: int = 0
    outbound_port: int = ports.SIDECAR_OUTBOUND
    capture: bool = False
    port: int = -1
    mesh: str = ""
    registry: str = ""
    endpoint: list[str] = field(default_factory=list)
    collector: str = ""
    collector_protocol: str = "grpc"
    propagation: str = ""
    sampling: float = -1.0
    sampling_server: str = ""
    control: str = ""
    sampling_refresh: float = 60.0
    span_buffer: int = 10_000
    trust: str = "context"
    admin_port: int = -1
    shutdown_timeout: float = 5.0
    log_level: str = "info"

    def labels(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.label:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"a label must be key=value, got {item!r}")
            out[key.strip()] = value.strip()
        return out


# flag -> (field, help, roles); roles: which subcommands take the flag.
_BOTH = (SIDECAR, GATEWAY)
OPTIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "--host": ("host", "address the proxy listeners and the admin port bind", _BOTH),
    "--service": ("service", "the service this sidecar stands in front of (required); "
                  f"the gateway's name (default {GATEWAY_SERVICE})", _BOTH),
    "--namespace": ("namespace", "namespace: spans are reported as <service>.<namespace> "
                    "(Istio's <app>.<namespace>); empty for <service> alone", _BOTH),
    "--label": ("label", "a label of this instance, e.g. version=v1 (repeatable); `version` "
                "is the revision in spans and metrics", (SIDECAR,)),
    "--inbound-port": ("inbound_port", "port the mesh sends this service's requests to",
                       (SIDECAR,)),
    "--app-port": ("app_port", "port of the local app the inbound side forwards to", (SIDECAR,)),
    "--app-host": ("app_host", "address of the local app", (SIDECAR,)),
    "--service-port": ("service_port", "the port callers address the service on, for span "
                       "names (0: the app port)", (SIDECAR,)),
    "--outbound-port": ("outbound_port", "port the app sends its calls to (Host: <service>, or "
                        "HTTP_PROXY=http://127.0.0.1:<port>)", (SIDECAR,)),
    "--capture": ("capture", "transparent capture: serve connections `tracemesh iptables` "
                  "redirected to the inbound and outbound ports (their original destination "
                  "decides; non-HTTP is passed through); bind --host 0.0.0.0 so redirected "
                  "inbound connections arrive", (SIDECAR,)),
    "--port": ("port", "port the gateway listens on (-1: the mesh file's gateway.port, else "
               "8080)", (GATEWAY,)),
    "--mesh": ("mesh", "mesh file: routes, gateway routes, tracing settings", _BOTH),
    "--registry": ("registry", "YAML file: service -> instances (address, labels)", _BOTH),
    "--control": ("control", "control plane URL (http://host:15010): routes and instances "
                  "for --namespace, followed as they change", _BOTH),
    "--endpoint": ("endpoint", "an instance: SERVICE=HOST:PORT or SERVICE[k=v,...]=HOST:PORT, "
                   "the address of its inbound sidecar (repeatable)", _BOTH),
    "--collector": ("collector", "where spans go: host:port for grpc, http://host:port[/path] "
                    "for http and zipkin (default: the mesh file's tracing.collector)", _BOTH),
    "--collector-protocol": ("collector_protocol", "grpc (OTLP/gRPC), http (OTLP/HTTP "
                             "protobuf) or zipkin (Zipkin v2 JSON)", _BOTH),
    "--propagation": ("propagation", "formats written, comma-separated: b3,w3c,jaeger,baggage "
                      "(default: the mesh file's; all are always read)", _BOTH),
    "--sampling": ("sampling", "percentage of new traces recorded, 0-100 (-1: the mesh "
                   "file's, else 100)", _BOTH),
    "--sampling-server": ("sampling_server", "collector HTTP address (http://host:14268) to "
                          "poll /api/sampling?service= for remote strategies; empty: off", _BOTH),
    "--sampling-refresh": ("sampling_refresh", "seconds between strategy fetches", _BOTH),
    "--span-buffer": ("span_buffer", "spans held for the collector; more are dropped and "
                      "counted", _BOTH),
    "--trust": ("trust", "what the gateway keeps from outside requests: context (trace "
                "context, baggage, debug id), none, all", (GATEWAY,)),
    "--admin-port": ("admin_port", f"/health and /metrics (-1: {ports.SIDECAR_ADMIN} sidecar, "
                     f"{ports.GATEWAY_ADMIN} gateway)", _BOTH),
    "--shutdown-timeout": ("shutdown_timeout", "seconds to finish requests and send spans on "
                           "shutdown", _BOTH),
    "--log-level": ("log_level", "debug, info, warning or error", _BOTH),
}  # fmt: skip

CHOICES: dict[str, tuple[str, ...]] = {  # mesh.reporter.ReportProtocol, mesh.gateway.Trust
    "collector_protocol": ("grpc", "http", "zipkin"),
    "trust": ("context", "none", "all"),
}


def add_arguments(parser: argparse.ArgumentParser, role: str) -> None:
    defaults = ProxyOptions()
    types = {f.name: str(f.type) for f in fields(ProxyOptions)}
    for flag, (name, text, roles) in OPTIONS.items():
        if role not in roles:
            continue
        env = env_name(flag)
        kind_name = types[name]
        if kind_name == "list[str]":
            default: Any = os.environ[env].split() if env in os.environ else []
            parser.add_argument(flag, dest=name, action="append", default=default, metavar="TEXT",
                                help=f"{text} (env {env}, space-separated)")  # fmt: skip
            continue
        if kind_name == "bool":
            on = os.environ.get(env, "").lower() in ("1", "true", "yes", "on")
            parser.add_argument(flag, dest=name, action="store_true", default=on,
                                help=f"{text} (env {env}=true)")  # fmt: skip
            continue
        kind = {"int": int, "float": float, "str": str}[kind_name]
        default = getattr(defaults, name)
        if env in os.environ:
            try:
                default = kind(os.environ[env])
            except ValueError:
                parser.error(f"{env}={os.environ[env]!r} is not a valid {kind.__name__}")
        shown = getattr(defaults, name)
        parser.add_argument(flag, dest=name, type=kind, default=default, choices=CHOICES.get(name),
                            metavar=kind.__name__.upper(),
                            help=f"{text} (env {env}, default {shown!r})")  # fmt: skip


def from_namespace(args: argparse.Namespace) -> ProxyOptions:
    names = {f.name for f in fields(ProxyOptions)}
    return ProxyOptions(**{name: getattr(args, name) for name in names if hasattr(args, name)})
