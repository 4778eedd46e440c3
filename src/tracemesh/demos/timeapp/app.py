"""`GET /` says hello world; `GET /gettime` tells the time inside a span of its own (OpenTelemetry
SDK), a child of the SERVER span its sidecar started: gateway -> sidecar -> application code."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from tracemesh.demos import otel
from tracemesh.demos.app_kit import TRACE_ID_HEADER, Request, Response, serve, trace_id

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


class TimeApp:
    def __init__(self, tracer: Tracer | None) -> None:
        self.tracer = tracer

    def __call__(self, request: Request) -> Response:
        headers = {TRACE_ID_HEADER: trace_id(request.headers)}
        if request.path == "/":
            return Response(body="hello world\n", headers=headers)
        if request.path != "/gettime":
            return Response(404, "try / or /gettime\n")
        if self.tracer is None:
            return Response(body=self.now() + "\n", headers=headers)
        from opentelemetry import propagate, trace

        context = propagate.extract(request.headers)
        with self.tracer.start_as_current_span("gettime", context, trace.SpanKind.INTERNAL) as span:
            now = self.now()
            span.set_attribute("time.now", now)
        return Response(body=now + "\n", headers=headers)

    @staticmethod
    def now() -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def main() -> None:
    if not otel.available():
        print(f"/gettime makes no span: {otel.INSTALL_HINT}", file=sys.stderr, flush=True)
        serve(TimeApp(None))
        return
    provider = otel.provider()
    serve(TimeApp(provider.get_tracer("tracemesh.demos.timeapp")), provider.shutdown)


if __name__ == "__main__":
    main()
