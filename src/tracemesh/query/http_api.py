"""The Jaeger query HTTP API (`/api/...`, the JSON the Jaeger UI and Grafana read), the api_v3
routes, and the static UI, as one Starlette app.

Handlers are thin: parameters come from `query.params`, data from `QueryService`, JSON from
`codecs.jaeger_json`. Responses use Jaeger's envelope `{data,total,limit,offset,errors}`; errors
are sent the way Go's `http.Error` sends them (text/plain content type, JSON body, newline).
"""

from __future__ import annotations

import logging
import mimetypes
import pathlib
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import unquote

import anyio
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from tracemesh.codecs import DecodeError
from tracemesh.codecs.jaeger_json import JSON, dependencies_json, group_by_trace, traces_json
from tracemesh.codecs.otlp_json import spans_from_json
from tracemesh.model.ids import InvalidIDError, trace_id_to_hex
from tracemesh.query import api_v3
from tracemesh.query.params import (
    ParamError,
    first,
    parse_dependencies,
    parse_operations,
    parse_path_trace_id,
    parse_raw,
    parse_search,
    parse_trace_window,
)
from tracemesh.query.service import QueryError, QueryService
from tracemesh.runtime.metrics import Metrics
from tracemesh.storage.api import StorageError

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
ErrorRenderer = Callable[[int, str], Response]
MAX_TRANSFORM_BYTES = 64 * 1024 * 1024
TRACE_NOT_FOUND = "trace not found"
METRICS_DISABLED = "trace metrics are currently disabled - no metrics backend configured"
ARCHIVE_DISABLED = "archive span storage was not configured"


def go_http_error(status: int, body: bytes) -> Response:
    """What Go's `http.Error` sends: the body plus a newline, as plain text."""
    headers = {"X-Content-Type-Options": "nosniff"}
    return Response(body + b"\n", status, headers=headers, media_type="text/plain")


def envelope_error(status: int, message: str) -> Response:
    error = {"code": status, "msg": message}
    payload = {"data": None, "total": 0, "limit": 0, "offset": 0, "errors": [error]}
    return go_http_error(status, orjson.dumps(payload))


def envelope(request: Request, data: object, total: int = 0, errors: object = None) -> Response:
    payload = {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}
    pretty = first(request.query_params, "prettyPrint")[0] not in ("", "false")
    content = orjson.dumps(payload, option=orjson.OPT_INDENT_2 if pretty else 0)
    return Response(content, media_type="application/json")


async def rendered_envelope(
    request: Request, traces: list[JSON], errors: object = None
) -> Response:
    """Rendered traces, serialized in a worker thread: a search result can be tens of MB (a
    40,000-span trace is 16), and the event loop must keep serving meanwhile."""
    return await anyio.to_thread.run_sync(lambda: envelope(request, traces, errors=errors))


