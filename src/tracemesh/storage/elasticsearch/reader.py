"""Reads: traces by id across daily indices, trace search, service and operation lists, and
dependencies computed from the stored spans."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tracemesh.model.dependency import DependencyLink
from tracemesh.model.query import Operation, TraceQuery
from tracemesh.model.span import Span, SpanKind
from tracemesh.storage.elasticsearch.client import ElasticClient, ElasticError
from tracemesh.storage.elasticsearch.config import ElasticConfig
from tracemesh.storage.elasticsearch.documents import Reader, TagFields
from tracemesh.storage.elasticsearch.indices import Indices
from tracemesh.storage.elasticsearch.queries import (
    QueryBuilder,
    normal_trace_id,
    trace_id_terms,
)

JSON = dict[str, Any]
HOUR_NS = 3600 * 1_000_000_000
TRACE_ID_CHUNK = 500  # trace ids per `terms` query
# Paging through hits: start time first, then fields that tell equal starts apart.
SORT = [{"startTime": "asc"}, {"spanID": "asc"}, {"_seq_no": "asc"}]


class ElasticReader:
    """`TraceReader` and `DependencyReader` over one cluster."""

    def __init__(
        self,
        client: ElasticClient,
        config: ElasticConfig,
        indices: Indices,
        tag_fields: TagFields,
    ) -> None:
        self._client = client
        self._config = config
        self._indices = indices
        self._tag_fields = tag_fields
        self._queries = QueryBuilder(tag_fields)

    async def _search(self, index: str, body: JSON) -> JSON:
        answer: JSON = await self._client.request(
            "POST", f"/{index}/_search", body,
            params={"ignore_unavailable": "true", "allow_no_indices": "true"},
        )  # fmt: skip
        return answer

    async def _hits(self, index: str, body: JSON) -> list[JSON]:
        """Every hit of the query, page after page (`search_after` on SORT)."""
        size = self._config.max_doc_count
        body = {**body, "size": size, "sort": SORT}
        hits: list[JSON] = []
        while True:
            page = (await self._search(index, body))["hits"]["hits"]
            hits.extend(page)
            if len(page) < size:
                return hits
            body = {**body, "search_after": page[-1]["sort"]}

    # ---- traces --------------------------------------------------------------------------------

    async def get_trace(
        self, trace_id: bytes, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[Span]:
        traces = await self._traces([trace_id], start_ns, end_ns)
        return traces.get(trace_id.hex(), [])

    async def _traces(
        self, trace_ids: list[bytes], start_ns: int | None, end_ns: int | None
    ) -> dict[str, list[Span]]:
        """Spans of each trace (by 32-digit id) in start-time order; an hour either side of the
        window, as Jaeger looks, so traces crossing midnight are whole."""
        if start_ns is not None and end_ns is not None:
            index = self._indices.read_spans(start_ns - HOUR_NS, end_ns + HOUR_NS)
        else:
            index = self._indices.read_spans(None, None)
        reader = Reader(self._tag_fields)
        out: dict[str, list[Span]] = {}
        for at in range(0, len(trace_ids), TRACE_ID_CHUNK):
            terms = trace_id_terms(trace_ids[at : at + TRACE_ID_CHUNK])
            body = {"query": {"bool": {"filter": [{"terms": {"traceID": terms}}]}}}
            for hit in await self._hits(index, body):
                source = hit["_source"]
                out.setdefault(normal_trace_id(source["traceID"]), []).append(reader.span(source))
        return out

    async def find_traces(self, query: TraceQuery) -> list[list[Span]]:
        if query.limit <= 0:
            return []
        index = self._indices.read_spans(query.start_min_ns, query.start_max_ns)
        try:
            answer = await self._search(index, self._queries.find_trace_ids(query))
        except ElasticError as exc:
            if exc.status != 400 or not query.tags:
                raise
            # a value that is no valid Lucene regular expression: search it literally
            literal = self._queries.literal_only()
            answer = await self._search(index, literal.find_trace_ids(query))
        buckets = answer.get("aggregations", {}).get("traceIDs", {}).get("buckets", [])
        ids = [bytes.fromhex(normal_trace_id(b["key"])) for b in buckets]
        ids = list(dict.fromkeys(ids))
        if not ids:
            return []
        traces = await self._traces(ids, query.start_min_ns, query.start_max_ns)
        found = [traces[i.hex()] for i in ids if i.hex() in traces]
        found.sort(key=lambda spans: min(s.start_ns for s in spans), reverse=True)
        return found

    # ---- service and operation lists -----------------------------------------------------------

    async def get_services(self) -> list[str]:
        body = {
            "size": 0,
            "aggs": {
                "services": {"terms": {"field": "serviceName", "size": self._config.max_doc_count}}
            },
        }
        answer = await self._search(self._indices.read_services(), body)
        buckets = answer.get("aggregations", {}).get("services", {}).get("buckets", [])
        return sorted(str(b["key"]) for b in buckets)

    async def get_operations(
        self, service: str, span_kind: SpanKind | None = None
    ) -> list[Operation]:
        filters: list[JSON] = [{"term": {"serviceName": service}}]
        if span_kind is not None:
            # A document without `spanKind` (Jaeger wrote it) matches any kind, as Jaeger's own
            # reader ignores the kind on service documents; it is listed as unspecified.
            filters.append({"bool": {"should": [
                {"term": {"spanKind": span_kind.jaeger_name}},
                {"bool": {"must_not": {"exists": {"field": "spanKind"}}}},
            ]}})  # fmt: skip
        size = self._config.max_doc_count
        body: JSON = {
            "size": 0,
            "query": {"bool": {"filter": filters}},
            "aggs": {
                "operations": {
                    "terms": {"field": "operationName", "size": size},
                    "aggs": {"kinds": {"terms": {"field": "spanKind", "size": 8, "missing": ""}}},
                }
            },
        }
        index = self._indices.read_services()
        try:
            answer = await self._search(index, body)
        except ElasticError as exc:
            if exc.status != 400:
                raise
            # an index made from Jaeger's own template maps `spanKind` dynamically, as text
            kinds = body["aggs"]["operations"]["aggs"]["kinds"]["terms"]
            kinds["field"] = "spanKind.keyword"
            answer = await self._search(index, body)
        operations: set[Operation] = set()
        for bucket in answer.get("aggregations", {}).get("operations", {}).get("buckets", []):
            for kind in bucket["kinds"]["buckets"]:
                operations.add(
                    Operation(str(bucket["key"]), SpanKind.from_jaeger_name(kind["key"]))
                )
        return sorted(operations, key=lambda op: (op.name, op.span_kind))

    # ---- dependencies --------------------------------------------------------------------------

    async def get_dependencies(self, end_ns: int, lookback_ns: int) -> list[DependencyLink]:
        """Links computed from spans that started in the window: each span's parent (its first
        CHILD_OF reference in its own trace, else FOLLOWS_FROM, as Jaeger picks it) names the
        calling service, wherever that parent is stored. Nothing is read from
        `jaeger-dependencies-*`, which only Jaeger's Spark job writes."""
        start_ns = end_ns - lookback_ns
        window = {"range": {"startTime": {"gte": -(-start_ns // 1000), "lte": end_ns // 1000}}}
        millis = {"range": {"startTimeMillis": {"gte": start_ns // 1_000_000,
                                                "lte": end_ns // 1_000_000}}}  # fmt: skip
        body = {
            "query": {"bool": {"filter": [millis, window]}},
            "_source": ["traceID", "references", "parentSpanID", "process.serviceName"],
        }
        children: list[tuple[str, str, str]] = []  # (trace, parent span, service)
        for hit in await self._hits(self._indices.read_spans(start_ns, end_ns), body):
            source = hit["_source"]
            trace = normal_trace_id(source["traceID"])
            parent = _parent(source, trace)
            if parent:
                service = str((source.get("process") or {}).get("serviceName", ""))
                children.append((trace, parent, service))
        if not children:
            return []
        callers = await self._callers(children)
        calls = Counter(
            (callers[(trace, parent)], service)
            for trace, parent, service in children
            if (trace, parent) in callers
        )
        return [DependencyLink(p, c, n) for (p, c), n in sorted(calls.items())]

    async def _callers(self, children: list[tuple[str, str, str]]) -> dict[tuple[str, str], str]:
        """The service of every parent span named, found in any span index."""
        wanted = {(trace, parent) for trace, parent, _ in children}
        traces = sorted({trace for trace, _ in wanted})
        found: dict[tuple[str, str], str] = {}
        for at in range(0, len(traces), TRACE_ID_CHUNK):
            chunk = [bytes.fromhex(t) for t in traces[at : at + TRACE_ID_CHUNK]]
            body = {
                "query": {"bool": {"filter": [{"terms": {"traceID": trace_id_terms(chunk)}}]}},
                "_source": ["traceID", "spanID", "process.serviceName"],
            }
            for hit in await self._hits(self._indices.read_spans(None, None), body):
                source = hit["_source"]
                key = (normal_trace_id(source["traceID"]), str(source["spanID"]).rjust(16, "0"))
                if key in wanted and key not in found:  # duplicated ids: the first names it
                    found[key] = str((source.get("process") or {}).get("serviceName", ""))
        return found


def _parent(source: JSON, trace: str) -> str:
    follows = ""
    for ref in source.get("references") or ():
        if normal_trace_id(str(ref.get("traceID", ""))) != trace:
            continue
        if ref.get("refType") == "CHILD_OF":
            return str(ref.get("spanID", "")).rjust(16, "0")
        if not follows and ref.get("refType") == "FOLLOWS_FROM":
            follows = str(ref.get("spanID", "")).rjust(16, "0")
    if not follows and source.get("parentSpanID"):
        follows = str(source["parentSpanID"]).rjust(16, "0")
    return follows
