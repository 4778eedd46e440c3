"""Chapter 7's two services, in one module: `python -m tracemesh.demos.hello.app hello|formatter`.

hello:
  GET /sayHello/{name}   instrumented with the OpenTelemetry SDK: a SERVER span continuing the
                         context its sidecar injected, a CLIENT span around the formatter call,
                         and `user-agent` baggage set from the User-Agent header (as the book's
                         HelloController does) unless the request brought that baggage already.
  GET /sayHello2/{name}  not instrumented: copies the tracing headers to its formatter call.
formatter:
  GET /formatGreeting?name=X  v1 greets a puny human; v2 (PROFESSOR=true) has good news.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from tracemesh.demos import otel
from tracemesh.demos.app_kit import (
    TRACE_ID_HEADER,
    Request,
    Response,
    call,
    copy_headers,
    role,
    serve,
    trace_id,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

FORMATTER = "formatter:8080"


def formatter(request: Request) -> Response:
    if request.path != "/formatGreeting":
        return Response(404, "not found\n")
    name = request.query.get("name", "stranger")
    if os.environ.get("PROFESSOR") == "true":
        return Response(body=f"Good news, {name}! If anyone needs me I'll be in the Angry Dome!")
    return Response(
        body=f"Hello, puny human {name}! Morbo asks: how do you like running on Kubernetes?"
    )


class Hello:
    def __init__(self, tracer: Tracer | None) -> None:
        self.tracer = tracer

    def __call__(self, request: Request) -> Response:
        prefix, _, name = request.path.rpartition("/")
        if prefix == "/sayHello2" or (prefix == "/sayHello" and self.tracer is None):
            status, body = call(FORMATTER, f"/formatGreeting?name={name}",
                                copy_headers(request.headers))  # fmt: skip
        elif prefix == "/sayHello":
            status, body = self.instrumented(request, name)
        else:
            return Response(404, "try /sayHello/{name} or /sayHello2/{name}\n")
        headers = {TRACE_ID_HEADER: trace_id(request.headers)}  # a failure's trace matters most
        if status != 200:
            text = f"formatter answered {status}: {body.decode(errors='replace')}\n"
            return Response(502, text, headers)
        return Response(body=body.decode() + "\n", headers=headers)

    def instrumented(self, request: Request, name: str) -> tuple[int, bytes]:
        from opentelemetry import baggage, propagate
        from opentelemetry import context as contexts

        assert self.tracer is not None
        context = propagate.extract(request.headers)
        if baggage.get_baggage("user-agent", context) is None:
            agent = request.headers.get("user-agent", "")
            context = baggage.set_baggage("user-agent", agent, context)
        token = contexts.attach(context)  # spans started below see the baggage too
        try:
            return self._traced_call(name, request.headers.get("x-request-id", ""))
        finally:
            contexts.detach(token)

    def _traced_call(self, name: str, request_id: str) -> tuple[int, bytes]:
        from opentelemetry import propagate, trace

        assert self.tracer is not None
        kind = trace.SpanKind
        with self.tracer.start_as_current_span(
            "GET /sayHello/{name}",
            kind=kind.SERVER,
            attributes={"http.route": "/sayHello/{name}", "name": name},
        ) as server:
            with self.tracer.start_as_current_span(
                "GET /formatGreeting", kind=kind.CLIENT, attributes={"peer.service": "formatter"}
            ):
                headers = {"x-request-id": request_id}
                propagate.inject(headers)  # traceparent and baggage
                status, body = call(FORMATTER, f"/formatGreeting?name={name}", headers)
            server.set_attribute("http.response.status_code", 200 if status == 200 else 502)
            return status, body


def main() -> None:
    if role() == "formatter":
        serve(formatter)
        return
    if not otel.available():
        print(f"/sayHello is not instrumented: {otel.INSTALL_HINT}", file=sys.stderr, flush=True)
        serve(Hello(None))
        return
    provider = otel.provider()
    serve(Hello(provider.get_tracer("tracemesh.demos.hello")), provider.shutdown)


if __name__ == "__main__":
    main()
