"""Keeps a `Sampler`'s remote strategy fresh: fetches `GET /api/sampling?service=<name>` from the
collector's HTTP port (Jaeger's collector endpoint for client strategies) now and then, as
Jaeger's clients poll their agent. A failed fetch keeps the last strategy (or the configured
percentage, if none came yet), and is logged once until a fetch succeeds again."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote, urlsplit

from tracemesh.mesh.http_client import HttpClient, HttpError
from tracemesh.mesh.sampler import Sampler, parse_strategy
from tracemesh.runtime.tasks import TaskOwner

log = logging.getLogger("tracemesh.mesh.sampling")

DEFAULT_INTERVAL = 60.0  # jaeger-client's sampling refresh interval


class StrategyPoller:
    """Polls `url` (`http://host:port`, the collector's HTTP port, 14268 by default) for the
    strategy of `service` every `interval` seconds and installs it in `sampler`."""

    def __init__(
        self, url: str, service: str, sampler: Sampler, *, interval: float = DEFAULT_INTERVAL
    ) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"the sampling server must be http://host:port, got {url!r}")
        self._client = HttpClient(parts.hostname, parts.port, timeout=min(interval, 5.0))
        self._path = f"{parts.path.rstrip('/') or ''}/api/sampling?service={quote(service)}"
        self._sampler = sampler
        self._interval = interval
        self._tasks = TaskOwner()
        self._failing = False
        self.fetches = 0  # successful fetches
        self.failures = 0

    async def start(self) -> None:
        """Fetch once now (a strategy before the first request, when reachable), then poll."""
        await self.fetch()
        self._tasks.spawn("sampling-strategy-poller", self._run())

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        await self._client.close()

    async def fetch(self) -> bool:
        """Fetch once; True when a strategy was installed."""
        try:
            response = await self._client.request("GET", self._path)
            if response.status != 200:
                raise HttpError(f"HTTP {response.status}")
            strategy = parse_strategy(response.body)
        except (HttpError, ValueError) as exc:
            self.failures += 1
            if not self._failing:
                log.warning("cannot fetch the sampling strategy from %s: %s; keeping %s",
                            self._path, exc, "the last one" if self._sampler.strategy
                            else f"{self._sampler.percentage:g}%")  # fmt: skip
            self._failing = True
            return False
        self._failing = False
        self.fetches += 1
        if strategy != self._sampler.strategy:
            log.info("sampling strategy: %s", strategy)
        self._sampler.strategy = strategy
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.fetch()
