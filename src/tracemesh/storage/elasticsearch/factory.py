"""`ElasticStorage`: Elasticsearch or OpenSearch as a `Storage`, in Jaeger's index layout."""

from __future__ import annotations

import logging
from typing import Any

from tracemesh.storage.api import Capabilities, StorageError
from tracemesh.storage.elasticsearch.client import Dialect, ElasticClient
from tracemesh.storage.elasticsearch.config import ElasticConfig
from tracemesh.storage.elasticsearch.documents import TagFields
from tracemesh.storage.elasticsearch.indices import Indices
from tracemesh.storage.elasticsearch.mappings import KINDS, SERVICE, SPAN, template
from tracemesh.storage.elasticsearch.reader import ElasticReader
from tracemesh.storage.elasticsearch.writer import BulkIndexer, ElasticWriter

log = logging.getLogger("tracemesh.storage.elasticsearch")

CAPABILITIES = Capabilities(
    search_without_service=True,
    span_kind_in_operations=True,
    tag_regex=True,
    computes_dependencies=True,
    persistent=True,
    shared_between_processes=True,
)


class ElasticStorage:
    name = "elasticsearch"
    capabilities = CAPABILITIES

    def __init__(self, config: ElasticConfig | None = None) -> None:
        self.config = config or ElasticConfig()
        self.dialect: Dialect | None = None
        self.indices = Indices(self.config)
        self.tag_fields = TagFields(
            self.config.tags_as_fields_all,
            self.config.tags_as_fields_include,
            self.config.tags_as_fields_dot_replacement,
        )
        self._client: ElasticClient | None = None
        self._indexer: BulkIndexer | None = None
        self._writer: ElasticWriter | None = None
        self._reader: ElasticReader | None = None

    @property
    def client(self) -> ElasticClient:
        if self._client is None:
            raise RuntimeError("elasticsearch storage is not started")
        return self._client

    async def start(self) -> None:
        """Connect, learn the dialect, put Jaeger's templates (as Jaeger does on start) and, in
        rollover mode, check that the write aliases exist."""
        client = self._client = ElasticClient(self.config)
        try:
            if self.config.version:
                major = self.config.version
                self.dialect = Dialect("elasticsearch", f"{major}.0.0")
            else:
                self.dialect = await client.dialect()
            log.info("%s %s: using Jaeger's %d.x mappings", self.dialect.distribution,
                     self.dialect.version, self.dialect.mapping_version)  # fmt: skip
            if self.config.create_index_templates:
                for kind in KINDS:
                    path, body = template(kind, self.config, self.dialect.mapping_version)
                    await client.request("PUT", path, body)
            if self.config.use_aliases:
                for kind in (SPAN, SERVICE):
                    alias = self.config.prefixed(kind) + "-write"
                    if await client.request("GET", f"/_alias/{alias}", missing_ok=True) is None:
                        raise StorageError(f"alias {alias} does not exist: run "
                                           "`tracemesh es-rollover init` first")  # fmt: skip
        except BaseException:
            await client.close()
            self._client = None
            raise
        self._indexer = BulkIndexer(client, self.config)
        self._writer = ElasticWriter(self.config, self._indexer, self.indices, self.tag_fields)
        self._reader = ElasticReader(client, self.config, self.indices, self.tag_fields)

    async def check(self) -> bool:
        if self._client is None:
            return False
        try:
            health = await self._client.request("GET", "/_cluster/health")
        except StorageError:
            return False
        return bool(health) and health.get("status") in ("green", "yellow")

    async def close(self) -> None:
        if self._indexer is not None:
            await self._indexer.close()
        if self._client is not None:
            await self._client.close()
            self._client = None

    def writer(self) -> ElasticWriter:
        if self._writer is None:
            raise RuntimeError("elasticsearch storage is not started")
        return self._writer

    def reader(self) -> ElasticReader:
        if self._reader is None:
            raise RuntimeError("elasticsearch storage is not started")
        return self._reader

    def dependency_reader(self) -> ElasticReader:
        return self.reader()

    @property
    def rejected_documents(self) -> int:
        """Documents the cluster refused for good (logged each time)."""
        return self._indexer.rejected if self._indexer is not None else 0


def config_from(settings: object) -> ElasticConfig:
    """The backend's settings from a process `Config` (its `es_*` fields)."""

    def get(name: str) -> Any:
        return getattr(settings, "es_" + name)

    def items(text: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in text.split(",") if part.strip())

    return ElasticConfig(
        server_urls=items(get("server_urls")),
        username=get("username"),
        password=get("password"),
        tls_ca=get("tls_ca"),
        tls_skip_verify=get("tls_skip_host_verify"),
        index_prefix=get("index_prefix"),
        num_shards=get("num_shards"),
        num_replicas=get("num_replicas"),
        use_aliases=get("use_aliases"),
        create_index_templates=get("create_index_templates"),
        version=get("version"),
        bulk_size=get("bulk_size"),
        bulk_actions=get("bulk_actions"),
        bulk_workers=get("bulk_workers"),
        bulk_flush_interval=get("bulk_flush_interval"),
        refresh=get("refresh"),
        max_span_age=get("max_span_age"),
        tags_as_fields_all=get("tags_as_fields_all"),
        tags_as_fields_include=items(get("tags_as_fields_include")),
        tags_as_fields_dot_replacement=get("tags_as_fields_dot_replacement"),
    )
