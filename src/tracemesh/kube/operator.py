"""`tracemesh operator`: turns `Jaeger` resources into running tracemesh roles, and answers the
webhook that injects agents into Deployments and mesh sidecars into Pods.

Level-triggered: a resource is reconciled in full when its spec changes (a new generation), when
an object it owns is deleted, and at every resync; a worker reads the resource, renders every
object it needs, applies them server-side, deletes what it owns and no longer needs, and writes
the status. A change in an owned workload's readiness only refreshes the status from the watched
object. Deleting a resource needs nothing here: its objects carry owner references and the
garbage collector removes them. The webhook answers from the operator's in-memory view of the
Jaeger resources and namespaces; the operator keeps the webhook's certificate current.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import ssl
import time
from dataclasses import dataclass, field

from lightkube import ApiError
from prometheus_client import CollectorRegistry, Counter, Histogram

from tracemesh.kube import certs, render
from tracemesh.kube.cluster import Cluster
from tracemesh.kube.injection import choose, review
from tracemesh.kube.jaeger_resource import JaegerInstance, Json, read
from tracemesh.kube.sidecar_injection import ProxySettings, review_pod
from tracemesh.kube.status import build as build_status
from tracemesh.kube.webhook import (
    PATH,
    POD_PATH,
    WebhookMetrics,
    build_app,
    load_chain,
    server_context,
)
from tracemesh.runtime import ports
from tracemesh.runtime.admin import build_app as admin_app
from tracemesh.runtime.http_server import serve
from tracemesh.runtime.lifecycle import Listener
from tracemesh.runtime.tasks import TaskOwner

log = logging.getLogger("tracemesh.operator")

JAEGER = ("jaegertracing.io/v1", "Jaeger")
SECRET = ("v1", "Secret")
WEBHOOK_CONFIG = ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
Key = tuple[str, str]  # (namespace, name)
CA_GRACE = 2.0  # seconds between publishing a new CA and serving the certificate it signed


@dataclass
class Settings:
    namespace: str = "tracemesh"  # where the operator runs: its webhook Secret lives here
    watch_namespaces: list[str] = field(default_factory=list)  # empty: the whole cluster
    image: str = "tracemesh/tracemesh:latest"
    kubeconfig: str = ""
    host: str = "0.0.0.0"
    webhook_port: int = 9443
    webhook_service: str = "tracemesh-operator-webhook"
    webhook_configuration: str = "tracemesh-operator"
    webhook_hosts: list[str] = field(default_factory=list)  # extra names in the certificate
    cert_validity: float = 365 * 86400.0
    cert_check_interval: float = 30.0
    admin_port: int = 8383
    resync_interval: float = 300.0
    workers: int = 4
    mesh_collector: str = "jaeger-collector.istio-system.svc:4317"  # Istio's usual addon
    mesh_sampling: float = 100.0

    @property
    def cert_hosts(self) -> list[str]:
        svc, ns = self.webhook_service, self.namespace
        return [
            f"{svc}.{ns}.svc",
            svc,
            f"{svc}.{ns}",
            f"{svc}.{ns}.svc.cluster.local",
            *self.webhook_hosts,
        ]

    @property
    def secret_name(self) -> str:
        return f"{self.webhook_service}-cert"


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.reconciles = Counter(
            "tracemesh_operator_reconciles",
            "Reconciles, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "tracemesh_operator_reconcile_seconds",
            "Time to reconcile one Jaeger resource.",
            registry=self.registry,
        )
        self.webhook = WebhookMetrics(self.registry)


class WorkQueue:
    """Keys to reconcile, each at most once in the queue and never in two workers at once; a
    key that changes while being worked on is queued again when its worker finishes."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._again: set[Key] = set()

    def add(self, key: Key) -> None:
        if key in self._active:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def take(self) -> Key:
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Key) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)


