"""The search bodies, in the shape of Jaeger's Elasticsearch reader (`spanstore/reader.go`).

A trace search is one `bool` query over span documents (every filter must hold for one span)
with a `terms` aggregation on `traceID` ordered by each trace's newest matching span. A tag
`k=v` is a `should` over every place a tag lives: the `tag` and `process.tag` objects (key with
`.` replaced) and the nested `tags`, `process.tags` and `logs.fields` (Jaeger's places), plus
`scopeTag(s)` and `references.tags`, where tracemesh keeps scope and link attributes.

Values match as Jaeger matches them, as Lucene regular expressions (anchored: `a.*` is a prefix
search), and also literally, so a value with regex characters still finds itself. A value that is
not a valid regular expression is searched literally (`literal_only`). The special keys of the
storage contract (`error`, `span.kind`, `otel.status_code`, `scope.name`, `resource.*`, ...) are
mapped onto the tags Jaeger's document keeps for them.
"""

from __future__ import annotations

from typing import Any

from tracemesh.model.query import TraceQuery
from tracemesh.model.span import SpanKind
from tracemesh.storage.elasticsearch.documents import TagFields

JSON = dict[str, Any]
TRUE_WORDS = ("true", "1", "t")
FALSE_WORDS = ("false", "0", "f")
SCOPE_NAME_KEYS = ("scope.name", "otel.scope.name", "otel.library.name")
SCOPE_VERSION_KEYS = ("scope.version", "otel.scope.version", "otel.library.version")
STATUS_KEYS = ("otel.status_code", "span.status")
NESTED_SPAN = ("tags", "logs.fields", "scopeTags")
NESTED_PROCESS = ("process.tags",)


