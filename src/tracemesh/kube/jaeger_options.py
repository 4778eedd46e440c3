"""Jaeger's command-line options, as a `Jaeger` resource writes them, turned into tracemesh flags.

A resource gives options as nested maps (`{es: {server-urls: ...}}`) or dotted keys
(`{es.server-urls: ...}`), with Jaeger's flag names and value syntax (Go durations such as
`200ms`). Most names are tracemesh's own already; a few are renamed, a few are accepted with
nothing to do, and everything else is reported back, never dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from tracemesh.runtime import config as cfg

# Jaeger name -> tracemesh name, where they differ.
RENAMED = {
    "collector.queue-size": "queue.max-spans",
    "reporter.grpc.host-port": "agent.collector",
    "badger.directory-value": "disk.path",
    "badger.span-store-ttl": "disk.retention",
}
# Jaeger options that need nothing here: tracemesh always does what they ask for.
NOTHING_TO_DO = {
    "collector.otlp.enabled": "OTLP is always received",
    "collector.zipkin.host-port": "Zipkin is always received on 9411",
    "reporter.type": "the agent always reports over OTLP/gRPC",
    "badger.ephemeral": "disk storage is chosen by storage.type",
    "badger.directory-key": "disk storage keeps keys beside values (badger.directory-value)",
    "sampling.strategies-file": "the operator mounts the sampling ConfigMap itself",
}
# Jaeger gives these as Go durations; tracemesh takes seconds.
SECONDS = {
    "es.bulk.flush-interval",
    "es.max-span-age",
    "kafka.producer.timeout",
    "shutdown-timeout",
}
# Flags the operator sets itself: a resource may not move what Services point at.
RESERVED = {
    "host",
    "storage",
    "admin.http-port",
    "query.http-port",
    "otlp.grpc-port",
    "otlp.http-port",
    "collector.grpc-port",
    "collector.http-port",
    "zipkin.http-port",
}

_FIELD_TYPES = {f.name: str(f.type) for f in fields(cfg.Config)}
_KNOWN = {flag.lstrip("-"): name for flag, (name, _) in cfg.OPTIONS.items()}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass
class Flags:
    """The flags for one component, and what could not be taken (for the resource's status)."""

    args: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def flatten(options: Any, prefix: str = "") -> dict[str, Any]:
    """`{es: {server-urls: x}}` and `{es.server-urls: x}` both become `{"es.server-urls": x}`."""
    if not isinstance(options, dict):
        return {prefix: options} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in options.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def go_duration_seconds(text: str) -> float:
    """Go's duration syntax (`1h30m`, `200ms`) or a bare number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)


def _check(name: str, kind: str, text: str) -> str:
    """The value as tracemesh's flag takes it; ValueError when it cannot be one."""
    if kind == "bool":
        return "true" if cfg.parse_bool(text) else "false"
    if kind == "int":
        return str(int(text))
    if kind == "float":
        return repr(float(text))
    if name == "agent_collector" and text.startswith("dns:///"):
        text = text.removeprefix("dns:///")
    return text


def translate(options: Any, where: str) -> Flags:
    """Jaeger options of one part of the resource (`where`, e.g. `spec.collector.options`) ->
    tracemesh flags, in a stable order."""
    out = Flags()
    if options is not None and not isinstance(options, dict):
        out.errors.append(f"{where}: must be a map of option names to values")
        return out
    for jaeger_name, value in sorted(flatten(options or {}).items()):
        name = RENAMED.get(jaeger_name, jaeger_name)
        if jaeger_name in NOTHING_TO_DO:
            out.warnings.append(f"{where}.{jaeger_name}: ignored ({NOTHING_TO_DO[jaeger_name]})")
            continue
        if name in RESERVED:
            out.warnings.append(f"{where}.{jaeger_name}: ignored (set by the operator)")
            continue
        if name not in _KNOWN:
            out.warnings.append(f"{where}.{jaeger_name}: unknown option, not applied")
            continue
        field_name = _KNOWN[name]
        text = _text(value)
        try:
            if jaeger_name in SECONDS:
                text = repr(go_duration_seconds(text))
            text = _check(field_name, _FIELD_TYPES[field_name], text)
        except ValueError as exc:
            out.errors.append(f"{where}.{jaeger_name}: {exc}")
            continue
        if name == "agent.collector" and text.endswith(":14250"):
            # Jaeger's agent reports to the collector's Jaeger gRPC port; ours speaks OTLP.
            text = text.removesuffix(":14250") + ":4317"
            out.warnings.append(f"{where}.{jaeger_name}: port 14250 replaced by OTLP's 4317")
        out.args.append(f"--{name}={text}")
    return out
