"""`tracemesh control`: the mesh's control plane. It watches EndpointSlices, Pods, Istio's
VirtualServices, DestinationRules and Gateways, and the mesh settings ConfigMap, keeps each
namespace's tables (istio_routes) with a version, and hands them to proxies over HTTP long polls:
`GET /v1/config?namespace=NS&version=V[&registry=HASH]` answers at once when the namespace's
version is past V, else when it changes or after `wait` seconds, with JSON: the version, the mesh
document as YAML, the registry as an object (left out for a proxy that holds that one already),
and the problems. A proxy keeps its last good tables while the
control plane is away and asks again with its version when it returns.

A VirtualService that cannot be applied is left out of the tables and reported as a Kubernetes
Event on it (reason `RoutingNotApplied`, the field in the message).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import yaml
from lightkube import ApiError
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tracemesh.kube.cluster import Cluster
from tracemesh.kube.istio_routes import Problem, Tables, tables
from tracemesh.kube.jaeger_resource import Json
from tracemesh.runtime.admin import build_app as admin_app
from tracemesh.runtime.http_server import serve
from tracemesh.runtime.lifecycle import Listener
from tracemesh.runtime.tasks import TaskOwner

log = logging.getLogger("tracemesh.control")

ISTIO = "networking.istio.io/v1"
WATCHED = (
    ("v1", "Service"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("v1", "Pod"),
    (ISTIO, "VirtualService"),
    (ISTIO, "DestinationRule"),
    (ISTIO, "Gateway"),
)
DEBOUNCE = 0.02  # seconds: a burst of events (a rollout) becomes one new version
MAX_WAIT = 60.0


@dataclass
class ControlSettings:
    namespace: str = "tracemesh"  # where the mesh settings ConfigMap lives
    watch_namespaces: list[str] = field(default_factory=list)
    kubeconfig: str = ""
    host: str = "0.0.0.0"
    port: int = 15010  # Istio's plain-text configuration port
    admin_port: int = 15014
    settings_configmap: str = "tracemesh-mesh"


class ControlMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.versions = Counter(
            "tracemesh_control_versions",
            "New table versions, by namespace.",
            ["namespace"],
            registry=self.registry,
        )
        self.rejected = Gauge(
            "tracemesh_control_rejected_resources",
            "Routing resources left out of the tables.",
            registry=self.registry,
        )
        self.waiting = Gauge(
            "tracemesh_control_waiting_proxies",
            "Proxies waiting for a change.",
            registry=self.registry,
        )


@dataclass
class Snapshot:
    """A namespace's tables as answered: with the registry, and without it for a proxy that
    already holds this registry (`registry_hash`): a route change then costs it a small parse."""

    version: int
    body: bytes
    routes_only: bytes
    mesh: str
    registry_hash: str
    problems: list[Json]


class ControlPlane:
    def __init__(self, settings: ControlSettings) -> None:
        self.settings = settings
        self.cluster = Cluster(settings.kubeconfig)
        self.metrics = ControlMetrics()
        self.tasks = TaskOwner()
        self.listeners: list[Listener] = []
        self.objects: dict[str, dict[tuple[str, str], Json]] = defaultdict(dict)  # kind -> ...
        self.tracing: Json = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.version = 0
        self.changed = asyncio.Condition()
        self._dirty: set[str] = set()
        self._kick = asyncio.Event()
        self._reported: set[Problem] = set()
        self.closing = False

    async def start(self) -> None:
        s = self.settings
        await self.cluster.start()
        server, listener = await serve(
            "config", self.app(), s.host, s.port, self.tasks, "/v1/config"
        )
        admin, admin_listener = await serve(
            "admin",
            admin_app(self.metrics, self._health),
            s.host,
            s.admin_port,
            self.tasks,
            "/health /metrics",
        )
        self.port, self.admin_port = server.port, admin.port
        self.listeners += [listener, admin_listener]
        scopes: list[str | None] = list(s.watch_namespaces) or [None]
        for scope in scopes:
            for api_version, kind in WATCHED:
                self.tasks.spawn(
                    f"watch:{kind}:{scope or '*'}", self._watch(api_version, kind, scope)
                )
        self.tasks.spawn("settings", self._watch_settings())
        self.tasks.spawn("build", self._build())

    async def stop(self) -> None:
        self.closing = True  # waiting long polls answer now, so the listeners can close
        async with self.changed:
            self.changed.notify_all()
        for item in self.listeners:
            await item.stop()
        await self.tasks.cancel_all()
        await self.cluster.close()

    async def _health(self) -> dict[str, bool]:
        return {"tasks": not self.tasks.failed, **{i.name: i.serving() for i in self.listeners}}

    # -- watching --------------------------------------------------------------------------------

    async def _watch(self, api_version: str, kind: str, namespace: str | None) -> None:
        async for event, obj in self.cluster.watch(api_version, kind, namespace):
            meta = obj.get("metadata") or {}
            key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
            if kind == "Pod" and event != "DELETED":
                old = self.objects[kind].get(key)
                if old is not None and (old.get("metadata") or {}).get("labels") == meta.get(
                    "labels"
                ):  # only labels matter for Pods: status churn is not a new version
                    continue
            if event == "DELETED":
                self.objects[kind].pop(key, None)
            else:
                self.objects[kind][key] = obj
            self._dirty.add(key[0])
            self._kick.set()

    async def _watch_settings(self) -> None:
        s = self.settings
        async for event, obj in self.cluster.watch("v1", "ConfigMap", s.namespace):
            if (obj.get("metadata") or {}).get("name") != s.settings_configmap:
                continue
            text = ((obj.get("data") or {}).get("mesh") or "") if event != "DELETED" else ""
            try:
                data = yaml.safe_load(text) or {}
                tracing = data.get("tracing") or (data.get("defaultConfig") or {}).get("tracing")
                self.tracing = dict(tracing or {})
            except (yaml.YAMLError, AttributeError) as exc:
                log.warning(
                    "ConfigMap %s/%s: data.mesh is not a mesh settings document (%s); "
                    "keeping the previous settings",
                    s.namespace,
                    s.settings_configmap,
                    exc,
                )
                continue
            self._dirty.update(self._namespaces())
            self._kick.set()

    def _namespaces(self) -> set[str]:
        return {key[0] for objects in self.objects.values() for key in objects} | set(
            self.snapshots
        )

    # -- building --------------------------------------------------------------------------------

    async def _build(self) -> None:
        while True:
            await self._kick.wait()
            await asyncio.sleep(DEBOUNCE)
            self._kick.clear()
            dirty, self._dirty = self._dirty, set()
            changed = False
            for namespace in sorted(dirty):
                changed |= await self._rebuild(namespace)
            if changed:
                async with self.changed:
                    self.changed.notify_all()

    def _in(self, kind: str, namespace: str) -> list[Json]:
        return [o for (ns, _), o in self.objects[kind].items() if ns == namespace]

    def compute(self, namespace: str) -> Tables:
        labels = {
            name: dict((pod.get("metadata") or {}).get("labels") or {})
            for (ns, name), pod in self.objects["Pod"].items()
            if ns == namespace
        }
        return tables(
            namespace,
            self._in("EndpointSlice", namespace),
            labels,
            self._in("VirtualService", namespace),
            self._in("DestinationRule", namespace),
            self._in("Gateway", namespace),
            self.tracing,
            self._in("Service", namespace),
        )

    async def _rebuild(self, namespace: str) -> bool:
        built = self.compute(namespace)
        mesh = yaml.safe_dump(built.mesh, sort_keys=True)
        registry = built.registry
        old = self.snapshots.get(namespace)
        problems = [{"kind": p.kind, "name": p.name, "message": p.message} for p in built.problems]
        registry_json = orjson.dumps(registry, option=orjson.OPT_SORT_KEYS)
        registry_hash = hashlib.sha256(registry_json).hexdigest()[:16]
        if old is not None and (old.mesh, old.registry_hash, old.problems) == (
            mesh,
            registry_hash,
            problems,
        ):
            return False
        self.version += 1
        head = {
            "version": self.version,
            "namespace": namespace,
            "mesh": mesh,
            "registry_hash": registry_hash,
            "problems": problems,
        }
        self.snapshots[namespace] = Snapshot(
            self.version,
            orjson.dumps({**head, "registry": orjson.Fragment(registry_json)}),
            orjson.dumps(head),
            mesh,
            registry_hash,
            problems,
        )
        self.metrics.versions.labels(namespace).inc()
        current = {p for p in self._reported if p.namespace != namespace} | set(built.problems)
        self.metrics.rejected.set(len(current))
        for problem in set(built.problems) - self._reported:
            await self._report(problem)
        self._reported = current
        return True

    async def _report(self, problem: Problem) -> None:
        log.warning(
            "%s %s/%s not applied: %s",
            problem.kind,
            problem.namespace,
            problem.name,
            problem.message,
        )
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{problem.name}.tracemesh-{self.version}",
                "namespace": problem.namespace,
            },
            "involvedObject": {
                "apiVersion": ISTIO,
                "kind": problem.kind,
                "name": problem.name,
                "namespace": problem.namespace,
            },
            "reason": "RoutingNotApplied",
            "message": problem.message[:1024],
            "type": "Warning",
            "source": {"component": "tracemesh-control"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.cluster.apply(event)
        except ApiError as exc:
            log.warning("could not record the Event: %s", exc.status.message)

    # -- serving ---------------------------------------------------------------------------------

    def app(self) -> Starlette:
        async def config(request: Request) -> Response:
            namespace = request.query_params.get("namespace", "")
            try:
                known = int(request.query_params.get("version", "0"))
                wait = min(float(request.query_params.get("wait", "30")), MAX_WAIT)
            except ValueError:
                return Response(
                    b'{"error": "version and wait must be numbers"}',
                    400,
                    media_type="application/json",
                )
            if not namespace:
                return Response(
                    b'{"error": "namespace is required"}', 400, media_type="application/json"
                )
            snapshot = self.snapshots.get(namespace)
            if snapshot is None or snapshot.version <= known:
                self.metrics.waiting.inc()
                try:
                    async with self.changed:
                        await asyncio.wait_for(
                            self.changed.wait_for(
                                lambda: (
                                    (s := self.snapshots.get(namespace)) is not None
                                    and s.version > known
                                )
                            ),
                            wait,
                        )
                except TimeoutError:
                    pass
                finally:
                    self.metrics.waiting.dec()
                snapshot = self.snapshots.get(namespace)
            if snapshot is None:  # nothing known of the namespace yet: empty tables
                empty = {
                    "version": 0,
                    "namespace": namespace,
                    "mesh": "{}\n",
                    "registry": {},
                    "problems": [],
                }
                return Response(orjson.dumps(empty), media_type="application/json")
            held = request.query_params.get("registry", "")
            body = snapshot.routes_only if held == snapshot.registry_hash else snapshot.body
            return Response(body, media_type="application/json")

        return Starlette(routes=[Route("/v1/config", config)])
