"""A proxy's link to `tracemesh control`: long polls for its namespace's tables, hands each new
version to the proxy, and keeps the last good one while the control plane is away or sends
something it cannot read (logged, then asked again with backoff)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import httpx
import orjson

from tracemesh.mesh.config_file import load_mesh
from tracemesh.mesh.mesh_config import MeshConfig
from tracemesh.mesh.registry import Registry, registry_from_mapping
from tracemesh.mesh.yaml_nodes import ConfigError

log = logging.getLogger("tracemesh.control")

Apply = Callable[[MeshConfig, Registry], None]


class ControlClient:
    def __init__(
        self,
        url: str,
        namespace: str,
        apply: Apply,
        *,
        wait: float = 30.0,
        backoff_max: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/") + "/v1/config"
        self.namespace = namespace
        self.version = 0  # the version applied; 0: none yet
        self.connected = False
        self._apply = apply
        self._wait = wait
        self._backoff_max = backoff_max
        self._task: asyncio.Task[None] | None = None
        self._registry: Registry | None = None
        self._registry_hash = ""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="control-client")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.1
        async with httpx.AsyncClient(timeout=self._wait + 10) as client:
            while True:
                params = {
                    "namespace": self.namespace,
                    "version": str(self.version),
                    "wait": str(self._wait),
                    "registry": self._registry_hash,
                }
                try:
                    answer = await client.get(self.url, params=params)
                    answer.raise_for_status()
                    self.take(answer.content)
                    self.connected, delay = True, 0.1
                except httpx.RemoteProtocolError:
                    # a kept-alive connection the server closed while we were busy: ask again
                    self.connected = False
                    await asyncio.sleep(0.05)
                except (httpx.HTTPError, ConfigError, ValueError, KeyError) as exc:
                    if self.connected:
                        log.warning(
                            "control plane %s: %s; keeping tables version %d",
                            self.url,
                            exc,
                            self.version,
                        )
                    self.connected = False
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff_max)

    def take(self, body: bytes) -> bool:
        """Apply an answer if it is newer; raise (keeping the current tables) if unreadable."""
        data = orjson.loads(body)
        version = int(data["version"])
        if version <= self.version:
            return False
        mesh = load_mesh(data["mesh"], f"control plane tables v{version}")
        if "registry" in data:
            registry = registry_from_mapping(data["registry"])
        elif self._registry is not None and data.get("registry_hash") == self._registry_hash:
            registry = self._registry  # unchanged: the control plane left it out
        else:
            raise ValueError("the answer has no registry and ours is not the current one")
        self._apply(mesh, registry)
        self.version = version
        self._registry, self._registry_hash = registry, str(data.get("registry_hash", ""))
        log.info(
            "tables version %d applied (%d routed services, %d with instances)",
            version,
            len(mesh.routes),
            len(registry.services),
        )
        return True
