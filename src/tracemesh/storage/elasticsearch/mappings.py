"""Jaeger's index templates (its `mappings/jaeger-{span,service,dependencies}-{7,8}.json`).

Elasticsearch 7 and OpenSearch 1-3 take legacy templates (`PUT _template/<name>`, patterns
starting with `*` when there is no prefix); Elasticsearch 8 and 9 take composable ones
(`PUT _index_template/<name>`, with a priority and the body under `template`). The fields are
Jaeger v2.20's (`scopeTag(s)` and `references.tags/flags/traceState` included), plus two
tracemesh adds, which Jaeger's readers ignore: `otlp` on spans (the OTLP span, stored but not
indexed, so tracemesh reads back exactly what it took) and `spanKind` on service documents (so
operation lists carry kinds).
"""

from __future__ import annotations

from typing import Any

from tracemesh.storage.elasticsearch.config import ElasticConfig

JSON = dict[str, Any]

SPAN, SERVICE, DEPENDENCIES = "jaeger-span", "jaeger-service", "jaeger-dependencies"
KINDS = (SPAN, SERVICE, DEPENDENCIES)


def _keyword() -> JSON:
    return {"type": "keyword", "ignore_above": 256}


def _key_values() -> JSON:
    return {
        "type": "nested",
        "dynamic": False,
        "properties": {"key": _keyword(), "value": _keyword(), "type": _keyword()},
    }


DYNAMIC_TEMPLATES: list[JSON] = [
    {"span_tags_map": {"mapping": _keyword(), "path_match": "tag.*"}},
    {"process_tags_map": {"mapping": _keyword(), "path_match": "process.tag.*"}},
]
SPAN_DYNAMIC_TEMPLATES = [
    *DYNAMIC_TEMPLATES,
    {"scope_tags_map": {"mapping": _keyword(), "path_match": "scopeTag.*"}},
]

SPAN_PROPERTIES: JSON = {
    "traceID": _keyword(),
    "parentSpanID": _keyword(),
    "spanID": _keyword(),
    "operationName": _keyword(),
    "startTime": {"type": "long"},
    "startTimeMillis": {"type": "date", "format": "epoch_millis"},
    "duration": {"type": "long"},
    "flags": {"type": "integer"},
    "logs": {
        "type": "nested",
        "dynamic": False,
        "properties": {"timestamp": {"type": "long"}, "fields": _key_values()},
    },
    "process": {
        "properties": {
            "serviceName": _keyword(),
            "tag": {"type": "object"},
            "tags": _key_values(),
        }
    },
    "references": {
        "type": "nested",
        "dynamic": False,
        "properties": {
            "refType": _keyword(),
            "traceID": _keyword(),
            "spanID": _keyword(),
            "traceState": _keyword(),
            "flags": {"type": "integer"},
            "tags": _key_values(),
        },
    },
    "tag": {"type": "object"},
    "tags": _key_values(),
    "scopeTag": {"type": "object"},
    "scopeTags": _key_values(),
    "otlp": {"type": "binary"},
    "ns": {
        "type": "integer",
        "index": False,
        "doc_values": False,
    },  # tracemesh: sub-µs parts  # tracemesh: the OTLP span, not indexed
}

SERVICE_PROPERTIES: JSON = {
    "serviceName": _keyword(),
    "operationName": _keyword(),
    "spanKind": _keyword(),  # tracemesh: the operation's span kind
}

PROPERTIES: dict[str, JSON] = {SPAN: SPAN_PROPERTIES, SERVICE: SERVICE_PROPERTIES}


def mapping(kind: str) -> JSON:
    if kind == DEPENDENCIES:
        return {}
    templates = SPAN_DYNAMIC_TEMPLATES if kind == SPAN else DYNAMIC_TEMPLATES
    return {"dynamic_templates": templates, "properties": PROPERTIES[kind]}


def template(kind: str, config: ElasticConfig, mapping_version: int) -> tuple[str, JSON]:
    """(API path, body) that puts the template for `kind` (one of KINDS)."""
    name = config.prefixed(kind)
    settings: JSON = {
        "index.number_of_shards": config.num_shards,
        "index.number_of_replicas": config.num_replicas,
        "index.mapping.nested_fields.limit": 50,
        "index.requests.cache.enable": True,
    }
    body: JSON = {"settings": settings, "mappings": mapping(kind)}
    if config.use_aliases:
        body["aliases"] = {config.prefixed(kind) + "-read": {}}
    if mapping_version >= 8:
        pattern = config.prefixed(kind) + "-*"
        return f"/_index_template/{name}", {
            "priority": 0,
            "index_patterns": [pattern],
            "template": body,
        }
    prefix = config.prefixed("")
    # Jaeger's 7.x patterns: `*jaeger-span-*` without a prefix, `*<prefix>-jaeger-span-*` with one
    pattern = f"*{prefix}{kind}-*"
    return f"/_template/{name}", {"index_patterns": [pattern], **body}
