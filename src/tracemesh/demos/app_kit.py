"""What every demo app shares, standard library only: an HTTP server on the port the runner
gives (`PORT`), calls to other services through the sidecar's outbound port
(`TRACEMESH_OUTBOUND`, the same address as `HTTP_PROXY`), and the header copying Istio asks of
an app that is not instrumented.

An app prints each request's tracing headers, as Chapter 7's apps do, so its log in the run
directory shows what the mesh injected.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# What Istio asks an app to copy from its request to its calls (istio.io distributed tracing
# overview), which is what Chapter 7's HelloController2 copies, plus the baggage headers (the
# mesh routes on baggage) and W3C trace context.
ISTIO_HEADERS = (
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
)
BAGGAGE_HEADERS = ("baggage", "jaeger-baggage")
BAGGAGE_PREFIXES = ("uberctx-", "baggage-")
TRACE_ID_HEADER = "x-trace-id"  # every demo's entry app answers with it, to find the trace


@dataclass
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names


@dataclass
class Response:
    status: int = 200
    body: bytes | str | dict[str, object] = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


def copy_headers(headers: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """The tracing headers of `headers` an app forwards on its calls (and `extra` names)."""
    names = (*ISTIO_HEADERS, *BAGGAGE_HEADERS, *extra)
    out = {name: headers[name] for name in names if name in headers}
    for name, value in headers.items():
        if name.startswith(BAGGAGE_PREFIXES):
            out[name] = value
    return out


def trace_id(headers: Mapping[str, str]) -> str:
    """The trace id the app's request carries (B3, else W3C), for the `x-trace-id` answer."""
    if "x-b3-traceid" in headers:
        return headers["x-b3-traceid"]
    parts = headers.get("traceparent", "").split("-")
    return parts[1] if len(parts) == 4 else ""


def call(service: str, path: str, headers: Mapping[str, str], timeout: float = 10.0
         ) -> tuple[int, bytes]:  # fmt: skip
    """GET http://<service><path> through this instance's sidecar: (status, body); a failed
    connection is (0, reason). `TRACEMESH_OUTBOUND=direct` calls the service itself, for a Pod
    whose sidecar captures its traffic (Kubernetes)."""
    outbound = os.environ.get("TRACEMESH_OUTBOUND", "http://127.0.0.1:15001")
    proxies = {} if outbound == "direct" else {"http": outbound}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
    request = urllib.request.Request(f"http://{service}{path}", headers=dict(headers))
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except OSError as exc:
        return 0, str(exc).encode()


def serve(handler: Handler, on_stop: Callable[[], None] = lambda: None) -> None:
    """Answer requests with `handler` on $HOST:$PORT until SIGTERM or SIGINT, then `on_stop`
    (flush spans) and return."""
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((host, port), _handler_class(handler))
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    name = os.environ.get("TRACEMESH_INSTANCE", "app")
    print(f"{name} listening on {host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        on_stop()


def _handler_class(handler: Handler) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes: with Nagle on, the body waits for the peer's
        # delayed ACK (40 ms), which every trace would show as time in the sidecar.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            traced = {k: v for k, v in headers.items() if _is_tracing(k)}
            print(f"{self.command} {self.path} {json.dumps(traced)}", flush=True)
            try:
                response = handler(Request(self.command, url.path, query, headers))
            except Exception as exc:  # a demo bug shows as a 500, not a hung caller
                response = Response(500, f"error: {exc}\n")
            body = response.body
            if isinstance(body, dict):
                body = json.dumps(body, indent=1) + "\n"
            data = body.encode() if isinstance(body, str) else body
            self.send_response(response.status)
            kind = "application/json" if isinstance(response.body, dict) else "text/plain"
            self.send_header("content-type", f"{kind}; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # do_GET prints its own line

    return _Handler


def _is_tracing(name: str) -> bool:
    return (
        name in ISTIO_HEADERS
        or name in BAGGAGE_HEADERS
        or name.startswith(BAGGAGE_PREFIXES)
        or name in ("traceparent", "tracestate", "user-agent", "uber-trace-id")
    )


def role() -> str:
    """The role an app module was started as: its first argument."""
    if len(sys.argv) < 2:
        raise SystemExit(f"usage: {sys.argv[0]} ROLE")
    return sys.argv[1]
