"""Every setting of a tracemesh process, each with its flag, `TRACEMESH_*` variable and default."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from typing import Any

from tracemesh.runtime import ports

MiB = 1024 * 1024


@dataclass(slots=True)
class Config:
    host: str = "127.0.0.1"
    otlp_grpc_port: int = ports.OTLP_GRPC
    otlp_http_port: int = ports.OTLP_HTTP
    collector_grpc_port: int = ports.COLLECTOR_GRPC
    collector_http_port: int = ports.COLLECTOR_HTTP
    zipkin_http_port: int = ports.ZIPKIN_HTTP
    jaeger_compact_port: int = ports.AGENT_JAEGER_COMPACT
    jaeger_binary_port: int = ports.AGENT_JAEGER_BINARY
    zipkin_compact_port: int = ports.AGENT_ZIPKIN_COMPACT
    sampling_http_port: int = ports.AGENT_SAMPLING_HTTP
    query_http_port: int = ports.QUERY_HTTP
    admin_http_port: int = -1  # -1: the role's default (ports.ADMIN_BY_ROLE)
    storage: str = "memory"
    memory_max_traces: int = 100_000
    disk_path: str = ""
    disk_retention: str = "72h"
    disk_max_bytes: int = 0
    queue_max_spans: int = 200_000
    queue_max_bytes: int = 128 * MiB
    queue_max_wait: float = 3.0
    queue_batch_spans: int = 10_000
    otlp_max_body_bytes: int = 20 * MiB
    otlp_grpc_max_message_bytes: int = 16 * MiB
    sampling_strategies_file: str = ""
    sampling_default_probability: float = 1.0
    agent_collector: str = "127.0.0.1:4317"
    agent_queue_spans: int = 100_000
    agent_otlp: bool = False
    query_base_path: str = ""
    query_ui_dir: str = ""
    shutdown_timeout: float = 10.0
    log_level: str = "info"
    # Kafka: the collector's producer (--storage kafka) and the ingester's consumer.
    kafka_producer_brokers: str = "127.0.0.1:9092"
    kafka_producer_topic: str = "jaeger-spans"
    kafka_producer_encoding: str = "protobuf"
    kafka_producer_compression: str = "lz4"
    kafka_producer_timeout: float = 30.0
    kafka_consumer_brokers: str = "127.0.0.1:9092"
    kafka_consumer_topic: str = "jaeger-spans"
    kafka_consumer_group_id: str = "jaeger-ingester"
    kafka_consumer_encoding: str = "protobuf"
    ingester_batch_messages: int = 2_000
    # --storage elasticsearch (Jaeger's flag names; see storage/elasticsearch/README.md)
    es_server_urls: str = "http://127.0.0.1:9200"
    es_username: str = ""
    es_password: str = ""
    es_tls_ca: str = ""
    es_tls_skip_host_verify: bool = False
    es_index_prefix: str = ""
    es_num_shards: int = 5
    es_num_replicas: int = 1
    es_bulk_size: int = 5_000_000
    es_bulk_actions: int = 1000
    es_bulk_workers: int = 2
    es_bulk_flush_interval: float = 0.0
    es_use_aliases: bool = False
    es_create_index_templates: bool = True
    es_version: int = 0
    es_refresh: str = "false"  # Jaeger's: searchable at the next refresh (~1 s), not on ack
    es_max_span_age: float = 72 * 3600.0
    es_tags_as_fields_all: bool = False
    es_tags_as_fields_include: str = ""
    es_tags_as_fields_dot_replacement: str = "@"


# flag -> (field, help). The variable is TRACEMESH_ + the flag upper-cased, `.`/`-` -> `_`.
OPTIONS: dict[str, tuple[str, str]] = {
    "--host": ("host", "address every listener binds (0.0.0.0 for all interfaces)"),
    "--otlp.grpc-port": ("otlp_grpc_port", "OTLP/gRPC receiver port"),
    "--otlp.http-port": ("otlp_http_port", "OTLP/HTTP receiver port (POST /v1/traces)"),
    "--collector.grpc-port": ("collector_grpc_port", "Jaeger gRPC PostSpans and sampling port"),
    "--collector.http-port": ("collector_http_port", "Jaeger Thrift over HTTP and /api/sampling"),
    "--zipkin.http-port": ("zipkin_http_port", "Zipkin /api/v1/spans and /api/v2/spans port"),
    "--agent.jaeger-compact-port": ("jaeger_compact_port", "UDP Jaeger Thrift compact port"),
    "--agent.jaeger-binary-port": ("jaeger_binary_port", "UDP Jaeger Thrift binary port"),
    "--agent.zipkin-compact-port": ("zipkin_compact_port", "UDP Zipkin Thrift compact port"),
    "--sampling.http-port": ("sampling_http_port", "sampling strategies over HTTP (agent port)"),
    "--query.http-port": ("query_http_port", "query API and UI port"),
    "--admin.http-port": (
        "admin_http_port",
        "admin port: /health and /metrics (-1: 14269, agent 14271, query 16687)",
    ),
    "--storage": (
        "storage",
        "span storage backend: memory, disk, elasticsearch, or kafka (collector: to a topic)",
    ),
    "--memory.max-traces": ("memory_max_traces", "traces memory storage keeps; oldest evicted"),
    "--disk.path": ("disk_path", "disk storage: directory of the data (created if missing)"),
    "--disk.retention": ("disk_retention", "disk storage: age past which spans are deleted"),
    "--disk.max-bytes": ("disk_max_bytes", "disk storage: size past which old data goes (0: none)"),
    "--queue.max-spans": ("queue_max_spans", "spans the pipeline queue holds before refusing"),
    "--queue.max-bytes": ("queue_max_bytes", "bytes of spans the pipeline queue holds at most"),
    "--queue.max-wait": (
        "queue_max_wait",
        "seconds an acknowledged span may wait in the queue (refuse beyond; 0: no bound)",
    ),
    "--queue.batch-spans": ("queue_batch_spans", "spans written to storage in one batch at most"),
    "--otlp.max-body-bytes": ("otlp_max_body_bytes", "largest OTLP/HTTP body, after gunzip (413)"),
    "--otlp.grpc-max-message-bytes": ("otlp_grpc_max_message_bytes", "largest OTLP/gRPC message"),
    "--sampling.strategies-file": (
        "sampling_strategies_file",
        "Jaeger sampling strategies JSON file, reloaded when it changes",
    ),
    "--sampling.default-probability": (
        "sampling_default_probability",
        "probability served when no strategies file is given",
    ),
    "--agent.collector": ("agent_collector", "agent: collector OTLP/gRPC address to forward to"),
    "--agent.queue-spans": (
        "agent_queue_spans",
        "agent: spans buffered while the collector is away",
    ),
    "--agent.otlp": (
        "agent_otlp",
        "agent: also take OTLP on the OTLP ports (as a sidecar, for OpenTelemetry SDKs)",
    ),
    "--query.base-path": ("query_base_path", "URL prefix for the API and UI, e.g. /jaeger"),
    "--query.ui-dir": ("query_ui_dir", "directory of UI files to serve (default: the built-in UI)"),
    "--shutdown-timeout": ("shutdown_timeout", "seconds to flush queued spans on shutdown"),
    "--log-level": ("log_level", "debug, info, warning or error"),
    "--kafka.producer.brokers": ("kafka_producer_brokers", "Kafka brokers, host:port,..."),
    "--kafka.producer.topic": ("kafka_producer_topic", "topic the collector writes spans to"),
    "--kafka.producer.encoding": (
        "kafka_producer_encoding",
        "protobuf or json (a Jaeger api_v2 Span per message), otlp_proto or otlp_json",
    ),
    "--kafka.producer.compression": (
        "kafka_producer_compression",
        "none, gzip, snappy, lz4 or zstd",
    ),
    "--kafka.producer.timeout": (
        "kafka_producer_timeout",
        "seconds a span may wait for the brokers' acknowledgement before the write fails",
    ),
    "--kafka.consumer.brokers": ("kafka_consumer_brokers", "Kafka brokers the ingester reads"),
    "--kafka.consumer.topic": ("kafka_consumer_topic", "topic the ingester reads spans from"),
    "--kafka.consumer.group-id": (
        "kafka_consumer_group_id",
        "consumer group: ingesters in one group split the partitions",
    ),
    "--kafka.consumer.encoding": (
        "kafka_consumer_encoding",
        "encoding of the topic's messages (as --kafka.producer.encoding)",
    ),
    "--ingester.batch-messages": (
        "ingester_batch_messages",
        "messages the ingester stores and commits in one step, at most",
    ),
    "--es.server-urls": ("es_server_urls", "Elasticsearch/OpenSearch URLs, comma-separated"),
    "--es.username": ("es_username", "basic auth user name"),
    "--es.password": ("es_password", "basic auth password"),
    "--es.tls.ca": ("es_tls_ca", "CA file that signs the cluster's certificate"),
    "--es.tls.skip-host-verify": ("es_tls_skip_host_verify", "do not verify the certificate"),
    "--es.index-prefix": ("es_index_prefix", "prefix of index names: <prefix>-jaeger-span-..."),
    "--es.num-shards": ("es_num_shards", "shards of each new index (index templates)"),
    "--es.num-replicas": ("es_num_replicas", "replicas of each new index (index templates)"),
    "--es.bulk.size": ("es_bulk_size", "bytes in one bulk request at most"),
    "--es.bulk.actions": ("es_bulk_actions", "documents in one bulk request at most"),
    "--es.bulk.workers": ("es_bulk_workers", "bulk requests in flight at once"),
    "--es.bulk.flush-interval": (
        "es_bulk_flush_interval",
        "seconds a partial bulk waits for documents of concurrent writes (0: send at once)",
    ),
    "--es.use-aliases": ("es_use_aliases", "rollover mode: jaeger-span-write/-read aliases"),
    "--es.create-index-templates": ("es_create_index_templates", "put Jaeger's index templates"),
    "--es.version": ("es_version", "Elasticsearch major version to speak (0: ask the cluster)"),
    "--es.refresh": (
        "es_refresh",
        "bulk refresh: wait_for (searchable on ack), true (force a refresh) or false (~1 s later)",
    ),
    "--es.max-span-age": ("es_max_span_age", "seconds back that service lists look"),
    "--es.tags-as-fields.all": ("es_tags_as_fields_all", "store every tag in the `tag` object"),
    "--es.tags-as-fields.include": (
        "es_tags_as_fields_include",
        "comma-separated tag keys to store in the `tag` object",
    ),
    "--es.tags-as-fields.dot-replacement": (
        "es_tags_as_fields_dot_replacement",
        "replaces `.` in tag keys of the `tag` object",
    ),
}

STORAGE_CHOICES = ("memory", "disk", "elasticsearch", "kafka")


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def env_name(flag: str) -> str:
    return "TRACEMESH_" + flag.lstrip("-").upper().replace(".", "_").replace("-", "_")


def add_arguments(parser: argparse.ArgumentParser, only: str = "") -> None:
    """Every option, or only those whose flag starts with `only` (e.g. `--es.`)."""
    defaults = Config()
    types = {f.name: f.type for f in fields(Config)}
    for flag, (name, text) in OPTIONS.items():
        if not flag.startswith(only):
            continue
        default: Any = getattr(defaults, name)
        kind: Any = {"int": int, "float": float, "str": str, "bool": parse_bool}[str(types[name])]
        env = env_name(flag)
        if env in os.environ:
            try:
                default = kind(os.environ[env])
            except ValueError:
                parser.error(f"{env}={os.environ[env]!r} is not a valid {types[name]}")
        parser.add_argument(
            flag,
            dest=name,
            type=kind,
            default=default,
            metavar=str(types[name]).upper(),
            choices=STORAGE_CHOICES if name == "storage" else None,
            help=f"{text} (env {env}, default {getattr(defaults, name)!r})",
        )


def from_namespace(args: argparse.Namespace) -> Config:
    """The settings parsed; options a command does not take keep their defaults."""
    defaults = Config()
    return Config(
        **{f.name: getattr(args, f.name, getattr(defaults, f.name)) for f in fields(Config)}
    )