def _ceil_div(value: int, by: int) -> int:
    return -(-value // by)


class QueryBuilder:
    def __init__(self, tag_fields: TagFields, *, regex: bool = True) -> None:
        self.tag_fields = tag_fields
        self.regex = regex

    def literal_only(self) -> QueryBuilder:
        return QueryBuilder(self.tag_fields, regex=False)

    # ---- one span's filters --------------------------------------------------------------------

    def span_filter(self, query: TraceQuery) -> JSON:
        must: list[JSON] = []
        must_not: list[JSON] = []
        low, high = query.start_min_ns, query.start_max_ns
        if low is not None or high is not None:
            millis: JSON = {}
            micros: JSON = {}
            if low is not None:
                millis["gte"] = low // 1_000_000
                micros["gte"] = _ceil_div(low, 1000)
            if high is not None:
                millis["lte"] = high // 1_000_000
                micros["lte"] = high // 1000
            # the date field lets the cluster skip whole indices and shards; the µs one is exact
            must.append({"range": {"startTimeMillis": millis}})
            must.append({"range": {"startTime": micros}})
        if query.duration_min_ns is not None or query.duration_max_ns is not None:
            bounds: JSON = {}
            if query.duration_min_ns is not None:
                bounds["gte"] = _ceil_div(query.duration_min_ns, 1000)
            if query.duration_max_ns is not None:
                bounds["lte"] = query.duration_max_ns // 1000
            must.append({"range": {"duration": bounds}})
        if query.service:
            must.append({"term": {"process.serviceName": query.service}})
        if query.operation:
            must.append({"term": {"operationName": query.operation}})
        if query.span_kind is not None:
            kind_field = "tag." + self.tag_fields.field("span.kind")  # tags-as-fields
            if query.span_kind is SpanKind.UNSPECIFIED:
                must_not.append(self._nested_key("tags", "span.kind"))
                if self.tag_fields.active:
                    must_not.append({"exists": {"field": kind_field}})
            else:
                name = query.span_kind.jaeger_name
                kind_tag = self._nested_exact("tags", "span.kind", name)
                if self.tag_fields.active:
                    kind_tag = self._should(kind_tag, {"term": {kind_field: name}})
                must.append(kind_tag)
        for key, value in query.tags.items():
            clause, negated = self.tag(key, value)
            (must_not if negated else must).append(clause)
        boolean: JSON = {"filter": must}
        if must_not:
            boolean["must_not"] = must_not
        return {"bool": boolean}

    def tag(self, key: str, value: str) -> tuple[JSON, bool]:
        """The clause for one tag filter, and whether it must NOT hold (`error=false`)."""
        word = value.lower()
        if key == "error" and word in TRUE_WORDS:
            return self._anywhere("error", "true", regex=False), False
        if key == "error" and word in FALSE_WORDS:
            return self._nested_exact("tags", "error", "true"), True
        if key == "span.kind":
            return self._should(
                self._nested_exact("tags", "span.kind", word), self._anywhere(key, value)
            ), False
        if key in STATUS_KEYS:
            literal = self._anywhere(key, value)
            if word == "error":
                return self._should(self._nested_exact("tags", "error", "true"), literal), False
            if word == "ok":
                status = self._nested_exact("tags", "otel.status_code", "OK")
                return self._should(status, literal), False
            return literal, False
        if key in SCOPE_NAME_KEYS or key in SCOPE_VERSION_KEYS:
            stored = "otel.scope.name" if key in SCOPE_NAME_KEYS else "otel.scope.version"
            scope = self._nested_exact("tags", stored, value)
            return self._should(scope, self._anywhere(key, value)), False
        if key.startswith("resource.") and len(key) > len("resource."):
            inner = key[len("resource.") :]
            return self._should(*self._places(inner, value, process_only=True)), False
        return self._anywhere(key, value), False

    # ---- building blocks -----------------------------------------------------------------------

    def _anywhere(self, key: str, value: str, *, regex: bool | None = None) -> JSON:
        return self._should(*self._places(key, value, regex=regex))

    def _places(
        self, key: str, value: str, *, process_only: bool = False, regex: bool | None = None
    ) -> list[JSON]:
        field = self.tag_fields.field(key)
        use_regex = self.regex if regex is None else regex
        objects = ["process.tag"] if process_only else ["tag", "process.tag", "scopeTag"]
        nested = NESTED_PROCESS if process_only else (*NESTED_SPAN, *NESTED_PROCESS)
        places = [self._value(f"{obj}.{field}", value, use_regex) for obj in objects]
        for path in nested:
            places.append({
                "nested": {
                    "path": path,
                    "ignore_unmapped": True,
                    "query": {"bool": {"filter": [
                        {"term": {f"{path}.key": key}},
                        self._value(f"{path}.value", value, use_regex),
                    ]}},
                }
            })  # fmt: skip
        if not process_only:  # link attributes: nested in the nested references
            places.append({"nested": {"path": "references", "ignore_unmapped": True, "query": {
                "nested": {"path": "references.tags", "ignore_unmapped": True, "query": {
                    "bool": {"filter": [
                        {"term": {"references.tags.key": key}},
                        self._value("references.tags.value", value, use_regex),
                    ]},
                }},
            }}})  # fmt: skip
        return places

    @staticmethod
    def _value(field: str, value: str, regex: bool) -> JSON:
        term = {"term": {field: value}}
        if not regex:
            return term
        return {"bool": {"should": [term, {"regexp": {field: {"value": value}}}]}}

    @staticmethod
    def _nested_exact(path: str, key: str, value: str) -> JSON:
        return {
            "nested": {
                "path": path,
                "query": {"bool": {"filter": [
                    {"term": {f"{path}.key": key}},
                    {"term": {f"{path}.value": {"value": value, "case_insensitive": True}}},
                ]}},
            }
        }  # fmt: skip

    @staticmethod
    def _nested_key(path: str, key: str) -> JSON:
        return {"nested": {"path": path, "query": {"term": {f"{path}.key": key}}}}

    @staticmethod
    def _should(*clauses: JSON) -> JSON:
        return {"bool": {"should": list(clauses), "minimum_should_match": 1}}

    # ---- whole requests ------------------------------------------------------------------------

    def find_trace_ids(self, query: TraceQuery) -> JSON:
        return {
            "size": 0,
            "query": self.span_filter(query),
            "aggs": {
                "traceIDs": {
                    "terms": {
                        "field": "traceID",
                        "size": query.limit,
                        "order": {"startTime": "desc"},
                    },
                    "aggs": {"startTime": {"max": {"field": "startTime"}}},
                }
            },
        }


def trace_id_terms(trace_ids: list[bytes]) -> list[str]:
    """Every form a trace id may be stored in: 32 digits (Jaeger v2, tracemesh), and for a
    64-bit id also 16 digits (Jaeger v1) and without leading zeros (Jaeger before 1.16)."""
    terms: list[str] = []
    for trace_id in trace_ids:
        full = trace_id.hex()
        terms.append(full)
        if full.startswith("0" * 16):
            terms.append(full[16:])
            trimmed = full.lstrip("0")
            if trimmed and trimmed != full[16:]:
                terms.append(trimmed)
    return terms


def normal_trace_id(text: str) -> str:
    return text.rjust(32, "0")
