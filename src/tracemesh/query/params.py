"""Query-string parsing for the Jaeger HTTP API and api_v3, with Jaeger's error wording.

Every function is pure and raises only `ParamError` on bad input; the HTTP layer turns that into a
400. Units follow Jaeger: `start`/`end` are µs, `endTs`/`lookback` ms, durations are Go duration
strings, api_v3 times are RFC 3339 with up to nanosecond fractions. Returned values are in the
storage contract's units (nanoseconds, byte ids). `args` is anything with a `getlist`, such as
Starlette's `QueryParams`; like Go's `url.Values.Get`, a repeated single-valued parameter counts
by its first value.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from tracemesh.model.ids import InvalidIDError, normalize_trace_id, parse_trace_id
from tracemesh.model.query import DEFAULT_SEARCH_LIMIT, TraceQuery
from tracemesh.model.span import SpanKind
from tracemesh.query.goformat import (
    HOUR_NS,
    ParamError,
    format_go_duration,
    parse_go_bool,
    parse_go_duration,
    parse_go_int,
    parse_rfc3339_nano,
    quote,
)

__all__ = [
    "ParamError",
    "format_go_duration",
    "parse_go_bool",
    "parse_go_duration",
    "parse_go_int",
    "parse_rfc3339_nano",
    "quote",
]

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
DEFAULT_SEARCH_LOOKBACK_NS = 48 * HOUR_NS  # Jaeger's defaultTraceQueryLookbackDuration
DEFAULT_DEPENDENCY_LOOKBACK_NS = 24 * HOUR_NS
_SPAN_KINDS = {kind.jaeger_name or "unspecified": kind for kind in SpanKind}


class QueryArgs(Protocol):
    def getlist(self, key: Any) -> list[str]: ...


def first(args: QueryArgs, *names: str) -> tuple[str, str]:
    """The first non-empty value among `names` (canonical name first, then aliases) and the
    name it came from; `("", names[-1])` when none is set."""
    for name in names:
        values = args.getlist(name)
        if values and values[0]:
            return values[0], name
    return "", names[-1]


# ---- primitives --------------------------------------------------------------------------------


def parse_path_trace_id(text: str) -> bytes:
    """A trace id in a URL path: hex (1-32 digits), else base64 of its 8 or 16 bytes (standard or
    URL-safe alphabet, padding optional), as Jaeger's `TraceIDFromString` accepts since v2.20."""
    try:
        return parse_trace_id(text)
    except InvalidIDError as exc:
        hex_error = ParamError(str(exc))
    if len(text) > 24:
        raise hex_error
    padded = text + "=" * (-len(text) % 4)
    for altchars in (None, b"-_"):
        try:
            return normalize_trace_id(base64.b64decode(padded, altchars=altchars, validate=True))
        except (binascii.Error, ValueError):
            continue
    raise hex_error


def parse_span_kind(text: str) -> SpanKind | None:
    """`server`, `client`, ... -> the kind; empty -> None (all kinds)."""
    if not text:
        return None
    kind = _SPAN_KINDS.get(text.lower())
    if kind is None:
        raise ParamError(f"unsupported span kind: {quote(text)}")
    return kind


def parse_tags(simple: list[str], json_objects: list[str]) -> dict[str, str]:
    """Repeated `tag=k:v` (split at the first colon), then `tags={json}` objects merged on top."""
    tags: dict[str, str] = {}
    for tag in simple:
        key, colon, value = tag.partition(":")
        if not colon:
            raise ParamError(
                f"malformed 'tag' parameter, expecting key:value, received: {quote(tag)[1:-1]}"
            )
        tags[key] = value
    for text in json_objects:
        tags.update(string_map(text, "malformed 'tags' parameter, cannot unmarshal JSON"))
    return tags


