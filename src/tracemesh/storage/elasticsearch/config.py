"""Settings of the Elasticsearch / OpenSearch backend (`--es.*`), named as Jaeger names them."""

from __future__ import annotations

from dataclasses import dataclass

REFRESH_MODES = ("wait_for", "true", "false")


@dataclass(frozen=True, slots=True)
class ElasticConfig:
    server_urls: tuple[str, ...] = ("http://127.0.0.1:9200",)
    username: str = ""
    password: str = ""
    tls_ca: str = ""  # a CA bundle file that signs the cluster's certificate
    tls_skip_verify: bool = False
    index_prefix: str = ""  # "prod" gives prod-jaeger-span-2026-01-31
    num_shards: int = 5  # Jaeger's defaults
    num_replicas: int = 1
    use_aliases: bool = False  # rollover mode: write to *-write, read from *-read aliases
    create_index_templates: bool = True  # put Jaeger's templates on start, as Jaeger does
    version: int = 0  # 0: ask the cluster; else the Elasticsearch major to speak (OpenSearch: 7)
    bulk_size: int = 5_000_000  # bytes in one bulk request at most
    bulk_actions: int = 1000  # spans in one bulk request at most
    bulk_workers: int = 2  # bulk requests in flight at once
    bulk_flush_interval: float = 0.0  # seconds a partial bulk waits for concurrent writes
    bulk_retry_timeout: float = 600.0  # seconds a bulk is retried through an outage
    refresh: str = "false"  # when searchable: false = next refresh (~1 s); wait_for/true = on ack
    max_span_age: float = 72 * 3600.0  # seconds back that service lists and searches look
    max_doc_count: int = 10_000  # buckets and hits in one query at most (Jaeger's default)
    tags_as_fields_all: bool = False  # every tag as a field of the `tag` object too
    tags_as_fields_include: tuple[str, ...] = ()  # these tag keys as `tag` fields
    tags_as_fields_dot_replacement: str = "@"
    store_otlp: bool = True  # keep the OTLP span beside Jaeger's fields: reads are lossless
    timeout: float = 30.0  # seconds for one HTTP request

    def __post_init__(self) -> None:
        if not self.server_urls or not all(
            u.startswith(("http://", "https://")) for u in self.server_urls
        ):
            raise ValueError(f"es.server-urls must be http(s) URLs, got {self.server_urls!r}")
        if self.index_prefix and (
            self.index_prefix != self.index_prefix.lower()
            or any(c in self.index_prefix for c in ' "*\\<|,>/?#:')
        ):
            raise ValueError(f"es.index-prefix {self.index_prefix!r} is not a valid index name")
        if self.num_shards < 1 or self.num_replicas < 0:
            raise ValueError("es.num-shards must be 1 or more and es.num-replicas 0 or more")
        if self.bulk_size < 1 or self.bulk_actions < 1 or self.bulk_workers < 1:
            raise ValueError("es.bulk.size, es.bulk.actions and es.bulk.workers must be positive")
        if self.bulk_flush_interval < 0 or self.bulk_retry_timeout < 0:
            raise ValueError("es.bulk.flush-interval and es.bulk.retry-timeout must be >= 0")
        if self.refresh not in REFRESH_MODES:
            raise ValueError(f"es.refresh must be one of {REFRESH_MODES}, got {self.refresh!r}")
        if not self.tags_as_fields_dot_replacement:
            raise ValueError("es.tags-as-fields.dot-replacement must not be empty")

    def prefixed(self, name: str) -> str:
        """Jaeger's IndexPrefix.Apply: `prefix-name`, or `name` without a prefix."""
        if not self.index_prefix:
            return name
        separator = "" if self.index_prefix.endswith("-") else "-"
        return self.index_prefix + separator + name
