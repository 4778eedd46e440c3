"""What `tracemesh mesh up` starts, worked out before anything runs: the backend (unless spans go
to a collector elsewhere), one app and one sidecar per replica of every workload, the gateway,
each with its command line, environment, ports and health probe.

Ports are free loopback ports picked here (all at once, so no two coincide). The gateway and the
UI prefer their well-known ports (the mesh file's `gateway.port`, 16686), so `curl
localhost:8080/...` works as the docs say, and fall back to a free port when those are taken.
"""

from __future__ import annotations

import os
import random
import socket
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tracemesh.mesh.mesh_config import MeshConfig, Workload
from tracemesh.runtime import ports as well_known

HOST = "127.0.0.1"
BACKEND, GATEWAY, APP, SIDECAR = "backend", "gateway", "app", "sidecar"
# The mesh's written context formats, in the order an app should prefer them (OTEL_PROPAGATORS
# names, opentelemetry-specification sdk-environment-variables). One context format is enough:
# the sidecar reads every format from the app, and one avoids needing extra propagator packages.
_OTEL_CONTEXT = (("w3c", "tracecontext"), ("b3", "b3multi"), ("jaeger", "jaeger"))


@dataclass(frozen=True, slots=True)
class Probe:
    """`http`: GET `path` answers 200; `tcp`: the port accepts a connection."""

    kind: str
    port: int
    path: str = ""


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str  # unique in the run: backend, gateway, <instance>, <instance>.sidecar
    kind: str  # BACKEND, GATEWAY, APP or SIDECAR
    argv: tuple[str, ...]
    env: Mapping[str, str]  # added to the runner's own environment
    cwd: str
    probe: Probe
    service: str = ""
    version: str = ""
    ports: Mapping[str, int] = field(default_factory=dict)  # what listens where, for the table


@dataclass(frozen=True, slots=True)
class Plan:
    processes: tuple[ProcessSpec, ...]
    registry: Mapping[str, list[dict[str, object]]]  # the registry file the proxies read
    collector: str  # host:port of OTLP/gRPC, where every span goes
    ui: str | None  # the trace UI, when the runner starts the backend
    gateway: str | None  # the gateway's URL, when the mesh file has one

    def of_kind(self, kind: str) -> list[ProcessSpec]:
        return [p for p in self.processes if p.kind == kind]


@dataclass(frozen=True, slots=True)
class PlanOptions:
    mesh_file: Path
    run_dir: Path
    collector: str = ""  # host:port: use that collector, start no backend
    gateway_port: int = -1  # -1: the file's gateway.port if free; 0: any free port
    ui_port: int = -1  # -1: 16686 if free; 0: any free port
    log_level: str = "warning"


class _Ports:
    """Free loopback ports, held bound until `release` so that none is handed out twice.

    They come from below the kernel's ephemeral range when there is room: a port is free when
    planned but bound by its process only later, and in between any program's outgoing
    connection or bind(0) could take an ephemeral one (an app whose port is taken by a
    stranger would look healthy to a TCP probe)."""

    def __init__(self) -> None:
        self._held: list[socket.socket] = []
        low, high = _FIXED_RANGE
        self._candidates = list(range(low, min(high, _ephemeral_start())))
        random.shuffle(self._candidates)

    def take(self, preferred: int = 0) -> int:
        if preferred > 0 and self._bind(preferred):
            return preferred
        while self._candidates:
            port = self._candidates.pop()
            if self._bind(port):
                return port
        if self._bind(0):  # none left below the ephemeral range
            return int(self._held[-1].getsockname()[1])
        raise OSError("no free loopback port")  # pragma: no cover - the kernel picks one

    def _bind(self, port: int) -> bool:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            sock.close()
            return False
        self._held.append(sock)
        return True

    def release(self) -> None:
        for sock in self._held:
            sock.close()
        self._held.clear()


