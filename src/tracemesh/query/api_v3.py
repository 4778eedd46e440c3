"""Jaeger's api_v3 over HTTP (`/api/v3/...`): OTLP JSON traces, services, operations, trace
summaries and dependencies, in the proto3 JSON shapes of `jaeger.api_v3` as Jaeger's HTTP gateway
writes them (64-bit numbers as strings, zero-valued fields left out).

Two deliberate differences from Jaeger's gateway, both supersets: empty service, operation and
dependency lists are written as `[]` (Jaeger's protojson writes `{}`, which the UI's schema
rejects), and `POST` is accepted on `/api/v3/traces` and `/api/v3/trace-summaries` with a
`{"query": {...}}` body as well as `GET` with query parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tracemesh.codecs.otlp_json import traces_data_json
from tracemesh.model.attributes import AttrValue
from tracemesh.model.span import Span
from tracemesh.query.params import (
    ParamError,
    V3Search,
    parse_path_trace_id,
    parse_v3_dependencies,
    parse_v3_operations,
    parse_v3_search,
    parse_v3_search_body,
    parse_v3_trace_window,
)
from tracemesh.query.service import QueryService, TraceSummary

Handler = Callable[[Request], Awaitable[Response]]
NO_TRACES = "No traces found"
WARNINGS_ATTRIBUTE = "@jaeger@warnings"  # where Jaeger's OTLP output carries adjuster warnings
MAX_BODY_BYTES = 1024 * 1024


def error(status: int, message: str) -> Response:
    """Jaeger's `GRPCGatewayError`, sent like Go's `http.Error` (plain text, trailing newline)."""
    body = orjson.dumps({"error": {"httpCode": status, "message": message}}) + b"\n"
    headers = {"X-Content-Type-Options": "nosniff"}
    return Response(body, status, headers=headers, media_type="text/plain")


def _json(payload: object) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


def _with_warnings(span: Span) -> Span:
    if not span.warnings:
        return span
    warnings: list[AttrValue] = list(span.warnings)
    return dataclasses.replace(span, attributes={**span.attributes, WARNINGS_ATTRIBUTE: warnings})


def _result(traces: Sequence[Sequence[Span]]) -> Response:
    """`{"result": TracesData}` with every trace's resourceSpans in one list; 404 when empty."""
    if not traces:
        return error(404, NO_TRACES)
    resource_spans: list[object] = []
    for spans in traces:
        data = traces_data_json([_with_warnings(span) for span in spans])["resourceSpans"]
        assert isinstance(data, list)
        resource_spans.extend(data)
    return _json({"result": {"resourceSpans": resource_spans}})


def summary_json(summary: TraceSummary) -> dict[str, object]:
    """A `TraceSummary` in proto3 JSON: fixed64 times as strings, zero and empty fields omitted."""
    out: dict[str, object] = {"traceId": summary.trace_id.hex()}
    fields: dict[str, object] = {
        "rootServiceName": summary.root_service_name,
        "rootOperationName": summary.root_operation_name,
        "minStartTimeUnixNano": str(summary.min_start_ns) if summary.min_start_ns else "",
        "maxEndTimeUnixNano": str(summary.max_end_ns) if summary.max_end_ns else "",
        "spanCount": summary.span_count,
        "errorSpanCount": summary.error_span_count,
        "orphanSpanCount": summary.orphan_span_count,
    }
    out.update((key, value) for key, value in fields.items() if value)
    services = []
    for svc in summary.services:
        item: dict[str, object] = {"name": svc.name, "spanCount": svc.span_count}
        if svc.error_span_count:
            item["errorSpanCount"] = svc.error_span_count
        services.append(item)
    if services:
        out["services"] = services
    return out


async def _search_request(request: Request) -> V3Search:
    if request.method != "POST":
        return parse_v3_search(request.query_params)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise ParamError(f"malformed request body: larger than {MAX_BODY_BYTES} bytes")
    return parse_v3_search_body(bytes(body))


class _V3API:
    def __init__(self, service: QueryService) -> None:
        self.service = service

    async def services(self, request: Request) -> Response:
        return _json({"services": await self.service.services()})

    async def operations(self, request: Request) -> Response:
        service, kind = parse_v3_operations(request.query_params)
        ops = await self.service.operations(service, kind)
        data = [{"name": op.name, "spanKind": op.span_kind.jaeger_name or "internal"} for op in ops]
        return _json({"operations": data})

    async def trace(self, request: Request) -> Response:
        try:
            trace_id = parse_path_trace_id(request.path_params["trace_id"])
        except ParamError as exc:
            raise ParamError(f"malformed parameter trace_id: {exc}") from None
        start, end, raw = parse_v3_trace_window(request.query_params)
        spans = await self.service.get_trace(trace_id, raw, start_ns=start, end_ns=end)
        return _result([spans] if spans else [])

    async def find_traces(self, request: Request) -> Response:
        search = await _search_request(request)
        return _result(await self.service.find_traces(search.query, search.raw))

    async def trace_summaries(self, request: Request) -> Response:
        search = await _search_request(request)
        summaries = await self.service.find_trace_summaries(search.query)
        return _json({"summaries": [summary_json(s) for s in summaries]} if summaries else {})

    async def dependencies(self, request: Request) -> Response:
        end, lookback = parse_v3_dependencies(request.query_params)
        links = await self.service.dependencies(end, lookback)
        data = [
            {"parent": d.parent, "child": d.child, "callCount": str(d.call_count)} for d in links
        ]
        return _json({"dependencies": data})


def handlers(service: QueryService) -> list[tuple[str, Handler, list[str]]]:
    """(path, handler, methods) of every api_v3 route, for the app to mount under its base path."""
    api = _V3API(service)
    get, get_post = ["GET"], ["GET", "POST"]
    return [
        ("/api/v3/services", api.services, get),
        ("/api/v3/operations", api.operations, get),
        ("/api/v3/traces/{trace_id:path}", api.trace, get),
        ("/api/v3/traces", api.find_traces, get_post),
        ("/api/v3/trace-summaries", api.trace_summaries, get_post),
        ("/api/v3/dependencies", api.dependencies, get),
    ]
