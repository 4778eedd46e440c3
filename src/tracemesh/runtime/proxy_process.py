"""A `tracemesh sidecar` or `tracemesh gateway` process: its proxy listeners, span reporter,
optional sampling-strategy poller and admin port, started in order and stopped so that requests
in flight finish and their spans still reach the collector.

Shutdown is intake-first, as for the backend roles: the proxy listeners stop accepting and drain
(they are what produce spans), then the reporter sends what it holds (bounded by
`--shutdown-timeout`), then the poller and the admin port stop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tracemesh.mesh.capture import CaptureMode
from tracemesh.mesh.config_file import read_mesh_file
from tracemesh.mesh.control_client import ControlClient
from tracemesh.mesh.gateway import GatewayHandler
from tracemesh.mesh.handler import Handler
from tracemesh.mesh.mesh_config import GATEWAY_PORT, MeshConfig
from tracemesh.mesh.proxy_metrics import ProxyMetrics
from tracemesh.mesh.registry import Registry, from_endpoints, read_registry
from tracemesh.mesh.reporter import Reporter, SpanSink
from tracemesh.mesh.routing import Router
from tracemesh.mesh.sampler import Sampler
from tracemesh.mesh.server import ProxyServer
from tracemesh.mesh.sidecar import InboundHandler, OutboundHandler, service_ports, with_services
from tracemesh.mesh.span_extras import ExtrasSink
from tracemesh.mesh.strategy_poller import StrategyPoller
from tracemesh.mesh.tracing import NullSink, ProxyIdentity, Tracer, propagator_for
from tracemesh.runtime import admin, ports
from tracemesh.runtime.http_server import HttpServer
from tracemesh.runtime.lifecycle import Listener, run_until_signalled
from tracemesh.runtime.proxy_options import GATEWAY, GATEWAY_SERVICE, SIDECAR, ProxyOptions
from tracemesh.runtime.tasks import TaskOwner

log = logging.getLogger("tracemesh")


@dataclass
class ProxyProcess:
    """`mesh` and `registry` as loaded (see `from_options`); nothing is bound until `start`."""

    options: ProxyOptions
    role: str = SIDECAR
    mesh: MeshConfig = field(default_factory=MeshConfig)
    registry: Registry = field(default_factory=Registry)
    tasks: TaskOwner = field(default_factory=TaskOwner)
    listeners: list[Listener] = field(default_factory=list)

    @classmethod
    def from_options(cls, options: ProxyOptions, role: str) -> ProxyProcess:
        """Read the mesh and registry files the options name; ValueError (ConfigError) names
        the file and line of a mistake."""
        mesh = read_mesh_file(options.mesh) if options.mesh else MeshConfig()
        registry = read_registry(options.registry) if options.registry else Registry()
        return cls(options, role, mesh, registry.merged(from_endpoints(options.endpoint)))

    def __post_init__(self) -> None:
        if self.role not in (SIDECAR, GATEWAY):
            raise ValueError(f"unknown proxy role {self.role!r}")
        opts = self.options
        if self.role == SIDECAR and not opts.service:
            raise ValueError("a sidecar needs --service: the service it stands in front of")
        tracing = self.mesh.tracing
        formats = opts.propagation.split(",") if opts.propagation else list(tracing.propagation)
        propagator = propagator_for([name.strip() for name in formats if name.strip()])
        self.sampler = Sampler(opts.sampling if opts.sampling >= 0 else tracing.sampling)
        self.identity = ProxyIdentity(
            opts.service or GATEWAY_SERVICE, opts.namespace, opts.labels(),
            proxy_type="router" if self.role == GATEWAY else "sidecar", ip=opts.host,
        )  # fmt: skip
        collector = opts.collector or tracing.collector
        self.reporter: Reporter | None = None
        sink: SpanSink = NullSink()
        if collector:
            self.reporter = Reporter(collector, opts.collector_protocol,
                                     queue_spans=opts.span_buffer)  # fmt: skip
            sink = ExtrasSink(self.reporter)  # + what HTTP/2 streams add (gRPC status)
        self.poller: StrategyPoller | None = None
        if opts.sampling_server:
            self.poller = StrategyPoller(opts.sampling_server, self.identity.service_name,
                                         self.sampler, interval=opts.sampling_refresh)  # fmt: skip
        self.metrics = ProxyMetrics(self.identity)
        self.metrics.watch(self.reporter, self.poller)
        self.tracer = Tracer(self.identity, propagator, self.sampler, sink)
        self.router = Router(with_services(self.mesh, self.registry.services))
        self.servers: dict[str, ProxyServer] = {}
        self.outbound: list[OutboundHandler] = []  # what new tables are handed to
        self.control: ControlClient | None = None
        if opts.control:
            self.control = ControlClient(opts.control, opts.namespace, self.update_tables)

    def handlers(self) -> list[tuple[str, Handler, int]]:
        """(listener name, handler, port) for the role."""
        opts = self.options
        known = self.mesh.service_names()
        ports_by_service = service_ports(self.mesh)
        if self.role == GATEWAY:
            if self.mesh.gateway is None or not self.mesh.gateway.routes:
                log.warning("the mesh file has no gateway routes: every request gets 404")
            port = opts.port if opts.port >= 0 else (
                self.mesh.gateway.port if self.mesh.gateway else GATEWAY_PORT
            )  # fmt: skip
            upstream_span = self.mesh.gateway is None or self.mesh.gateway.upstream_span
            gateway = GatewayHandler(self.tracer, self.router, self.registry, trust=opts.trust,
                                     ports=ports_by_service, metrics=self.metrics,
                                     upstream_span=upstream_span)  # fmt: skip
            self.outbound = [gateway]
            return [("gateway", gateway, port)]
        service_port = opts.service_port or ports_by_service.get(opts.service, opts.app_port)
        inbound = InboundHandler(self.tracer, (opts.app_host, opts.app_port), service_port,
                                 self.metrics)  # fmt: skip
        outbound = OutboundHandler(self.tracer, self.router, self.registry, known=known,
                                   ports=ports_by_service, metrics=self.metrics)  # fmt: skip
        self.outbound = [outbound]
        return [("inbound", inbound, opts.inbound_port), ("outbound", outbound, opts.outbound_port)]

    def update_tables(self, mesh: MeshConfig, registry: Registry) -> None:
        """The control plane's routes and instances (tracing settings and the gateway's port
        stay as the process started with them)."""
        merged = registry.merged(from_endpoints(self.options.endpoint))
        self.mesh = MeshConfig(self.mesh.services, mesh.routes, mesh.gateway or self.mesh.gateway,
                               self.mesh.tracing)  # fmt: skip
        self.registry = merged
        self.router = Router(with_services(self.mesh, merged.services))
        for handler in self.outbound:
            handler.update(self.router, merged, self.mesh.service_names(),
                           service_ports(self.mesh))  # fmt: skip

    async def start(self) -> None:
        opts = self.options
        if self.reporter is not None:
            await self.reporter.start()
        if self.poller is not None:
            await self.poller.start()
        if self.control is not None:
            await self.control.start()
        if self.role == SIDECAR and opts.capture and opts.host.startswith("127."):
            log.warning("--capture with --host %s: inbound connections redirected to the "
                        "Pod's address will not reach it (use --host 0.0.0.0)",
                        opts.host)  # fmt: skip
        for name, handler, port in self.handlers():
            server = ProxyServer(handler, capture=self.capture_mode(name))
            await server.start(opts.host, port)
            self.servers[name] = server
            self.listeners.append(Listener(name, f"http://{opts.host}:{server.port}",
                                           *_controls(server, opts.shutdown_timeout),
                                           intake=True))  # fmt: skip
        admin_port = opts.admin_port
        if admin_port < 0:
            admin_port = ports.GATEWAY_ADMIN if self.role == GATEWAY else ports.SIDECAR_ADMIN
        http = HttpServer(
            "admin", admin.build_app(self.metrics, self.health), opts.host, admin_port
        )
        http.start(self.tasks)
        await http.wait_started()
        self.listeners.append(Listener("admin", f"http://{opts.host}:{http.port}/health /metrics",
                                       http.stop, lambda: http.serving, intake=False))  # fmt: skip

    def capture_mode(self, listener: str) -> CaptureMode | None:
        """How the sidecar's `listener` serves redirected connections (None: explicit only)."""
        if self.role != SIDECAR or not self.options.capture:
            return None
        return CaptureMode(app_host=self.options.app_host if listener == "inbound" else None)

    def port_of(self, name: str) -> int:
        where = next(item.where for item in self.listeners if item.name == name)
        return int(where.split("://")[-1].split("/")[0].rsplit(":", 1)[1])

    async def health(self) -> dict[str, bool]:
        """Serving listeners; the collector's reachability is not health (requests flow
        without it)."""
        return {item.name: item.serving() for item in self.listeners}

    async def stop(self) -> None:
        for item in self.listeners:
            if item.intake:
                await item.stop()
        if self.reporter is not None:
            await self.reporter.stop(self.options.shutdown_timeout)
        if self.poller is not None:
            await self.poller.stop()
        if self.control is not None:
            await self.control.stop()
        for item in self.listeners:
            if not item.intake:
                await item.stop()
        await self.tasks.cancel_all()


def _controls(
    server: ProxyServer, timeout: float
) -> tuple[Callable[[], Awaitable[None]], Callable[[], bool]]:
    """(stop, serving) of one proxy listener."""

    async def stop() -> None:
        await server.stop(timeout=timeout)

    return stop, lambda: server.serving


async def run(options: ProxyOptions, role: str) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    process = ProxyProcess.from_options(options, role)

    def banner() -> str:
        sink = process.reporter.endpoint if process.reporter else "nowhere"
        return (f"tracemesh {role} {process.identity.service} is up "
                f"(spans as {process.identity.service_name}, to {sink})")  # fmt: skip

    await run_until_signalled(process, banner)