def string_map(text: str, context: str) -> dict[str, str]:
    """A JSON object of strings (`null` is an empty one), else ParamError prefixed by `context`."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ParamError(f"{context}: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParamError(f"{context}: expected a JSON object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise ParamError(f"{context}: value of {quote(key)} is not a string")
    return value


def _positive_limit(text: str, name: str) -> int:
    if not text:
        return DEFAULT_SEARCH_LIMIT
    try:
        limit = parse_go_int(text, 32)
    except ParamError as exc:
        raise ParamError(f"unable to parse param '{name}': {exc}") from None
    if limit < 1:
        raise ParamError(f"unable to parse param '{name}': must be a positive number")
    return limit


def _wrapped(name: str, text: str, parse: Any) -> Any:
    try:
        return parse(text)
    except ParamError as exc:
        raise ParamError(f"unable to parse param '{name}': {exc}") from None


# ---- the Jaeger HTTP API (/api/...) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceSearch:
    """`GET /api/traces`: a search, or (when `trace_ids` is set) a fetch of those traces, for which
    `start_ns`/`end_ns` hold only the explicitly given bounds."""

    query: TraceQuery
    trace_ids: tuple[bytes, ...] = ()
    raw: bool = False
    start_ns: int | None = None
    end_ns: int | None = None


def parse_search(args: QueryArgs, now_ns: int) -> TraceSearch:
    start_text, _ = first(args, "start")
    end_text, _ = first(args, "end")
    start = _wrapped("start", start_text, parse_go_int) * NS_PER_US if start_text else None
    end = _wrapped("end", end_text, parse_go_int) * NS_PER_US if end_text else None
    tags = parse_tags(args.getlist("tag"), args.getlist("tags"))
    limit = _positive_limit(first(args, "limit")[0], "limit")
    durations = []
    for name in ("minDuration", "maxDuration"):
        text, _ = first(args, name)
        durations.append(_wrapped(name, text, parse_go_duration) if text else 0)
    min_duration, max_duration = durations
    trace_ids = []
    for text in args.getlist("traceID"):
        try:
            trace_ids.append(parse_trace_id(text))
        except InvalidIDError as exc:
            raise ParamError(f"cannot parse traceID param: {exc}") from None
    raw = parse_raw(args, "raw")
    if min_duration and max_duration and max_duration < min_duration:
        raise ParamError("'maxDuration' should be greater than 'minDuration'")
    if not trace_ids and not first(args, "service")[0]:
        # Jaeger's classic API insists; attribute-only search is api_v3's (query.attributes).
        raise ParamError("parameter 'service' is required")
    query = TraceQuery(
        service=first(args, "service")[0],
        operation=first(args, "operation")[0],
        tags=tags,
        start_min_ns=start if start is not None else now_ns - DEFAULT_SEARCH_LOOKBACK_NS,
        start_max_ns=end if end is not None else now_ns,
        duration_min_ns=min_duration or None,
        duration_max_ns=max_duration or None,
        limit=limit,
    )
    return TraceSearch(query, tuple(dict.fromkeys(trace_ids)), raw, start, end)


def parse_raw(args: QueryArgs, *names: str) -> bool:
    text, name = first(args, *names)
    return _wrapped(name, text, parse_go_bool) if text else False


def parse_trace_window(args: QueryArgs) -> tuple[int | None, int | None]:
    """Optional `start`/`end` (µs) of `GET /api/traces/{id}`, in ns."""
    bounds: list[int | None] = []
    for name in ("start", "end"):
        text, _ = first(args, name)
        bounds.append(_wrapped(name, text, parse_go_int) * NS_PER_US if text else None)
    return bounds[0], bounds[1]


def parse_operations(args: QueryArgs) -> tuple[str, SpanKind | None]:
    """`GET /api/operations?service=&spanKind=`."""
    service, _ = first(args, "service")
    if not service:
        raise ParamError("parameter 'service' is required")
    text, _ = first(args, "spanKind")
    return service, _wrapped("spanKind", text, parse_span_kind)


def parse_dependencies(args: QueryArgs, now_ns: int) -> tuple[int, int, str]:
    """`GET /api/dependencies?endTs=&lookback=&service=` (ms) -> (end_ns, lookback_ns, service)."""
    end_text, _ = first(args, "endTs")
    end = _wrapped("endTs", end_text, parse_go_int) * NS_PER_MS if end_text else now_ns
    lookback_text, _ = first(args, "lookback")
    lookback = DEFAULT_DEPENDENCY_LOOKBACK_NS
    if lookback_text:
        lookback = _wrapped("lookback", lookback_text, parse_go_int) * NS_PER_MS
        if lookback < 0:
            raise ParamError("unable to parse param 'lookback': must not be negative")
    return end, lookback, first(args, "service")[0]


# ---- api_v3 (/api/v3/...): camelCase names, with the snake_case names of <= v2.15 as aliases --

_V3_QUERY_FIELDS = {
    "serviceName": "service_name",
    "operationName": "operation_name",
    "attributes": "attributes",
    "startTimeMin": "start_time_min",
    "startTimeMax": "start_time_max",
    "durationMin": "duration_min",
    "durationMax": "duration_max",
    "searchDepth": "search_depth",
    "rawTraces": "raw_traces",
}


@dataclass(frozen=True, slots=True)
class V3Search:
    query: TraceQuery
    raw: bool = False


def parse_v3_search(args: QueryArgs) -> V3Search:
    """`GET /api/v3/traces` and `/api/v3/trace-summaries` query parameters."""
    fields = {
        camel: first(args, f"query.{camel}", f"query.{snake}")
        for camel, snake in _V3_QUERY_FIELDS.items()
    }
    if not fields["searchDepth"][0]:
        fields["searchDepth"] = first(args, "query.num_traces")
    attributes_text, name = fields["attributes"]
    attributes = (
        string_map(attributes_text, f"malformed parameter {name}") if attributes_text else {}
    )
    return _v3_search(fields, attributes)


def parse_v3_search_body(body: bytes) -> V3Search:
    """The JSON body `{"query": {...}}` of `POST /api/v3/traces` (proto3 JSON field names)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParamError(f"malformed request body: {exc}") from None
    query = doc.get("query") if isinstance(doc, dict) else None
    if query is None:
        query = {}
    if not isinstance(query, dict):
        raise ParamError("malformed request body: 'query' must be a JSON object")
    fields: dict[str, tuple[str, str]] = {}
    attributes: dict[str, str] = {}
    for camel, snake in _V3_QUERY_FIELDS.items():
        name = camel if camel in query else snake
        value = query.get(name)
        if camel == "attributes" and value is not None:
            attributes = string_map(orjson.dumps(value).decode(), f"malformed parameter {name}")
        elif isinstance(value, bool):
            fields[camel] = ("true" if value else "false", name)
        elif isinstance(value, int | str):
            fields[camel] = (str(value), name)
        elif value is not None:
            raise ParamError(f"malformed parameter {name}: unexpected JSON type")
    return _v3_search(fields, attributes)


