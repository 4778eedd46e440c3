"""Elasticsearch storage for tests: the session's real node, a fresh index prefix per store."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import urllib.request
from pathlib import Path

from tests.support.search_node import shared_node
from tracemesh.storage.elasticsearch.client import ElasticClient
from tracemesh.storage.elasticsearch.config import ElasticConfig
from tracemesh.storage.elasticsearch.factory import ElasticStorage
from tracemesh.storage.elasticsearch.mappings import KINDS, template

KEEP_PREFIXES = 8  # stores that may still be open; older test stores are deleted
_prefixes: list[str] = []
_templates_on: set[str] = set()


def config_for_tests(url: str, prefix: str, **overrides: object) -> ElasticConfig:
    """One shard, no replica, refresh on every write (readable at once), fail fast in tests."""
    settings: dict[str, object] = {
        "server_urls": (url,),
        "index_prefix": prefix,
        "num_shards": 1,
        "num_replicas": 0,
        "refresh": "true",
        "bulk_flush_interval": 0.0,
        "bulk_retry_timeout": 60.0,
    }
    settings.update(overrides)
    return ElasticConfig(**settings)  # type: ignore[arg-type]


def prefix_for(path: Path) -> str:
    return "t" + hashlib.sha1(str(path).encode()).hexdigest()[:12]


def storage_for(path: Path) -> ElasticStorage:
    """A store on the shared node named after `path`: the same path reopens the same data.
    Its indices take the session's shared templates (one set for every test prefix)."""
    node = shared_node()
    if node.url not in _templates_on:
        asyncio.run(install_shared_templates(node.url))
        _templates_on.add(node.url)
    prefix = prefix_for(path)
    if prefix not in _prefixes:
        _prefixes.append(prefix)
        while len(_prefixes) > KEEP_PREFIXES:
            delete_prefix(node.url, _prefixes.pop(0))
    return ElasticStorage(config_for_tests(node.url, prefix, create_index_templates=False))


async def install_shared_templates(url: str) -> None:
    """Jaeger's templates once for every test prefix (`t*-jaeger-span-*`...), at a priority
    above a single store's own."""
    client = ElasticClient(config_for_tests(url, "t"))
    try:
        dialect = await client.dialect()
        for rank, kind in enumerate(KINDS, 1):
            path, body = template(kind, config_for_tests(url, "t"), dialect.mapping_version)
            path = path.rsplit("/", 1)[0] + f"/tracemesh-tests-{kind}"
            body["index_patterns"] = [f"t*-{kind}-*"]
            # `t*-` patterns overlap each other: each needs a priority of its own
            body["priority" if "priority" in body else "order"] = 10 + rank
            await client.request("PUT", path, body)
    finally:
        await client.close()


def delete_prefix(url: str, prefix: str) -> None:
    """Delete a finished store's indices (its few templates stay: they cost next to nothing)."""
    request = urllib.request.Request(f"{url}/{prefix}-jaeger-*", method="DELETE")
    with contextlib.suppress(OSError):
        urllib.request.urlopen(request, timeout=30).close()
