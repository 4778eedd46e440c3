"""The OpenTelemetry SDK set up from the variables the runner gives every app (`OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_ENDPOINT` and `_PROTOCOL`, `OTEL_PROPAGATORS`,
`OTEL_TRACES_SAMPLER`): the SDK reads them itself; this only picks the exporter for the protocol.

The SDK is the `demo` extra (`pip install 'tracemesh[demo]'`), not a dependency of tracemesh:
without it, `available()` is False and the instrumented demos say so.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

INSTALL_HINT = "the OpenTelemetry SDK is not installed: pip install 'tracemesh[demo]'"


def available() -> bool:
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")
    )


def provider() -> TracerProvider:
    """A tracer provider exporting to the mesh's collector, also made the global one."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporter: SpanExporter
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        exporter = GrpcExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    tracer_provider = TracerProvider(resource=Resource.create())
    # Half a second, not the default 5: a demo's traces should show up while you look.
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(tracer_provider)
    return tracer_provider
