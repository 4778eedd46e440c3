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
    query_http_port: int = ports.QUERY_HTTP
    admin_http_port: int = ports.ADMIN_HTTP
    storage: str = "memory"
    memory_max_traces: int = 100_000
    queue_max_spans: int = 200_000
    queue_batch_spans: int = 10_000
    otlp_max_body_bytes: int = 20 * MiB
    otlp_grpc_max_message_bytes: int = 16 * MiB
    query_base_path: str = ""
    query_ui_dir: str = ""
    shutdown_timeout: float = 10.0
    log_level: str = "info"


# flag -> (field, help). The variable is TRACEMESH_ + the flag upper-cased, `.`/`-` -> `_`.
OPTIONS: dict[str, tuple[str, str]] = {
    "--host": ("host", "address every listener binds (0.0.0.0 for all interfaces)"),
    "--otlp.grpc-port": ("otlp_grpc_port", "OTLP/gRPC receiver port"),
    "--otlp.http-port": ("otlp_http_port", "OTLP/HTTP receiver port (POST /v1/traces)"),
    "--query.http-port": ("query_http_port", "query API and UI port"),
    "--admin.http-port": ("admin_http_port", "admin port: /health and /metrics"),
    "--storage": ("storage", "span storage backend: memory"),
    "--memory.max-traces": ("memory_max_traces", "traces memory storage keeps; oldest evicted"),
    "--queue.max-spans": ("queue_max_spans", "spans the pipeline queue holds before refusing"),
    "--queue.batch-spans": ("queue_batch_spans", "spans written to storage in one batch at most"),
    "--otlp.max-body-bytes": ("otlp_max_body_bytes", "largest OTLP/HTTP body, after gunzip (413)"),
    "--otlp.grpc-max-message-bytes": ("otlp_grpc_max_message_bytes", "largest OTLP/gRPC message"),
    "--query.base-path": ("query_base_path", "URL prefix for the API and UI, e.g. /jaeger"),
    "--query.ui-dir": ("query_ui_dir", "directory of UI files to serve (default: the built-in UI)"),
    "--shutdown-timeout": ("shutdown_timeout", "seconds to flush queued spans on shutdown"),
    "--log-level": ("log_level", "debug, info, warning or error"),
}

STORAGE_CHOICES = ("memory",)


def env_name(flag: str) -> str:
    return "TRACEMESH_" + flag.lstrip("-").upper().replace(".", "_").replace("-", "_")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Config()
    types = {f.name: f.type for f in fields(Config)}
    for flag, (name, text) in OPTIONS.items():
        default: Any = getattr(defaults, name)
        kind = {"int": int, "float": float, "str": str}[str(types[name])]
        env = env_name(flag)
        if env in os.environ:
            try:
                default = kind(os.environ[env])
            except ValueError:
                parser.error(f"{env}={os.environ[env]!r} is not a valid {kind.__name__}")
        parser.add_argument(
            flag,
            dest=name,
            type=kind,
            default=default,
            metavar=kind.__name__.upper(),
            choices=STORAGE_CHOICES if name == "storage" else None,
            help=f"{text} (env {env}, default {getattr(defaults, name)!r})",
        )


def from_namespace(args: argparse.Namespace) -> Config:
    return Config(**{f.name: getattr(args, f.name) for f in fields(Config)})