def instrument(metrics: Metrics, name: str, handler: Handler, render: ErrorRenderer) -> Handler:
    """Turn known errors into 400 and 500 responses and record the request's latency."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except (ParamError, QueryError, InvalidIDError) as exc:
            response = render(400, str(exc))
        except StorageError as exc:
            log.warning("storage failed answering %s: %s", request.url.path, exc)
            response = render(500, str(exc) or type(exc).__name__)
        except Exception:
            log.exception("query API request %s failed", request.url.path)
            response = render(500, "internal error")
        elapsed = time.perf_counter() - started
        status = str(response.status_code)
        metrics.query_latency.labels(endpoint=name, status=status).observe(elapsed)
        return response

    return endpoint


class _JaegerAPI:
    """The `/api/*` handlers of one app."""

    def __init__(self, service: QueryService) -> None:
        self.service = service

    async def services(self, request: Request) -> Response:
        names = await self.service.services()
        return envelope(request, names, total=len(names))

    async def service_operations(self, request: Request) -> Response:
        service = unquote(request.path_params["service"])
        names = sorted({op.name for op in await self.service.operations(service)})
        return envelope(request, names, total=len(names))

    async def operations(self, request: Request) -> Response:
        service, kind = parse_operations(request.query_params)
        ops = await self.service.operations(service, kind)
        data = [{"name": op.name, "spanKind": op.span_kind.jaeger_name} for op in ops]
        return envelope(request, data, total=len(data))

    async def search(self, request: Request) -> Response:
        search = parse_search(request.query_params, time.time_ns())
        if not search.trace_ids:
            found = await self.service.find_traces_json(search.query, search.raw)
            return await rendered_envelope(request, found)
        rendered: list[JSON] = []
        missing = []
        for trace_id in dict.fromkeys(search.trace_ids):
            trace = await self.service.get_trace_json(
                trace_id, search.raw, start_ns=search.start_ns, end_ns=search.end_ns
            )
            if trace is None:
                missing.append({"msg": TRACE_NOT_FOUND, "traceID": trace_id_to_hex(trace_id)})
            else:
                rendered.append(trace)
        return await rendered_envelope(request, rendered, errors=missing or None)

    async def trace(self, request: Request) -> Response:
        trace_id = parse_path_trace_id(request.path_params["traceID"])
        start, end = parse_trace_window(request.query_params)
        raw = parse_raw(request.query_params, "raw")
        trace = await self.service.get_trace_json(trace_id, raw, start_ns=start, end_ns=end)
        if trace is None:
            return envelope_error(404, TRACE_NOT_FOUND)
        return await rendered_envelope(request, [trace])

    async def dependencies(self, request: Request) -> Response:
        end, lookback, service = parse_dependencies(request.query_params, time.time_ns())
        links = await self.service.dependencies(end, lookback, service)
        return envelope(request, dependencies_json(links))

    async def transform(self, request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_TRANSFORM_BYTES:
                return envelope_error(413, f"request body exceeds {MAX_TRANSFORM_BYTES} bytes")
        try:
            spans = spans_from_json(bytes(body))
        except DecodeError as exc:
            return envelope_error(400, f"cannot unmarshal OTLP : {exc}")
        return envelope(request, traces_json(group_by_trace(spans)))

    async def archive(self, request: Request) -> Response:
        parse_path_trace_id(request.path_params["traceID"])
        return envelope_error(501, ARCHIVE_DISABLED)

    async def metrics_disabled(self, request: Request) -> Response:
        return envelope_error(501, METRICS_DISABLED)

    async def unknown(self, request: Request) -> Response:
        return envelope_error(404, "404 page not found")


def _package_version() -> str:
    try:
        return version("tracemesh")
    except PackageNotFoundError:
        return "unknown"


ASSETS = "assets"  # where the UI build puts its content-hashed files


class _StaticUI:
    """The UI's build: files as they are, `index.html` (with Jaeger's placeholders filled in) for
    every other path, so the single-page app's own routes work on reload."""

    def __init__(self, service: QueryService, ui_dir: pathlib.Path, base_path: str) -> None:
        self.service = service
        self.root = ui_dir.resolve()
        self.base_path = base_path
        # Vite's hashed bundles under `assets/`, kept in memory once read: a page's script is then
        # one write, not a file read in a worker thread per 64 KiB, which on a busy event loop
        # (answering a large trace at the same moment) delayed a page's start by 100s of ms.
        self.assets: dict[pathlib.Path, Response] = {}

    def index_html(self, raw: bytes) -> bytes:
        caps = self.service.capabilities
        capabilities = orjson.dumps(
            {
                "archiveStorage": False,
                "metricsStorage": False,
                "searchWithoutServiceName": caps.search_without_service,
                "aiAssistant": False,
            }
        )
        tracemesh = {"gitCommit": "", "gitVersion": f"tracemesh-{_package_version()}"}
        release = orjson.dumps({**tracemesh, "buildDate": ""})
        replacements = {
            b"JAEGER_BACKEND_CAPABILITIES = DEFAULT_BACKEND_CAPABILITIES;": capabilities,
            b"JAEGER_STORAGE_CAPABILITIES = DEFAULT_STORAGE_CAPABILITIES;": capabilities,
            b"JAEGER_VERSION = DEFAULT_VERSION;": release,
        }
        for placeholder, value in replacements.items():
            name = placeholder.split(b" = ")[0]
            raw = raw.replace(placeholder, name + b" = " + value + b";")
        if self.base_path:
            raw = raw.replace(b'<base href="/"', f'<base href="{self.base_path}/"'.encode())
        return raw

    async def serve(self, request: Request) -> Response:
        relative = request.path_params.get("path", "")
        candidate = (self.root / relative).resolve()
        inside = candidate == self.root or candidate.is_relative_to(self.root)
        if relative and inside and candidate.name != "index.html" and candidate.is_file():
            if candidate.parent != self.root / ASSETS:
                return FileResponse(candidate)
            return self.assets.get(candidate) or await self._remember(candidate)
        try:
            raw = await anyio.to_thread.run_sync((self.root / "index.html").read_bytes)
        except OSError:
            log.warning("no index.html in the UI directory %s", self.root)
            return _placeholder_page(self.base_path)
        return HTMLResponse(self.index_html(raw))

    async def _remember(self, path: pathlib.Path) -> Response:
        body = await anyio.to_thread.run_sync(path.read_bytes)
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        # A hashed name never changes content, so browsers may keep it for good.
        headers = {"Cache-Control": "public, max-age=31536000, immutable"}
        answer = self.assets[path] = Response(body, media_type=media_type, headers=headers)
        return answer