class Operator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cluster = Cluster(settings.kubeconfig)
        self.metrics = OperatorMetrics()
        self.tasks = TaskOwner()
        self.queue = WorkQueue()
        self.instances: dict[Key, JaegerInstance] = {}
        self.resources: dict[Key, Json] = {}  # the latest of each resource, as watched
        self.workloads: dict[Key, dict[tuple[str, str], Json]] = {}  # (kind, name) -> object
        self.reconciled: dict[Key, int] = {}  # generation last reconciled in full
        self.full: set[Key] = set()  # keys queued for a full reconcile
        self.namespace_annotations: dict[str, dict[str, str]] = {}
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.listeners: list[Listener] = []
        self._ca_bundle = b""
        self._tls: ssl.SSLContext | None = None
        self.webhook_port = self.admin_port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        await self.cluster.start()
        bundle = await self._current_certificate()
        self._tls = server_context(bundle.cert, bundle.key)
        await self._publish_ca(bundle.ca_bundle)
        reviewers = {
            PATH: lambda body: review(body, self.instances.values(), self.namespace_annotations),
            POD_PATH: lambda body: review_pod(body, self.namespace_labels, self.proxy_settings),
        }
        app = build_app(reviewers, self.metrics.webhook)
        webhook, listener = await serve(
            "webhook", app, s.host, s.webhook_port, self.tasks, PATH, tls=self._tls
        )
        admin, admin_listener = await serve(
            "admin",
            admin_app(self.metrics, self._health),
            s.host,
            s.admin_port,
            self.tasks,
            "/health /metrics",
        )
        self.webhook_port, self.admin_port = webhook.port, admin.port
        self.listeners += [listener, admin_listener]
        scopes: list[str | None] = list(s.watch_namespaces) or [None]
        for scope in scopes:
            self.tasks.spawn(f"watch-jaegers:{scope or '*'}", self._watch_jaegers(scope))
            self.tasks.spawn(f"watch-workloads:{scope or '*'}", self._watch_owned(scope))
        self.tasks.spawn("watch-namespaces", self._watch_namespaces())
        for number in range(s.workers):
            self.tasks.spawn(f"reconcile-{number}", self._work())
        self.tasks.spawn("resync", self._resync())
        self.tasks.spawn("certificate", self._keep_certificate())

    async def stop(self) -> None:
        for item in self.listeners:
            await item.stop()
        await self.tasks.cancel_all()
        await self.cluster.close()

    async def _health(self) -> dict[str, bool]:
        return {
            "tasks": not self.tasks.failed,
            **{item.name: item.serving() for item in self.listeners},
        }

    # -- watches -----------------------------------------------------------------------------

    async def _watch_jaegers(self, namespace: str | None) -> None:
        async for event, obj in self.cluster.watch(*JAEGER, namespace=namespace):
            meta = obj.get("metadata") or {}
            key = (meta.get("namespace", ""), meta.get("name", ""))
            if event == "DELETED":
                self.instances.pop(key, None)
                self.resources.pop(key, None)
                self.workloads.pop(key, None)
                self.reconciled.pop(key, None)
                continue
            self.resources[key] = obj
            self.instances[key] = read(obj, self.settings.image)
            # a status write (ours) leaves the generation alone: nothing to reconcile
            if meta.get("generation") != self.reconciled.get(key):
                self.request(key, full=True)

    async def _watch_owned(self, namespace: str | None) -> None:
        """A workload we made changed (its readiness): its resource's status is refreshed. An
        object we made was deleted: its resource is reconciled. Other edits to our objects are
        undone at the next resync."""
        labels = {"app.kubernetes.io/managed-by": render.MANAGED_BY}

        async def follow(api_version: str, kind: str) -> None:
            async for event, obj in self.cluster.watch(api_version, kind, namespace, labels):
                meta = obj.get("metadata") or {}
                owner = (meta.get("labels") or {}).get("app.kubernetes.io/instance")
                key = (meta.get("namespace", ""), owner or "")
                if key not in self.instances:
                    continue
                if event == "DELETED":
                    self.workloads.get(key, {}).pop((kind, meta.get("name", "")), None)
                    self.request(key, full=True)
                elif kind in ("Deployment", "DaemonSet"):
                    obj.setdefault("kind", kind)
                    self.workloads.setdefault(key, {})[(kind, meta.get("name", ""))] = obj
                    self.request(key, full=False)

        await asyncio.gather(*(follow(v, k) for v, k in render.MANAGED_KINDS))

    def request(self, key: Key, *, full: bool) -> None:
        """Queue `key`: a full reconcile, or only a status refresh from the watched workloads."""
        if full:
            self.full.add(key)
        self.queue.add(key)

    async def _watch_namespaces(self) -> None:
        async for event, obj in self.cluster.watch("v1", "Namespace"):
            meta = obj.get("metadata") or {}
            name = meta.get("name", "")
            if event == "DELETED":
                self.namespace_annotations.pop(name, None)
                self.namespace_labels.pop(name, None)
            else:
                self.namespace_annotations[name] = dict(meta.get("annotations") or {})
                self.namespace_labels[name] = dict(meta.get("labels") or {})

    def proxy_settings(self, namespace: str) -> ProxySettings:
        """An injected proxy reports to the Jaeger instance its namespace would get an agent
        from (its own, else the cluster's only one), else to `--mesh.collector`."""
        s = self.settings
        chosen = choose("true", namespace, self.instances.values()).instance
        collector = s.mesh_collector
        if chosen is not None:
            collector = f"{chosen.collector_service}.{chosen.namespace}.svc:{ports.OTLP_GRPC}"
        control = f"http://tracemesh-control.{s.namespace}.svc:15010"
        return ProxySettings(
            image=s.image, collector=collector, sampling=s.mesh_sampling, control=control
        )

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            for key in list(self.instances):
                self.request(key, full=True)

    # -- reconcile ---------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            key = await self.queue.take()
            full = key in self.full or key not in self.reconciled
            self.full.discard(key)
            started = time.perf_counter()
            try:
                outcome = await (self.reconcile(*key) if full else self.refresh_status(key))
            except Exception:  # one resource's failure must not stop the others'
                log.exception("reconcile %s/%s failed", *key)
                outcome = "error"
                self.tasks.spawn(f"retry:{key[0]}/{key[1]}", self._later(key, 5.0))
            finally:
                self.queue.done(key)
            self.metrics.reconciles.labels(outcome).inc()
            if full:
                self.metrics.reconcile_seconds.observe(time.perf_counter() - started)

    async def _later(self, key: Key, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.request(key, full=True)

    async def refresh_status(self, key: Key) -> str:
        inst, obj = self.instances.get(key), self.resources.get(key)
        if inst is None or obj is None or inst.errors:
            return "skipped"
        given = obj.get("status")
        previous: Json = given if isinstance(given, dict) else {}
        workloads = list(self.workloads.get(key, {}).values())
        await self._write_status(inst, previous, build_status(inst, previous, workloads=workloads))
        return "status"

    async def reconcile(self, namespace: str, name: str) -> str:
        obj = await self.cluster.get(*JAEGER, name, namespace)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            self.instances.pop((namespace, name), None)
            return "gone"
        inst = read(obj, self.settings.image)
        self.instances[(namespace, name)] = inst
        given = obj.get("status")
        previous: Json = given if isinstance(given, dict) else {}
        if inst.errors:
            self.reconciled[(namespace, name)] = inst.generation
            log.warning("Jaeger %s/%s: %s", namespace, name, "; ".join(inst.errors))
            await self._write_status(inst, previous, build_status(inst, previous))
            return "invalid"
        desired = render.objects(inst)
        try:
            applied = await asyncio.gather(*(self.cluster.apply(m) for m in desired))
            await self._prune(inst, desired)
        except ApiError as exc:
            message = f"the API server refused an object: {exc.status.message}"
            log.warning("Jaeger %s/%s: %s", namespace, name, message)
            await self._write_status(inst, previous, build_status(inst, previous, error=message))
            raise
        workloads = [o for o in applied if o.get("kind") in ("Deployment", "DaemonSet")]
        self.workloads[(namespace, name)] = {
            (o["kind"], o["metadata"]["name"]): o for o in workloads
        }
        self.reconciled[(namespace, name)] = inst.generation
        await self._write_status(inst, previous, build_status(inst, previous, workloads=workloads))
        return "applied"

    async def _prune(self, inst: JaegerInstance, desired: list[Json]) -> None:
        """Delete objects this resource owns that its current spec no longer asks for."""
        wanted = {(m["kind"], m["metadata"]["name"]) for m in desired}
        labels = {
            "app.kubernetes.io/instance": inst.name,
            "app.kubernetes.io/managed-by": render.MANAGED_BY,
        }
        for api_version, kind in render.MANAGED_KINDS:
            for item in await self.cluster.list(api_version, kind, inst.namespace, labels):
                meta = item.get("metadata") or {}
                owners = {o.get("uid") for o in meta.get("ownerReferences") or []}
                if inst.uid in owners and (kind, meta.get("name")) not in wanted:
                    log.info(
                        "Jaeger %s/%s: deleting %s %s",
                        inst.namespace,
                        inst.name,
                        kind,
                        meta.get("name"),
                    )
                    await self.cluster.delete(api_version, kind, meta["name"], inst.namespace)

    async def _write_status(self, inst: JaegerInstance, previous: Json, status: Json) -> None:
        if all(previous.get(k) == v for k, v in status.items() if k != "conditions") and [
            {k: v for k, v in c.items() if k != "lastTransitionTime"}
            for c in previous.get("conditions") or []
        ] == [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status["conditions"]
        ]:
            return  # unchanged: no write, so no event that would reconcile again
        await self.cluster.patch_status(*JAEGER, inst.name, inst.namespace, status)

    # -- the webhook's certificate -----------------------------------------------------------

    async def _current_certificate(self) -> certs.Bundle:
        """The certificate in the operator's Secret, renewed first when it is due."""
        s = self.settings
        secret = await self.cluster.get(*SECRET, s.secret_name, s.namespace)
        data = {k: base64.b64decode(v) for k, v in ((secret or {}).get("data") or {}).items()}
        validity = datetime.timedelta(seconds=s.cert_validity)
        if secret is not None and not certs.due(data.get("tls.crt", b""), s.cert_hosts, validity):
            return certs.Bundle(
                ca_cert=data.get("ca.crt", b""),
                ca_key=data.get("ca.key", b""),
                cert=data["tls.crt"],
                key=data.get("tls.key", b""),
                ca_bundle=data.get("ca-bundle.crt", b""),
            )
        bundle = certs.issue(s.cert_hosts, validity, previous_ca=data.get("ca.crt", b""))
        files = {
            "ca.crt": bundle.ca_cert,
            "ca.key": bundle.ca_key,
            "tls.crt": bundle.cert,
            "tls.key": bundle.key,
            "ca-bundle.crt": bundle.ca_bundle,
        }
        await self.cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": s.secret_name,
                    "namespace": s.namespace,
                    "labels": {"app.kubernetes.io/part-of": "tracemesh"},
                },
                "data": {k: base64.b64encode(v).decode() for k, v in files.items()},
            }
        )
        log.info("webhook certificate issued, renewal due %s", certs.renew_at(bundle.cert))
        return bundle

    async def _publish_ca(self, ca_bundle: bytes) -> None:
        """Put the CA bundle into every webhook of the configuration (when it differs)."""
        name = self.settings.webhook_configuration
        self._ca_bundle = ca_bundle
        config = await self.cluster.get(*WEBHOOK_CONFIG, name)
        if config is None:
            log.warning(
                "MutatingWebhookConfiguration %s not found: agents are not injected "
                "until it exists (tracemesh manifests prints it)",
                name,
            )
            return
        encoded = base64.b64encode(ca_bundle).decode()
        ops = [
            {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": encoded}
            for i, hook in enumerate(config.get("webhooks") or [])
            if (hook.get("clientConfig") or {}).get("caBundle") != encoded
        ]
        if ops:
            await self.cluster.patch(*WEBHOOK_CONFIG, name, None, ops, json_patch=True)
            log.info("webhook CA bundle published to %s", name)

    async def _keep_certificate(self) -> None:
        """Renew the certificate when due and keep the configuration's CA bundle current (a
        re-applied configuration may have lost it)."""
        while True:
            await asyncio.sleep(self.settings.cert_check_interval)
            try:
                bundle = await self._current_certificate()
                renewed = bundle.ca_bundle != self._ca_bundle
                await self._publish_ca(bundle.ca_bundle)
                if renewed:
                    # the API server must trust the new CA before it is served: its webhook
                    # clients follow a changed caBundle within moments
                    await asyncio.sleep(CA_GRACE)
                    assert self._tls is not None
                    load_chain(self._tls, bundle.cert, bundle.key)
                    log.info("webhook serves the renewed certificate")
            except (ApiError, OSError) as exc:
                log.warning("webhook certificate check failed (retrying): %s", exc)
