"""One small HTTP client for Elasticsearch 7/8/9 and OpenSearch 1/2/3, and the dialect it speaks.

The dialect difference is Jaeger's: Elasticsearch 8+ gets composable index templates, everything
older and every OpenSearch gets legacy templates and Jaeger's 7.x mappings. Requests go to the
configured URLs in turn; a URL that cannot be reached is skipped for the next one.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from tracemesh.storage.api import StorageError
from tracemesh.storage.elasticsearch.config import ElasticConfig

# httpx logs every request at INFO: a line per bulk and per search costs CPU and buries our logs
logging.getLogger("httpx").setLevel(logging.WARNING)


class ElasticError(StorageError):
    """The cluster answered with an error status."""

    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:1000]}")
        self.status = status
        self.body = body

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500


class Unreachable(StorageError):
    """No configured URL could be reached."""


@dataclass(frozen=True, slots=True)
class Dialect:
    distribution: str  # "elasticsearch" or "opensearch"
    version: str  # "8.17.0"

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0] or 0)

    @property
    def mapping_version(self) -> int:
        """Which of Jaeger's mapping sets applies: 7 (legacy templates) or 8 (composable)."""
        if self.distribution == "opensearch":
            return 7
        return 8 if self.major >= 8 else 7


class ElasticClient:
    def __init__(self, config: ElasticConfig) -> None:
        self._urls = [url.rstrip("/") for url in config.server_urls]
        self._next = 0
        verify: bool | ssl.SSLContext = True
        if config.tls_skip_verify:
            verify = False
        elif config.tls_ca:
            verify = ssl.create_default_context(cafile=config.tls_ca)
        auth = (config.username, config.password) if config.username else None
        self._http = httpx.AsyncClient(
            timeout=config.timeout,
            verify=verify,
            auth=auth,
            limits=httpx.Limits(max_connections=config.bulk_workers + 16),
            headers={"content-type": "application/json"},
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        raw: bytes | None = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> Any:
        """The decoded JSON answer; an error status raises `ElasticError` (404 gives None when
        `missing_ok`), no reachable URL raises `Unreachable`."""
        content = raw if raw is not None else None if body is None else orjson.dumps(body)
        last: Exception | None = None
        for _ in range(len(self._urls)):
            base = self._urls[self._next % len(self._urls)]
            try:
                response = await self._http.request(
                    method, base + path, content=content, params=params,
                    headers={"content-type": content_type},
                )  # fmt: skip
            except httpx.TransportError as exc:
                last = exc
                self._next += 1
                continue
            if response.status_code == 404 and missing_ok:
                return None
            if response.status_code >= 400:
                raise ElasticError(response.status_code, method, path, response.text)
            return orjson.loads(response.content) if response.content else None
        raise Unreachable(f"{method} {path}: no Elasticsearch URL answered: {last!r}")

    async def dialect(self) -> Dialect:
        """The cluster's distribution and version, from `GET /` (or the node list, which
        Elasticsearch's minimal distribution answers when `/` is not routed)."""
        try:
            info = await self.request("GET", "/")
        except ElasticError:
            nodes = await self.request(
                "GET", "/_nodes/_local", params={"filter_path": "nodes.*.version"}
            )
            version = next(iter(nodes["nodes"].values()))["version"]
            return Dialect("elasticsearch", str(version))
        number = str(info["version"]["number"])
        tagline = str(info.get("tagline", ""))
        distribution = str(info["version"].get("distribution", "elasticsearch"))
        if "OpenSearch" in tagline:
            distribution = "opensearch"
        return Dialect(distribution, number)
