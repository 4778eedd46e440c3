"""An application as it runs in an injected Pod: it reads only the environment the webhook gave
it, sends one trace with jaeger-client (UDP to JAEGER_AGENT_HOST:PORT) and one with the
OpenTelemetry SDK (OTLP to OTEL_EXPORTER_OTLP_ENDPOINT), and prints both trace ids."""

from __future__ import annotations

import os

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.unit.collector.jaeger_tracers import jaeger_tracer


def main() -> None:
    agent = {
        "reporting_host": os.environ["JAEGER_AGENT_HOST"],
        "reporting_port": int(os.environ["JAEGER_AGENT_PORT"]),
    }
    with (
        jaeger_tracer(
            agent["reporting_port"], os.environ["JAEGER_SERVICE_NAME"], local_agent=agent
        ) as tracer,
        tracer.start_span("jaeger-client hop") as span,
    ):
        pass
    print(f"{span.trace_id:032x}")
    provider = TracerProvider(resource=Resource.create({}))  # OTEL_SERVICE_NAME names it
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))  # endpoint from env
    with provider.get_tracer("pod").start_as_current_span("otel hop") as otel_span:
        pass
    provider.shutdown()
    print(f"{otel_span.get_span_context().trace_id:032x}")


if __name__ == "__main__":
    main()
