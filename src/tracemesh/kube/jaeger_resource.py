"""A `jaegertracing.io/v1` `Jaeger` resource read as Jaeger's operator reads it, with what
tracemesh runs for it and everything it could not take spelled out for the resource's status.

The reading follows Jaeger's operator where a resource leaves things open: an empty or unknown
strategy is `allInOne`; `memory` storage with another strategy falls back to `allInOne` (separate
processes cannot share memory); `badger` is tracemesh's disk store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tracemesh.kube.jaeger_options import Flags, translate

Json = dict[str, Any]

ALL_IN_ONE, PRODUCTION, STREAMING = "allInOne", "production", "streaming"
STORAGE_TYPES = ("memory", "disk", "elasticsearch", "kafka")
STORAGE_ALIASES = {"badger": "disk"}
COMPONENTS = ("allInOne", "collector", "query", "ingester", "agent")
DEFAULT_SAMPLING: Json = {"default_strategy": {"type": "probabilistic", "param": 1}}


@dataclass
class Component:
    """One part of the deployment (`allInOne`, `collector`, `query`, `ingester`, `agent`)."""

    image: str
    replicas: int
    flags: Flags
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    resources: Json = field(default_factory=dict)


@dataclass
class JaegerInstance:
    """What a resource asks for, settled: names, strategy, storage, parts and their flags."""

    name: str
    namespace: str
    uid: str
    generation: int
    strategy: str
    storage_type: str
    storage_flags: Flags
    components: dict[str, Component]
    agent_strategy: str  # "Sidecar" (injected by annotation) or "DaemonSet"
    ingress: Json
    sampling: Json
    annotations: dict[str, str]
    labels: dict[str, str]
    secret_name: str
    volumes: list[Json]  # spec.volumes and spec.volumeMounts: added to every backend Pod
    volume_mounts: list[Json]
    warnings: list[str]
    errors: list[str]

    @property
    def collector_service(self) -> str:
        return f"{self.name}-collector"

    @property
    def collector_headless(self) -> str:
        return f"{self.name}-collector-headless"


def _strategy(text: Any) -> str:
    word = str(text or "").replace("-", "").replace("_", "").lower()
    return {"production": PRODUCTION, "streaming": STREAMING}.get(word, ALL_IN_ONE)


def _string_map(value: Any, where: str, errors: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(f"{where}: must be a map of strings")
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _image(requested: Any, default: str, where: str, warnings: list[str]) -> str:
    """Jaeger's images run Jaeger, not tracemesh: they are replaced, and the status says so."""
    if not requested:
        return default
    text = str(requested)
    if "jaegertracing/" in text or text.split("/")[-1].startswith("jaeger"):
        warnings.append(f"{where}: {text} replaced by {default} (tracemesh runs Jaeger's roles)")
        return default
    return text


def _map(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _maps(value: Any, where: str, errors: list[str]) -> list[Json]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        errors.append(f"{where}: must be a list of objects")
        return []
    return value


def _replicas(value: Any, where: str, errors: list[str]) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors.append(f"{where}: must be a whole number, 0 or more")
        return 1
    return value


def read(resource: Json, default_image: str) -> JaegerInstance:
    """The resource as tracemesh will deploy it. Never raises for a bad spec: problems go to
    `errors` (nothing is deployed) or `warnings` (deployed, with the difference stated)."""
    meta = resource.get("metadata") or {}
    spec = resource.get("spec") or {}
    warnings: list[str] = []
    errors: list[str] = []
    if not isinstance(spec, dict):
        errors.append("spec: must be a map")
        spec = {}
    strategy = _strategy(spec.get("strategy"))
    word = str(spec.get("strategy") or "allinone").replace("-", "").replace("_", "").lower()
    if strategy == ALL_IN_ONE and word != "allinone":
        warnings.append(f"spec.strategy: {spec.get('strategy')!r} unknown, allInOne used")
    storage = spec.get("storage") or {}
    if not isinstance(storage, dict):
        errors.append("spec.storage: must be a map")
        storage = {}
    raw_type = str(storage.get("type") or "memory").lower()
    storage_type = STORAGE_ALIASES.get(raw_type, raw_type)
    if raw_type in STORAGE_ALIASES:
        warnings.append(f"spec.storage.type: {raw_type} runs as tracemesh's {storage_type} store")
    if storage_type not in STORAGE_TYPES:
        errors.append(
            f"spec.storage.type: {raw_type!r} is not supported "
            f"(one of {', '.join(STORAGE_TYPES)}, or badger)"
        )
    if storage_type == "memory" and strategy != ALL_IN_ONE:
        warnings.append(
            f"spec.strategy: {strategy} needs storage that processes share; memory "
            "storage runs allInOne"
        )
        strategy = ALL_IN_ONE
    if storage_type == "disk" and strategy != ALL_IN_ONE:
        errors.append(
            "spec.storage.type: disk runs only with strategy allInOne (its files are "
            "not shared between Pods)"
        )
    if strategy == STREAMING and storage_type != "elasticsearch":
        errors.append(
            "spec.strategy: streaming needs spec.storage.type elasticsearch (the "
            "store the ingester writes)"
        )
    storage_flags = translate(storage.get("options"), "spec.storage.options")

    components: dict[str, Component] = {}
    for name in COMPONENTS:
        part = spec.get(name) or {}
        where = f"spec.{name}"
        if not isinstance(part, dict):
            errors.append(f"{where}: must be a map")
            part = {}
        components[name] = Component(
            image=_image(part.get("image"), default_image, f"{where}.image", warnings),
            replicas=_replicas(part.get("replicas"), f"{where}.replicas", errors),
            flags=translate(part.get("options"), f"{where}.options"),
            annotations=_string_map(part.get("annotations"), f"{where}.annotations", errors),
            labels=_string_map(part.get("labels"), f"{where}.labels", errors),
            resources=_map(part.get("resources")),
        )
    for flags in (storage_flags, *(c.flags for c in components.values())):
        warnings.extend(flags.warnings)
        errors.extend(flags.errors)

    agent = _map(spec.get("agent"))
    agent_strategy = (
        "DaemonSet" if str(agent.get("strategy", "")).lower() == "daemonset" else "Sidecar"
    )
    ingress = _map(spec.get("ingress"))
    sampling = _map(spec.get("sampling")).get("options")
    if sampling is not None and not isinstance(sampling, dict):
        errors.append("spec.sampling.options: must be a map (Jaeger's strategies JSON)")
        sampling = None
    try:
        json.dumps(sampling)
    except (TypeError, ValueError):
        errors.append("spec.sampling.options: cannot be written as JSON")
        sampling = None
    return JaegerInstance(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation", 0) or 0),
        strategy=strategy,
        storage_type=storage_type,
        storage_flags=storage_flags,
        components=components,
        agent_strategy=agent_strategy,
        ingress=ingress,
        sampling=sampling or DEFAULT_SAMPLING,
        annotations=_string_map(spec.get("annotations"), "spec.annotations", errors),
        labels=_string_map(spec.get("labels"), "spec.labels", errors),
        secret_name=str(storage.get("secretName") or ""),
        volumes=_maps(spec.get("volumes"), "spec.volumes", errors),
        volume_mounts=_maps(spec.get("volumeMounts"), "spec.volumeMounts", errors),
        warnings=warnings,
        errors=errors,
    )