def _v3_search(fields: dict[str, tuple[str, str]], attributes: dict[str, str]) -> V3Search:
    def value(camel: str) -> tuple[str, str]:
        return fields.get(camel, ("", camel))

    def parsed(camel: str, parse: Any) -> Any:
        text, name = value(camel)
        try:
            return parse(text)
        except ParamError as exc:
            raise ParamError(f"malformed parameter {name}: {exc}") from None

    if not value("startTimeMin")[0] or not value("startTimeMax")[0]:
        raise ParamError("query.startTimeMin and query.startTimeMax are required")
    start_min = parsed("startTimeMin", parse_rfc3339_nano)
    start_max = parsed("startTimeMax", parse_rfc3339_nano)
    if start_min >= start_max:
        raise ParamError("query.startTimeMin must be before query.startTimeMax")
    limit = DEFAULT_SEARCH_LIMIT
    if value("searchDepth")[0]:
        limit = parsed("searchDepth", parse_go_int)
        if limit < 1:
            raise ParamError(f"malformed parameter {value('searchDepth')[1]}: must be positive")
    durations = [
        parsed(camel, parse_go_duration) if value(camel)[0] else None
        for camel in ("durationMin", "durationMax")
    ]
    raw = parsed("rawTraces", parse_go_bool) if value("rawTraces")[0] else False
    query = TraceQuery(
        service=value("serviceName")[0],
        operation=value("operationName")[0],
        tags=attributes,
        start_min_ns=start_min,
        start_max_ns=start_max,
        duration_min_ns=durations[0] or None,
        duration_max_ns=durations[1] or None,
        limit=limit,
    )
    return V3Search(query, raw)


def _v3_time(args: QueryArgs, camel: str, snake: str) -> int | None:
    text, name = first(args, camel, snake)
    if not text:
        return None
    try:
        return parse_rfc3339_nano(text)
    except ParamError as exc:
        raise ParamError(f"malformed parameter {name}: {exc}") from None


def parse_v3_trace_window(args: QueryArgs) -> tuple[int | None, int | None, bool]:
    """`GET /api/v3/traces/{id}?startTime=&endTime=&rawTraces=` -> (start_ns, end_ns, raw)."""
    start = _v3_time(args, "startTime", "start_time")
    end = _v3_time(args, "endTime", "end_time")
    text, name = first(args, "rawTraces", "raw_traces")
    try:
        raw = parse_go_bool(text) if text else False
    except ParamError as exc:
        raise ParamError(f"malformed parameter {name}: {exc}") from None
    return start, end, raw


def parse_v3_operations(args: QueryArgs) -> tuple[str, SpanKind | None]:
    text, name = first(args, "spanKind", "span_kind")
    try:
        return first(args, "service")[0], parse_span_kind(text)
    except ParamError as exc:
        raise ParamError(f"malformed parameter {name}: {exc}") from None


def parse_v3_dependencies(args: QueryArgs) -> tuple[int, int]:
    """`GET /api/v3/dependencies?startTime=&endTime=` (both required) -> (end_ns, lookback_ns)."""
    start = _v3_time(args, "startTime", "start_time")
    end = _v3_time(args, "endTime", "end_time")
    if start is None:
        raise ParamError("start_time is required")
    if end is None:
        raise ParamError("end_time is required")
    if end <= start:
        raise ParamError("end_time must be after start_time")
    return end, end - start
