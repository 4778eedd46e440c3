"""The sidecar's decisions for captured connections (an `Exchange` with its original
destination): Host first, then the Service's cluster IP, then passthrough; inbound to the app's
port the caller addressed."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.mesh.test_mesh_handlers import MESH, exchange, finish, headers_of, spans, tracer
from tracemesh.mesh.handler import Exchange, Forward, Respond
from tracemesh.mesh.registry import Instance, Registry
from tracemesh.mesh.routing import Router
from tracemesh.mesh.sidecar import PASSTHROUGH, InboundHandler, OutboundHandler, with_services
from tracemesh.mesh.tracing import Tracer
from tracemesh.model.span import SpanKind

CAPTURED = Registry(
    {"formatter": [Instance(("10.252.0.3", 8081), {"version": "v1"})],
     "hello": [Instance(("10.252.0.9", 8080))]},
    {("10.96.0.20", 8081): "formatter", ("10.96.0.30", 8080): "hello"},
)  # fmt: skip


def outbound() -> tuple[OutboundHandler, Tracer]:
    t = tracer()
    router = Router(with_services(MESH, CAPTURED.services))
    handler = OutboundHandler(t, router, CAPTURED, ports={"formatter": 8081, "hello": 8080},
                              known=MESH.service_names(), rand=lambda: 0.5)  # fmt: skip
    return handler, t


def captured(raw: bytes, destination: tuple[str, int]) -> Exchange:
    return replace(exchange(raw), destination=destination)


def test_the_host_names_the_service_and_the_destination_port_the_span() -> None:
    handler, _ = outbound()
    ex = captured(b"GET / HTTP/1.1\r\nHost: formatter\r\n\r\n", ("10.96.0.20", 8081))
    forward = handler.on_request(ex)
    assert isinstance(forward, Forward) and (forward.host, forward.port) == ("10.252.0.3", 8081)
    assert headers_of(forward)[b"x-envoy-decorator-operation"] == b"formatter:8081/*"


def test_an_unknown_host_is_routed_by_the_cluster_ip_it_was_sent_to() -> None:
    handler, _ = outbound()
    ex = captured(b"GET / HTTP/1.1\r\nHost: 10.96.0.30:8080\r\n\r\n", ("10.96.0.30", 8080))
    forward = handler.on_request(ex)
    assert isinstance(forward, Forward) and forward.host == "10.252.0.9"
    assert forward.cluster == "outbound|8080||hello"


def test_the_host_wins_over_the_cluster_ip() -> None:
    handler, _ = outbound()
    ex = captured(b"GET / HTTP/1.1\r\nHost: formatter:8081\r\n\r\n", ("10.96.0.30", 8080))
    forward = handler.on_request(ex)
    assert isinstance(forward, Forward) and forward.host == "10.252.0.3"


def test_a_destination_outside_the_mesh_is_passed_through_with_a_client_span() -> None:
    handler, t = outbound()
    ex = captured(b"GET /x HTTP/1.1\r\nHost: api.example:8443\r\n\r\n", ("192.0.2.7", 8443))
    forward = handler.on_request(ex)
    assert isinstance(forward, Forward)
    assert (forward.host, forward.port, forward.cluster) == ("192.0.2.7", 8443, PASSTHROUGH)
    assert b"traceparent" in headers_of(forward)
    finish(handler, ex)
    (span,) = spans(t)
    assert span.kind is SpanKind.CLIENT and span.name == "api.example:8443/*"


def test_the_same_unknown_host_without_capture_is_still_refused() -> None:
    handler, _ = outbound()
    decision = handler.on_request(exchange(b"GET / HTTP/1.1\r\nHost: api.example\r\n\r\n"))
    assert isinstance(decision, Respond) and decision.status == 404


def test_inbound_reaches_the_app_on_the_port_the_caller_addressed() -> None:
    t = tracer("formatter", version="v1")
    handler = InboundHandler(t, ("127.0.0.1", 8081), 8081)
    other = handler.on_request(captured(b"GET / HTTP/1.1\r\nHost: f\r\n\r\n", ("10.0.0.3", 9000)))
    assert isinstance(other, Forward) and (other.host, other.port) == ("127.0.0.1", 9000)
    assert other.cluster == "inbound|9000||"
    usual = handler.on_request(captured(b"GET / HTTP/1.1\r\nHost: f\r\n\r\n", ("10.0.0.3", 8081)))
    assert isinstance(usual, Forward) and (usual.port, usual.cluster) == (8081, "inbound|8081||")
    plain = handler.on_request(exchange(b"GET / HTTP/1.1\r\nHost: f\r\n\r\n"))
    assert isinstance(plain, Forward) and plain.port == 8081