def _placeholder_page(base_path: str) -> HTMLResponse:
    endpoints = [
        "/api/services",
        "/api/operations?service=",
        "/api/traces?service=",
        "/api/traces/{traceID}",
        "/api/dependencies",
        "/api/v3/services",
        "/api/v3/traces?query.serviceName=",
    ]
    items = "".join(f"<li><code>{base_path}{e}</code></li>" for e in endpoints)
    return HTMLResponse(
        "<!doctype html><title>tracemesh</title><h1>tracemesh query</h1>"
        "<p>The web UI is not built, so only the API is served. Build the UI to get it here.</p>"
        f"<ul>{items}</ul>"
    )


def build_app(
    service: QueryService,
    metrics: Metrics,
    *,
    base_path: str = "",
    ui_dir: pathlib.Path | None = None,
) -> Starlette:
    """The query app. `base_path` (e.g. `/jaeger`) prefixes every route, as `--query.base-path`."""
    base = base_path.rstrip("/")
    if base and not base.startswith("/"):
        raise ValueError(f"base path must start with '/', got {base_path!r}")
    api = _JaegerAPI(service)

    def route(path: str, handler: Handler, methods: list[str], render: ErrorRenderer) -> Route:
        label = path.replace(":path}", "}")  # the metric label: `/api/traces/{traceID}`
        endpoint = instrument(metrics, label, handler, render)
        return Route(base + path, endpoint, methods=methods)

    get, post = ["GET"], ["POST"]
    routes = [
        route("/api/services", api.services, get, envelope_error),
        route(
            "/api/services/{service:path}/operations", api.service_operations, get, envelope_error
        ),
        route("/api/operations", api.operations, get, envelope_error),
        route("/api/traces", api.search, get, envelope_error),
        route("/api/traces/{traceID:path}", api.trace, get, envelope_error),
        route("/api/dependencies", api.dependencies, get, envelope_error),
        route("/api/transform", api.transform, post, envelope_error),
        route("/api/archive/{traceID:path}", api.archive, post, envelope_error),
    ]
    routes += [
        route(f"/api/metrics/{name}", api.metrics_disabled, get, envelope_error)
        for name in ("latencies", "calls", "errors")
    ]
    routes += [route(path, h, m, api_v3.error) for path, h, m in api_v3.handlers(service)]
    routes.append(Route(base + "/api/{rest:path}", api.unknown))
    if ui_dir is not None:
        ui = _StaticUI(service, ui_dir, base)
        routes.append(Route(base + "/", ui.serve, methods=["GET", "HEAD"]))
        routes.append(Route(base + "/{path:path}", ui.serve, methods=["GET", "HEAD"]))
    else:

        async def placeholder(request: Request) -> Response:
            return _placeholder_page(base)

        routes.append(Route(base + "/", placeholder, methods=["GET", "HEAD"]))
    return Starlette(routes=routes)