_FIXED_RANGE = (20000, 32768)


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as file:
            return int(file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def instance_name(workload: Workload, replica: int) -> str:
    version = workload.labels.get("version")
    return f"{workload.name}-{version}-{replica}" if version else f"{workload.name}-{replica}"


def declares_collector(text: str | bytes) -> bool:
    """Whether the mesh file sets `tracing.collector` itself (the parsed default is a real
    address, so the parsed value cannot tell). The file has been validated already."""
    data = yaml.safe_load(text)
    tracing = data.get("tracing") if isinstance(data, dict) else None
    return isinstance(tracing, dict) and "collector" in tracing


def make_plan(mesh: MeshConfig, options: PlanOptions, collector_in_file: bool) -> Plan:
    taken = _Ports()
    try:
        return _plan(mesh, options, collector_in_file, taken)
    finally:
        taken.release()


def _plan(mesh: MeshConfig, options: PlanOptions, collector_in_file: bool, taken: _Ports) -> Plan:
    mesh_file = str(options.mesh_file.resolve())
    cwd = str(options.mesh_file.resolve().parent)
    registry_file = str(options.run_dir / "registry.yaml")
    tracemesh = (sys.executable, "-m", "tracemesh")
    processes: list[ProcessSpec] = []
    ui = None
    collector = options.collector or (mesh.tracing.collector if collector_in_file else "")
    if collector:
        otlp_endpoint, otlp_protocol = f"http://{collector}", "grpc"
    else:
        backend_ports = {
            "otlp-grpc": taken.take(),
            "otlp-http": taken.take(),
            "ui": taken.take(_prefer(options.ui_port, well_known.QUERY_HTTP)),
            "admin": taken.take(),
        }
        collector = f"{HOST}:{backend_ports['otlp-grpc']}"
        otlp_endpoint, otlp_protocol = (
            f"http://{HOST}:{backend_ports['otlp-http']}",
            "http/protobuf",
        )
        ui = f"http://{HOST}:{backend_ports['ui']}"
        flags = {
            "--otlp.grpc-port": backend_ports["otlp-grpc"],
            "--otlp.http-port": backend_ports["otlp-http"],
            "--query.http-port": backend_ports["ui"],
            "--admin.http-port": backend_ports["admin"],
        }
        for flag in _UNUSED_BACKEND_PORTS:  # still bound, on ports the kernel picks
            flags[flag] = 0
        argv = (*tracemesh, "all-in-one", "--host", HOST, "--storage", "memory",
                "--log-level", options.log_level,
                *(str(x) for item in flags.items() for x in item))  # fmt: skip
        processes.append(ProcessSpec(BACKEND, BACKEND, argv, {}, cwd,
                                     Probe("http", backend_ports["admin"], "/health"),
                                     ports=backend_ports))  # fmt: skip

    registry: dict[str, list[dict[str, object]]] = {}
    instances: list[tuple[Workload, int, dict[str, int]]] = []
    for workload in mesh.services:
        for replica in range(workload.replicas):
            ports = {name: taken.take() for name in ("app", "inbound", "outbound", "admin")}
            instances.append((workload, replica, ports))
            registry.setdefault(workload.name, []).append(
                {"address": f"{HOST}:{ports['inbound']}", "labels": dict(workload.labels)}
            )
    proxy_common = ("--mesh", mesh_file, "--registry", registry_file, "--collector", collector,
                    "--shutdown-timeout", "2", "--log-level", options.log_level)  # fmt: skip
    for workload, replica, ports in instances:
        name = instance_name(workload, replica)
        version = workload.labels.get("version", "")
        env = app_environment(mesh, workload, name, ports, otlp_endpoint, otlp_protocol)
        argv = tuple(string.Template(word).safe_substitute(env) for word in workload.command)
        processes.append(ProcessSpec(name, APP, argv, env, cwd, Probe("tcp", ports["app"]),
                                     workload.name, version, {"app": ports["app"]}))  # fmt: skip
        labels = [x for k, v in workload.labels.items() for x in ("--label", f"{k}={v}")]
        sidecar = (*tracemesh, "sidecar", "--service", workload.name, *labels,
                   "--host", HOST, "--app-port", str(ports["app"]),
                   "--service-port", str(workload.port),
                   "--inbound-port", str(ports["inbound"]),
                   "--outbound-port", str(ports["outbound"]),
                   "--admin-port", str(ports["admin"]), *proxy_common)  # fmt: skip
        sidecar_ports = {k: ports[k] for k in ("inbound", "outbound", "admin")}
        processes.append(ProcessSpec(f"{name}.sidecar", SIDECAR, sidecar, {}, cwd,
                                     Probe("http", ports["admin"], "/health"),
                                     workload.name, version, sidecar_ports))  # fmt: skip

    gateway_url = None
    if mesh.gateway is not None:
        port = taken.take(_prefer(options.gateway_port, mesh.gateway.port))
        admin = taken.take()
        argv = (*tracemesh, "gateway", "--host", HOST, "--port", str(port),
                "--admin-port", str(admin), *proxy_common)  # fmt: skip
        gateway_url = f"http://{HOST}:{port}"
        processes.append(ProcessSpec(GATEWAY, GATEWAY, argv, {}, cwd,
                                     Probe("http", admin, "/health"),
                                     ports={"gateway": port, "admin": admin}))  # fmt: skip
    return Plan(tuple(processes), registry, collector, ui, gateway_url)


_UNUSED_BACKEND_PORTS = (
    "--collector.grpc-port", "--collector.http-port", "--zipkin.http-port",
    "--agent.jaeger-compact-port", "--agent.jaeger-binary-port", "--agent.zipkin-compact-port",
    "--sampling.http-port",
)  # fmt: skip


def _prefer(option: int, well_known_port: int) -> int:
    """The port to try first: the flag's when given (>0), none for 0, else the well-known."""
    return option if option > 0 else (0 if option == 0 else well_known_port)


def otel_propagators(formats: tuple[str, ...]) -> str:
    chosen = [otel for name, otel in _OTEL_CONTEXT if name in formats][:1]
    if "baggage" in formats:
        chosen.append("baggage")
    return ",".join(chosen) or "none"


def app_environment(
    mesh: MeshConfig,
    workload: Workload,
    instance: str,
    ports: Mapping[str, int],
    otlp_endpoint: str,
    otlp_protocol: str,
) -> dict[str, str]:
    """What an app instance is told: where to listen, where its calls go, and the usual
    OpenTelemetry SDK variables; the workload's own `env` last, so it can override any."""
    outbound = f"http://{HOST}:{ports['outbound']}"
    version = workload.labels.get("version", "")
    resource = {"service.instance.id": instance, "service.namespace": "default"}
    if version:
        resource["service.version"] = version
    sampling = mesh.tracing.sampling / 100
    env = {
        "PORT": str(ports["app"]),
        "HOST": HOST,
        "PYTHON": sys.executable,
        "PYTHONUNBUFFERED": "1",
        "TRACEMESH_SERVICE": workload.name,
        "TRACEMESH_VERSION": version,
        "TRACEMESH_INSTANCE": instance,
        "TRACEMESH_OUTBOUND": outbound,
        "HTTP_PROXY": outbound,
        "http_proxy": outbound,
        "NO_PROXY": f"{HOST},localhost",  # the OTLP exporter's own calls go direct
        "no_proxy": f"{HOST},localhost",
        "OTEL_SERVICE_NAME": workload.name,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": otlp_protocol,
        "OTEL_PROPAGATORS": otel_propagators(mesh.tracing.propagation),
        "OTEL_RESOURCE_ATTRIBUTES": ",".join(f"{k}={v}" for k, v in resource.items()),
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": f"{sampling:g}",
    }
    for key, value in workload.env.items():
        env[key] = string.Template(value).safe_substitute(env)
    return env


def write_registry(plan: Plan, run_dir: Path) -> Path:
    path = run_dir / "registry.yaml"
    text = yaml.safe_dump(dict(plan.registry), sort_keys=True)
    _atomic_write(path, text)
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
