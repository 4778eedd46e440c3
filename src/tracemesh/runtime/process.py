"""One tracemesh process: the roles it runs, started in order and stopped so nothing is lost.

Roles are named parts of one program. `collector` runs every receiver into the pipeline and
storage; `query` serves the Jaeger APIs and UI; `agent` takes UDP spans and forwards them to a
collector; `sampling` serves strategies on the agent's port; `ingester` reads spans a collector
wrote to Kafka (`--storage kafka`) into its own storage (and serves queries over it when that
storage is not shared with a separate `query` process, as memory storage is not). `all-in-one`
is collector, query and sampling in one process, with the UDP receivers feeding the pipeline
directly.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.internal import api_implementation
from starlette.types import ASGIApp

from tracemesh.collector.agent import Forwarder
from tracemesh.collector.pipeline import Pipeline
from tracemesh.collector.receivers import jaeger_http, otlp_http, zipkin_http
from tracemesh.collector.receivers.jaeger_grpc import JaegerGrpcReceiver
from tracemesh.collector.receivers.jaeger_udp import UdpReceiver
from tracemesh.collector.receivers.otlp_grpc import OtlpGrpcReceiver
from tracemesh.collector.sink import BatchSink
from tracemesh.ingester.config import IngesterConfig
from tracemesh.ingester.consumer import Ingester
from tracemesh.query import http_api
from tracemesh.query.service import QueryService
from tracemesh.runtime import admin, ports
from tracemesh.runtime.config import Config
from tracemesh.runtime.http_server import HttpServer
from tracemesh.runtime.lifecycle import Listener, run_until_signalled
from tracemesh.runtime.metrics import Metrics
from tracemesh.runtime.tasks import TaskOwner
from tracemesh.sampling import http as sampling_http
from tracemesh.sampling.strategies import StrategyStore
from tracemesh.storage.api import Storage
from tracemesh.storage.disk.config import DiskConfig, parse_duration
from tracemesh.storage.disk.factory import DiskStorage
from tracemesh.storage.kafka.config import KafkaProducerConfig
from tracemesh.storage.kafka.factory import KafkaStorage
from tracemesh.storage.memory.config import MemoryConfig
from tracemesh.storage.memory.factory import MemoryStorage

log = logging.getLogger("tracemesh")

COLLECTOR, QUERY, AGENT, SAMPLING = "collector", "query", "agent", "sampling"
INGESTER = "ingester"
ROLES: dict[str, tuple[str, ...]] = {
    "all-in-one": (COLLECTOR, QUERY, SAMPLING),
    "collector": (COLLECTOR,),
    "query": (QUERY,),
    "agent": (AGENT, SAMPLING),
    "ingester": (INGESTER,),
}
ADMIN_PORT = {
    "agent": ports.AGENT_ADMIN_HTTP,
    "query": ports.QUERY_ADMIN_HTTP,
    "ingester": ports.INGESTER_ADMIN_HTTP,
}


def make_storage(config: Config, writes: bool = True) -> Storage:
    """The configured backend; `writes=False` for a process that only reads it (`query`)."""
    if config.storage == "memory":
        return MemoryStorage(MemoryConfig(max_traces=config.memory_max_traces))
    if config.storage == "kafka":
        return KafkaStorage(
            KafkaProducerConfig(
                brokers=config.kafka_producer_brokers,
                topic=config.kafka_producer_topic,
                encoding=config.kafka_producer_encoding,
                compression=config.kafka_producer_compression,
                timeout=config.kafka_producer_timeout,
            )
        )
    if config.storage == "disk":
        return DiskStorage(
            DiskConfig(
                config.disk_path,
                retention_ns=parse_duration(config.disk_retention),
                max_bytes=config.disk_max_bytes,
                writable=writes,
            )
        )
    if config.storage == "elasticsearch":
        from tracemesh.storage.elasticsearch.factory import ElasticStorage, config_from

        return ElasticStorage(config_from(config))
    raise ValueError(f"unknown storage {config.storage!r}")


def ingester_config(config: Config) -> IngesterConfig:
    return IngesterConfig(
        brokers=config.kafka_consumer_brokers,
        topic=config.kafka_consumer_topic,
        group_id=config.kafka_consumer_group_id,
        encoding=config.kafka_consumer_encoding,
        batch_messages=config.ingester_batch_messages,
    )


@dataclass
class Process:
    config: Config
    command: str = "all-in-one"
    metrics: Metrics = field(default_factory=Metrics)
    tasks: TaskOwner = field(default_factory=TaskOwner)
    listeners: list[Listener] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.roles = ROLES[self.command]
        self.storage: Storage | None = None
        if COLLECTOR in self.roles or QUERY in self.roles or INGESTER in self.roles:
            writes = COLLECTOR in self.roles or INGESTER in self.roles
            self.storage = make_storage(self.config, writes=writes)
        if INGESTER in self.roles:
            assert self.storage is not None
            if not self.storage.capabilities.shared_between_processes:
                self.roles = (*self.roles, QUERY)  # else nobody could read what it stores
        if QUERY in self.roles and isinstance(self.storage, KafkaStorage):
            raise ValueError(
                "kafka storage is write-only: run `collector --storage kafka` and query "
                "the storage of `tracemesh ingester`"
            )
        self.ingester: Ingester | None = None
        self.pipeline: Pipeline | None = None
        self.forwarder: Forwarder | None = None
        self.sampling: StrategyStore | None = None
        self.stopping = asyncio.Event()

    @property
    def listening(self) -> list[tuple[str, str]]:
        return [(item.name, item.where) for item in self.listeners]

    async def start(self) -> None:
        cfg = self.config
        if api_implementation.Type() != "upb":
            log.warning("protobuf runs its %s backend: ingest is much slower than with upb",
                        api_implementation.Type())  # fmt: skip
        if self.storage is not None:
            await self.storage.start()
            if not self.storage.capabilities.shared_between_processes and self.command in (
                "collector",
                "query",
            ):
                log.warning("%s storage is not shared between processes: a separate %s "
                            "process cannot see it", self.storage.name,
                            "query" if self.command == "collector" else "collector")  # fmt: skip
        if SAMPLING in self.roles or COLLECTOR in self.roles:
            self.sampling = StrategyStore(
                cfg.sampling_strategies_file or None,
                default_probability=cfg.sampling_default_probability,
            )
            await self.sampling.start()
        sink: BatchSink | None = None
        if COLLECTOR in self.roles:
            assert self.storage is not None
            # Storage that is the durable hand-off (Kafka, disk) acknowledges clients itself: they
            # wait for the write, so the pipeline neither lingers nor retries for long.
            confirm = getattr(self.storage, "confirms_writes", False)
            self.pipeline = Pipeline(
                self.storage.writer(), self.metrics, storage_name=self.storage.name,
                queue_spans=cfg.queue_max_spans, batch_spans=cfg.queue_batch_spans,
                queue_bytes=cfg.queue_max_bytes, max_wait=cfg.queue_max_wait,
                confirm=confirm, flush_interval=0.002 if confirm else 0.05,
                retry_attempts=2 if confirm else 8,
            )  # fmt: skip
            await self.pipeline.start()
            sink = self.pipeline
            await self._start_collector_receivers(self.pipeline)
        if AGENT in self.roles:
            self.forwarder = Forwarder(self.metrics, collector=cfg.agent_collector,
                                       queue_spans=cfg.agent_queue_spans)  # fmt: skip
            await self.forwarder.start()
            sink = self.forwarder
        if sink is not None:
            await self._start_udp(sink)
        if self.forwarder is not None and cfg.agent_otlp:
            await self._start_otlp(self.forwarder)
        if INGESTER in self.roles:
            assert self.storage is not None
            self.ingester = Ingester(ingester_config(cfg), self.storage.writer(), self.metrics,
                                     storage_name=self.storage.name)  # fmt: skip
            await self.ingester.start()
        if SAMPLING in self.roles:
            assert self.sampling is not None
            app = sampling_http.build_app(self.sampling, self.metrics)
            await self._serve("sampling", app, cfg.sampling_http_port, "/sampling?service=")
        if QUERY in self.roles:
            assert self.storage is not None
            query = QueryService(self.storage)
            app = http_api.build_app(query, self.metrics, base_path=cfg.query_base_path,
                                     ui_dir=ui_dir(cfg))  # fmt: skip
            await self._serve("query API + UI", app, cfg.query_http_port, cfg.query_base_path + "/")
        admin_port = cfg.admin_http_port
        if admin_port < 0:
            admin_port = ADMIN_PORT.get(self.command, ports.ADMIN_HTTP)
        await self._serve("admin", admin.build_app(self.metrics, self.health), admin_port,
                          "/health /metrics")  # fmt: skip
        if self.pipeline is not None:
            self.metrics.queue_capacity.set(cfg.queue_max_spans)
        if self.storage is not None:
            self.tasks.spawn("storage-stats", self._storage_stats(self.storage))

    async def _start_otlp(self, sink: BatchSink) -> None:
        cfg = self.config
        otlp = OtlpGrpcReceiver(sink, self.metrics, host=cfg.host, port=cfg.otlp_grpc_port,
                                max_message_bytes=cfg.otlp_grpc_max_message_bytes)  # fmt: skip
        await otlp.start()
        self._add("OTLP/gRPC", f"{cfg.host}:{otlp.port}", otlp.stop, lambda: True, intake=True)
        app = otlp_http.build_app(sink, self.metrics, max_body_bytes=cfg.otlp_max_body_bytes)
        await self._serve("OTLP/HTTP", app, cfg.otlp_http_port, "/v1/traces", intake=True)

    async def _start_collector_receivers(self, pipeline: Pipeline) -> None:
        cfg = self.config
        await self._start_otlp(pipeline)
        jaeger = JaegerGrpcReceiver(pipeline, self.metrics, host=cfg.host,
                                    port=cfg.collector_grpc_port, sampling=self.sampling,
                                    max_message_bytes=cfg.otlp_grpc_max_message_bytes)  # fmt: skip
        await jaeger.start()
        self._add("Jaeger gRPC", f"{cfg.host}:{jaeger.port}", jaeger.stop, lambda: True,
                  intake=True)  # fmt: skip
        limit = cfg.otlp_max_body_bytes
        apps: list[tuple[str, ASGIApp, int, str]] = [
            ("Jaeger Thrift/HTTP", jaeger_http.build_app(pipeline, self.metrics,
             max_body_bytes=limit, sampling=self.sampling), cfg.collector_http_port,
             "/api/traces /api/sampling"),
            ("Zipkin", zipkin_http.build_app(pipeline, self.metrics, max_body_bytes=limit),
             cfg.zipkin_http_port, "/api/v2/spans /api/v1/spans"),
        ]  # fmt: skip
        for name, app, port, path in apps:
            await self._serve(name, app, port, path, intake=True)

    async def _start_udp(self, sink: BatchSink) -> None:
        cfg = self.config
        for name, port, protocol, kind in (
            ("Jaeger UDP compact", cfg.jaeger_compact_port, "compact", "jaeger"),
            ("Jaeger UDP binary", cfg.jaeger_binary_port, "binary", "jaeger"),
            ("Zipkin UDP compact", cfg.zipkin_compact_port, "compact", "zipkin"),
        ):
            udp = UdpReceiver(sink, self.metrics, host=cfg.host, port=port, protocol=protocol,
                              kind=kind)  # fmt: skip
            await udp.start()
            self._add(name, f"udp://{cfg.host}:{udp.port}", udp.stop, lambda: True, intake=True)

    async def _serve(
        self, name: str, app: ASGIApp, port: int, path: str, *, intake: bool = False
    ) -> None:
        server = HttpServer(name, app, self.config.host, port)
        server.start(self.tasks)
        await server.wait_started()
        where = f"http://{self.config.host}:{server.port}{path}"
        self._add(name, where, server.stop, lambda: server.serving, intake=intake)

    def _add(
        self,
        name: str,
        where: str,
        stop: Callable[[], Awaitable[None]],
        serving: Callable[[], bool],
        *,
        intake: bool,
    ) -> None:
        self.listeners.append(Listener(name, where, stop, serving, intake))

    def port_of(self, name: str) -> int:
        where = next(item.where for item in self.listeners if item.name == name)
        return int(where.split("://")[-1].split("/")[0].rsplit(":", 1)[1])

    async def health(self) -> dict[str, bool]:
        roles: dict[str, bool] = {}
        if self.storage is not None:
            roles["storage"] = await self.storage.check()
        if self.pipeline is not None:
            roles[COLLECTOR] = self.pipeline.healthy and not self.stopping.is_set()
        if self.forwarder is not None:
            roles[AGENT] = self.forwarder.healthy  # false while the collector cannot be reached
        if self.ingester is not None:
            roles[INGESTER] = self.ingester.healthy  # false while storage refuses writes
        roles.update({item.name: item.serving() for item in self.listeners})
        return roles

    async def _storage_stats(self, storage: Storage) -> None:
        stats = getattr(storage, "stats", None)
        while stats is not None:
            traces, spans = stats()
            self.metrics.traces_stored.labels(storage.name).set(traces)
            self.metrics.spans_stored.labels(storage.name).set(spans)
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Stop taking spans, flush what was taken into storage (or the collector), then release
        everything else."""
        self.stopping.set()
        for item in self.listeners:
            if item.intake:
                await item.stop()
        if self.ingester is not None:
            await self.ingester.stop(timeout=self.config.shutdown_timeout)
        if self.pipeline is not None:
            await self.pipeline.stop(timeout=self.config.shutdown_timeout)
        if self.forwarder is not None:
            await self.forwarder.stop(self.config.shutdown_timeout)
        for item in self.listeners:
            if not item.intake:
                await item.stop()
        if self.sampling is not None:
            await self.sampling.stop()
        await self.tasks.cancel_all()
        if self.storage is not None:
            await self.storage.close()


def ui_dir(config: Config) -> Path | None:
    if config.query_ui_dir:
        return Path(config.query_ui_dir)
    built = Path(__file__).resolve().parent.parent / "query" / "ui"
    return built if (built / "index.html").exists() else None


def tune_gc() -> None:
    """Collect cyclic garbage less often. Storage holds millions of objects; with the default
    thresholds the collector's scans cost ~20% of ingest (measured: 87k vs 108k spans/s with it
    off). Stored spans are freed by reference counting, so rarer collections only delay freeing
    the few cycles asyncio and gRPC make. Objects alive at startup never need scanning again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


async def run(config: Config, command: str) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    tune_gc()
    process = Process(config, command)
    storage = f" (storage: {process.storage.name})" if process.storage is not None else ""
    await run_until_signalled(process, lambda: f"tracemesh {command} is up{storage}")
