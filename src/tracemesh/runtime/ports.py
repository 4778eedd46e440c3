"""Every default port in one place; Jaeger's numbers, so existing clients work unchanged."""

from __future__ import annotations

OTLP_GRPC = 4317
OTLP_HTTP = 4318
AGENT_JAEGER_COMPACT = 6831  # UDP
AGENT_JAEGER_BINARY = 6832  # UDP
AGENT_ZIPKIN_COMPACT = 5775  # UDP
AGENT_SAMPLING_HTTP = 5778
COLLECTOR_GRPC = 14250
COLLECTOR_HTTP = 14268
ZIPKIN_HTTP = 9411
QUERY_GRPC = 16685
QUERY_HTTP = 16686
ADMIN_HTTP = 14269
AGENT_ADMIN_HTTP = 14271
QUERY_ADMIN_HTTP = 16687
SIDECAR_OUTBOUND = 15001  # Istio's outbound capture port
SIDECAR_INBOUND = 15006  # Istio's inbound capture port
SIDECAR_ADMIN = 15020  # Istio's merged metrics and health port
GATEWAY_ADMIN = 15021
