"""The Kubernetes API calls the operator makes, on one lightkube `AsyncClient`, with manifests as
plain dicts: server-side apply, get, list, delete, watch and status patches."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from lightkube import ALL_NS, ApiError, AsyncClient, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import OnErrorAction, OnErrorResult, PatchType

from tracemesh.kube.jaeger_resource import Json

log = logging.getLogger("tracemesh.operator")

FIELD_MANAGER = "tracemesh-operator"


def _builtin() -> dict[tuple[str, str], Any]:
    # lightkube registers its own classes for built-in kinds: use those (results are
    # converted back to dicts), and generic ones for the custom resource.
    from lightkube.resources import (
        admissionregistration_v1,
        apps_v1,
        core_v1,
        discovery_v1,
        networking_v1,
    )

    istio = {
        ("networking.istio.io/v1", kind): create_namespaced_resource(
            "networking.istio.io", "v1", kind, plural
        )
        for kind, plural in (
            ("VirtualService", "virtualservices"),
            ("DestinationRule", "destinationrules"),
            ("Gateway", "gateways"),
        )
    }

    return {
        ("apps/v1", "Deployment"): apps_v1.Deployment,
        ("apps/v1", "DaemonSet"): apps_v1.DaemonSet,
        ("v1", "Service"): core_v1.Service,
        ("v1", "ConfigMap"): core_v1.ConfigMap,
        ("v1", "Secret"): core_v1.Secret,
        ("v1", "Namespace"): core_v1.Namespace,
        ("v1", "Pod"): core_v1.Pod,
        ("v1", "Event"): core_v1.Event,
        ("discovery.k8s.io/v1", "EndpointSlice"): discovery_v1.EndpointSlice,
        ("networking.k8s.io/v1", "Ingress"): networking_v1.Ingress,
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): (
            admissionregistration_v1.MutatingWebhookConfiguration
        ),
        ("jaegertracing.io/v1", "Jaeger"): create_namespaced_resource(
            "jaegertracing.io", "v1", "Jaeger", "jaegers"
        ),
        **istio,
    }


_KINDS: dict[tuple[str, str], Any] = {}
CLUSTER_SCOPED = {
    ("v1", "Namespace"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
}


def resource(api_version: str, kind: str) -> Any:
    """lightkube's class for a kind."""
    if not _KINDS:
        _KINDS.update(_builtin())
    return _KINDS[(api_version, kind)]


def _scope(api_version: str, kind: str, namespace: str | None) -> str | None:
    """None means every namespace for a namespaced kind (lightkube would take the kubeconfig's)."""
    if namespace is None and (api_version, kind) not in CLUSTER_SCOPED:
        return ALL_NS
    return namespace


def _plain(obj: Any) -> Json:
    out: Json = obj.to_dict()
    return out


def not_found(exc: ApiError) -> bool:
    return exc.status.code == 404


def _retry_watch(exc: Exception, count: int) -> OnErrorResult:
    """Keep a watch going across API server restarts and expired resource versions."""
    log.warning("watch interrupted (%s), resuming", exc)
    return OnErrorResult(OnErrorAction.RETRY, sleep=min(0.2 * (count + 1), 5.0))


class Cluster:
    def __init__(self, kubeconfig: str = "", timeout: float = 10.0) -> None:
        self._kubeconfig = kubeconfig
        self._timeout = timeout
        self._client: AsyncClient | None = None

    async def start(self) -> None:
        import httpx2

        config = (
            KubeConfig.from_file(self._kubeconfig) if self._kubeconfig else KubeConfig.from_env()
        )
        self._client = AsyncClient(
            config, field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(self._timeout)
        )

    @property
    def client(self) -> AsyncClient:
        assert self._client is not None, "Cluster.start() first"
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def apply(self, manifest: Json) -> Json:
        """Server-side apply as the operator's field manager, taking over conflicting fields."""
        cls = resource(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        obj = await self.client.patch(
            cls,
            meta["name"],
            manifest,
            namespace=meta.get("namespace"),
            patch_type=PatchType.APPLY,
            force=True,
        )
        return _plain(obj)

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Json | None:
        try:
            obj = await self.client.get(resource(api_version, kind), name, namespace=namespace)
        except ApiError as exc:
            if not_found(exc):
                return None
            raise
        return _plain(obj)

    async def list(
        self, api_version: str, kind: str, namespace: str | None, labels: dict[str, str]
    ) -> list[Json]:
        selector: dict[str, Any] = dict(labels)
        items = self.client.list(
            resource(api_version, kind),
            namespace=_scope(api_version, kind, namespace),
            labels=selector,
        )
        return [_plain(item) async for item in items]

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        try:
            await self.client.delete(resource(api_version, kind), name, namespace=namespace)
        except ApiError as exc:
            if not not_found(exc):
                raise

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        body: Any,
        *,
        json_patch: bool = False,
    ) -> Json:
        kind_type = PatchType.JSON if json_patch else PatchType.MERGE
        obj = await self.client.patch(
            resource(api_version, kind), name, body, namespace=namespace, patch_type=kind_type
        )
        return _plain(obj)

    async def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: Json
    ) -> None:
        cls = resource(api_version, kind)
        await self.client.patch(
            cls.Status, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE
        )

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> AsyncIterator[tuple[str, Json]]:
        """Events forever: ADDED for what exists first, then every change."""
        selector: dict[str, Any] | None = dict(labels) if labels else None
        events = self.client.watch(
            resource(api_version, kind),
            namespace=_scope(api_version, kind, namespace),
            labels=selector,
            on_error=_retry_watch,
        )
        async for event, obj in events:
            yield event, _plain(obj)
