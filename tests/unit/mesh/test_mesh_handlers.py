"""The sidecar's and the gateway's decisions and spans, without sockets: an `Exchange` in, a
`Forward` or `Respond` out, the span reported at `on_end`."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest

from tracemesh.mesh.config_file import load_mesh
from tracemesh.mesh.gateway import GatewayHandler, Trust
from tracemesh.mesh.handler import Exchange, Forward, Respond
from tracemesh.mesh.http1 import RequestHead, RequestParser, ResponseHead
from tracemesh.mesh.registry import from_endpoints
from tracemesh.mesh.reporter import ReportProtocol
from tracemesh.mesh.routing import Router
from tracemesh.mesh.sampler import Sampler
from tracemesh.mesh.sidecar import InboundHandler, OutboundHandler, with_services
from tracemesh.mesh.tracing import (
    MAX_PATH_TAG,
    ProxyIdentity,
    Tracer,
    build_span,
    propagator_for,
)
from tracemesh.model.span import Span, SpanKind, StatusCode
from tracemesh.propagation import Propagator
from tracemesh.propagation.context import SpanContext
from tracemesh.runtime.proxy_options import CHOICES

MESH = load_mesh(
    textwrap.dedent(
        """\
        services:
          - {name: hello, command: [h], port: 8080}
          - {name: formatter, command: [f], port: 8081, labels: {version: v1}}
          - {name: formatter, command: [f], port: 8081, labels: {version: v2}}
        routes:
          formatter:
            subsets: {v1: {labels: {version: v1}}, v2: {labels: {version: v2}},
                      v3: {labels: {version: v3}}}
            http:
              - name: netscape
                match: [{baggage: {user-agent: {regex: ".*Netscape.*"}}}]
                route: [{service: formatter, subset: v2}]
              - match: [{headers: {x-fault: {exact: abort}}}]
                fault: {abort: {httpStatus: 418}}
                route: [{service: formatter}]
              - match: [{headers: {x-subset: {exact: v3}}}]
                route: [{service: formatter, subset: v3}]
              - route: [{service: formatter, subset: v1}]
        gateway:
          routes:
            - {prefix: /sayHello, service: hello}
            - {prefix: /api/, service: formatter, rewrite: /, name: formatter-api}
        """
    )
)
REGISTRY = from_endpoints(
    ["formatter[version=v1]=10.0.0.1:15006", "formatter[version=v2]=10.0.0.2:15006",
     "formatter[version=v2]=10.0.0.3:15006", "hello=10.0.0.9:15006"]
)  # fmt: skip
SAMPLED_ID = "3d2e6d1c-9f0b-4c1a-8a7e-2b4c6d8e0f12"  # draw 0x3d2e6d1c % 10000 = 4540


class Spans(list[Span]):
    def report(self, span: Span) -> None:
        self.append(span)


def tracer(service: str = "hello", sampling: float = 100.0, **labels: str) -> Tracer:
    identity = ProxyIdentity(service, labels=labels)
    return Tracer(identity, propagator_for(["b3", "w3c", "jaeger", "baggage"]), Sampler(sampling),
                  Spans())  # fmt: skip


def spans(t: Tracer) -> Spans:
    assert isinstance(t.sink, Spans)
    return t.sink


def exchange(raw: bytes) -> Exchange:
    head = RequestParser().feed(raw)[0]
    assert isinstance(head, RequestHead)
    return Exchange(head, ("10.1.1.1", 40000), 1_700_000_000_000_000_000, 100.0)


def finish(handler: object, ex: Exchange, status: int = 200, flags: str = "-") -> None:
    ex.status, ex.end = status, ex.start + 0.25
    if flags != "-":
        ex.add_flag(flags)
    ex.response_bytes = 12
    handler.on_end(ex)  # type: ignore[attr-defined]


def headers_of(forward: Forward) -> dict[bytes, bytes]:
    return dict(forward.set_headers)


def outbound(t: Tracer, rand: float = 0.5) -> OutboundHandler:
    router = Router(with_services(MESH, REGISTRY.services))
    return OutboundHandler(t, router, REGISTRY, ports={"formatter": 8081, "hello": 8080},
                           known=MESH.service_names(), rand=lambda: rand)  # fmt: skip


# -- inbound --


def test_inbound_names_from_the_decorator_injects_its_span_and_hides_the_header() -> None:
    t = tracer("formatter", version="v2")
    handler = InboundHandler(t, ("127.0.0.1", 9000), 8081)
    ex = exchange(
        b"GET /formatGreeting?name=x HTTP/1.1\r\nHost: formatter:8081\r\n"
        b"x-b3-traceid: 463ac35c9f6413ad48485a3953bb6124\r\nx-b3-spanid: a2fb4a1d1a96d312\r\n"
        b"x-b3-sampled: 1\r\nx-envoy-decorator-operation: netscape\r\n"
        b"x-request-id: " + SAMPLED_ID.encode() + b"\r\nuser-agent: curl/8\r\n\r\n"
    )
    forward = handler.on_request(ex)
    assert isinstance(forward, Forward)
    assert (forward.host, forward.port, forward.cluster) == ("127.0.0.1", 9000, "inbound|8081||")
    assert b"x-envoy-decorator-operation" in forward.remove_headers
    sent = headers_of(forward)
    assert sent[b"x-b3-traceid"] == b"463ac35c9f6413ad48485a3953bb6124"
    assert sent[b"x-b3-parentspanid"] == b"a2fb4a1d1a96d312"
    assert sent[b"x-request-id"] == SAMPLED_ID.encode()  # decided upstream: kept as it is
    assert sent[b"traceparent"].startswith(b"00-463ac35c9f6413ad48485a3953bb6124-")
    ex.forward, ex.upstream = forward, ("127.0.0.1", 9000)
    finish(handler, ex)
    (span,) = spans(t)
    assert span.name == "netscape" and span.kind is SpanKind.SERVER
    assert span.parent_span_id.hex() == "a2fb4a1d1a96d312"
    assert span.span_id.hex().encode() == sent[b"x-b3-spanid"]
    assert span.resource.attributes == {
        "service.name": "formatter.default", "service.namespace": "default",
        "service.version": "v2",
    }  # fmt: skip
    assert span.attributes["user_agent"] == "curl/8"
    assert span.attributes["upstream_address"] == "127.0.0.1:9000"
    assert span.end_ns - span.start_ns == 250_000_000


def test_inbound_without_context_starts_a_trace_and_a_request_id() -> None:
    t = tracer()
    handler = InboundHandler(t, ("127.0.0.1", 9000), 8080)
    forward = handler.on_request(exchange(b"GET / HTTP/1.1\r\nHost: hello\r\n\r\n"))
    assert isinstance(forward, Forward)
    sent = headers_of(forward)
    request_id = sent[b"x-request-id"].decode()
    assert len(request_id) == 36 and request_id[14] == "9"  # new, and marked sampled
    assert b"x-b3-parentspanid" not in sent and sent[b"x-b3-sampled"] == b"1"


def test_unsampled_requests_propagate_but_report_nothing() -> None:
    t = tracer(sampling=0.0)
    handler = InboundHandler(t, ("127.0.0.1", 9000), 8080)
    ex = exchange(b"GET / HTTP/1.1\r\nHost: hello\r\n\r\n")
    forward = handler.on_request(ex)
    assert isinstance(forward, Forward) and headers_of(forward)[b"x-b3-sampled"] == b"0"
    finish(handler, ex)
    assert spans(t) == []
    forced = exchange(b"GET / HTTP/1.1\r\nHost: hello\r\nx-envoy-force-trace: 1\r\n\r\n")
    forward = handler.on_request(forced)
    assert isinstance(forward, Forward)
    assert headers_of(forward)[b"x-request-id"][14:15] == b"a"  # service-forced
    finish(handler, forced)
    assert len(spans(t)) == 1


# -- outbound --


def test_outbound_routes_by_baggage_to_the_subset_and_names_the_span() -> None:
    t = tracer(version="v1")
    handler = outbound(t)
    ex = exchange(
        b"GET /formatGreeting HTTP/1.1\r\nHost: formatter:8081\r\n"
        b"jaeger-baggage: user-agent=Netscape 4\r\n\r\n"
    )
    forward = handler.on_request(ex)
    assert isinstance(forward, Forward)
    assert forward.host in ("10.0.0.2", "10.0.0.3") and forward.cluster == (
        "outbound|8081|v2|formatter"
    )
    sent = headers_of(forward)
    assert sent[b"x-envoy-decorator-operation"] == b"netscape"
    assert sent[b"baggage"] == b"user-agent=Netscape%204"
    assert sent[b"uberctx-user-agent"] == b"Netscape%204"
    ex.forward = forward
    finish(handler, ex)
    (span,) = spans(t)
    assert (span.name, span.kind) == ("netscape", SpanKind.CLIENT)
    assert span.resource.attributes["service.name"] == "hello.default"


@pytest.mark.parametrize(
    ("host", "name"),
    [
        (b"formatter", "formatter:8081/*"),
        (b"formatter:9999", "formatter:9999/*"),
        (b"FORMATTER.default.svc.cluster.local:8081", "formatter:8081/*"),
        (b"formatter.default", "formatter:8081/*"),
    ],
)
def test_outbound_finds_the_service_in_the_host(host: bytes, name: str) -> None:
    t = tracer()
    forward = outbound(t).on_request(exchange(b"GET / HTTP/1.1\r\nHost: %b\r\n\r\n" % host))
    assert isinstance(forward, Forward) and forward.host == "10.0.0.1"
    assert headers_of(forward)[b"x-envoy-decorator-operation"] == name.encode()


@pytest.mark.parametrize("host", [b"evil.example", b"127.0.0.1:22", b"formatter.other", b"x"])
def test_outbound_is_no_open_proxy(host: bytes) -> None:
    t = tracer()
    handler = outbound(t)
    ex = exchange(b"GET http://%b/ HTTP/1.1\r\nHost: formatter\r\n\r\n" % host)
    decision = handler.on_request(ex)
    assert isinstance(decision, Respond) and (decision.status, decision.flag) == (404, "NR")
    finish(handler, ex, 404, "NR")
    (span,) = spans(t)
    assert span.attributes["response_flags"] == "NR"
    assert span.status.code is StatusCode.UNSET  # a 404 is no error


def test_outbound_fault_abort_and_missing_instances() -> None:
    t = tracer()
    handler = outbound(t)
    abort = handler.on_request(
        exchange(b"GET / HTTP/1.1\r\nHost: formatter\r\nx-fault: abort\r\n\r\n")
    )
    assert isinstance(abort, Respond) and (abort.status, abort.flag) == (418, "FI")
    none = handler.on_request(
        exchange(b"GET / HTTP/1.1\r\nHost: formatter\r\nx-subset: v3\r\n\r\n")
    )
    assert isinstance(none, Respond) and (none.status, none.flag) == (503, "UH")


def test_outbound_retries_another_instance_then_gives_up_with_urx() -> None:
    t = tracer()
    handler = outbound(t, rand=0.0)
    ex = exchange(b"GET / HTTP/1.1\r\nHost: formatter\r\nbaggage: user-agent=Netscape\r\n\r\n")
    first = handler.on_request(ex)
    assert isinstance(first, Forward)
    ex.forward, ex.attempts, ex.upstream = first, 1, (first.host, first.port)
    head = ResponseHead(503, b"Service Unavailable", b"1.1", [], True)
    retry = handler.on_response(ex, head)
    assert retry is not None and retry.host != first.host  # the other v2 instance
    assert retry.delay == 0.0 and retry.set_headers == first.set_headers
    ex.forward, ex.attempts, ex.upstream = retry, 2, (retry.host, retry.port)
    again = handler.on_failure(ex, "UF")
    assert again is not None
    ex.attempts = 3
    assert handler.on_response(ex, head) is None
    assert ex.flags == "URX"
    assert handler.on_response(ex, replace(head, status=404)) is None  # not retriable


# -- gateway --


def gateway(t: Tracer, trust: Trust = Trust.CONTEXT) -> GatewayHandler:
    router = Router(MESH)
    return GatewayHandler(t, router, REGISTRY, trust=trust, ports={"hello": 8080},
                          rand=lambda: 0.5)  # fmt: skip


EDGE = (
    b"GET /sayHello/x HTTP/1.1\r\nHost: shop.example\r\nx-request-id: client-chosen\r\n"
    b"traceparent: 00-463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-01\r\n"
    b"x-envoy-force-trace: 1\r\nx-envoy-decorator-operation: spoofed\r\n"
    b"jaeger-baggage: user-agent=Netscape\r\njaeger-debug-id: dbg\r\n\r\n"
)


def test_gateway_trusting_context_keeps_it_but_not_internal_headers_or_the_request_id() -> None:
    t = tracer("ingress-gateway", sampling=0.0)
    handler = gateway(t)
    ex = exchange(EDGE)
    forward = handler.on_request(ex)
    assert isinstance(forward, Forward) and forward.host == "10.0.0.9"
    names = {name for name, _ in ex.request.headers}
    assert b"x-envoy-force-trace" not in names and b"x-request-id" not in names
    sent = headers_of(forward)
    assert sent[b"x-b3-traceid"] == b"463ac35c9f6413ad48485a3953bb6124"
    assert sent[b"x-request-id"] != b"client-chosen"
    assert sent[b"x-envoy-decorator-operation"] == b"hello:8080/sayHello*"
    assert sent[b"uberctx-user-agent"] == b"Netscape"
    finish(handler, ex)
    (span,) = spans(t)  # sampled by the incoming flags, not the 0%
    assert span.attributes["jaeger-debug-id"] == "dbg"


def test_gateway_reports_a_server_span_and_an_upstream_client_span_under_it() -> None:
    t = tracer("ingress-gateway")
    handler = gateway(t)
    ex = exchange(b"GET /sayHello/x HTTP/1.1\r\nHost: shop\r\nuser-agent: curl/8\r\n\r\n")
    forward = handler.on_request(ex)
    assert isinstance(forward, Forward)
    ex.forward, ex.upstream, ex.attempts = forward, ("10.0.0.9", 15006), 1
    ex.upstream_start = ex.start + 0.05
    finish(handler, ex)
    server, client = spans(t)
    assert (server.kind, client.kind) == (SpanKind.SERVER, SpanKind.CLIENT)
    assert server.parent_span_id == b"" and client.parent_span_id == server.span_id
    assert client.trace_id == server.trace_id and client.span_id != server.span_id
    sent = headers_of(forward)  # the service's parent is the upstream span
    assert sent[b"x-b3-spanid"] == client.span_id.hex().encode()
    assert sent[b"x-b3-parentspanid"] == server.span_id.hex().encode()
    assert server.name == "hello:8080/sayHello*" == sent[b"x-envoy-decorator-operation"].decode()
    assert client.name == "router outbound|8080||hello egress"
    assert server.attributes["peer.address"] == "10.1.1.1"
    assert server.attributes["user_agent"] == "curl/8"
    assert client.attributes["peer.address"] == "10.0.0.9"
    assert client.attributes["upstream_address"] == "10.0.0.9:15006"
    assert client.attributes["upstream_cluster"] == "outbound|8080||hello"
    assert client.attributes["http.status_code"] == "200" and "user_agent" not in client.attributes
    assert client.start_ns - server.start_ns == 50_000_000 and client.end_ns == server.end_ns
    # no upstream tried (no route): the SERVER span alone
    missing = exchange(b"GET /other HTTP/1.1\r\nHost: a\r\n\r\n")
    assert isinstance(handler.on_request(missing), Respond)
    finish(handler, missing, 404)
    assert [s.kind for s in spans(t)[2:]] == [SpanKind.SERVER]


def test_gateway_without_upstream_span_reports_one_client_span_as_istio_before_1_28() -> None:
    t = tracer("ingress-gateway")
    handler = GatewayHandler(t, Router(MESH), REGISTRY, ports={"hello": 8080},
                             rand=lambda: 0.5, upstream_span=False)  # fmt: skip
    ex = exchange(b"GET /sayHello/x HTTP/1.1\r\nHost: shop\r\n\r\n")
    forward = handler.on_request(ex)
    assert isinstance(forward, Forward)
    ex.forward, ex.upstream, ex.attempts = forward, ("10.0.0.9", 15006), 1
    finish(handler, ex)
    [client] = spans(t)
    assert client.kind == SpanKind.CLIENT and client.parent_span_id == b""
    assert headers_of(forward)[b"x-b3-spanid"] == client.span_id.hex().encode()
    assert client.name == "hello:8080/sayHello*"


def test_gateway_trusting_nothing_starts_every_trace_itself() -> None:
    t = tracer("ingress-gateway", sampling=0.0)
    ex = exchange(EDGE)
    forward = gateway(t, Trust.NONE).on_request(ex)
    assert isinstance(forward, Forward)
    names = {name for name, _ in ex.request.headers}
    assert names == {b"host"}
    sent = headers_of(forward)
    assert sent[b"x-b3-traceid"] != b"463ac35c9f6413ad48485a3953bb6124"
    assert sent[b"x-b3-sampled"] == b"0" and b"uberctx-user-agent" not in sent


def test_gateway_trusting_all_keeps_request_id_and_forcing() -> None:
    t = tracer("ingress-gateway", sampling=0.0)
    ex = exchange(EDGE.replace(b"traceparent", b"x-ignored"))
    forward = gateway(t, Trust.ALL).on_request(ex)
    assert isinstance(forward, Forward)
    assert headers_of(forward)[b"x-request-id"] == b"client-chosen"  # not a UUID: no reason bits


def test_gateway_rewrites_prefix_and_names_by_route() -> None:
    t = tracer("ingress-gateway")
    forward = gateway(t).on_request(exchange(b"GET /api/format HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert isinstance(forward, Forward)
    assert forward.path == b"/format" and forward.host == "10.0.0.1"
    assert headers_of(forward)[b"x-envoy-decorator-operation"] == b"formatter-api"
    missing = gateway(t).on_request(exchange(b"GET /other HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert isinstance(missing, Respond) and missing.flag == "NR"


# -- the span itself --


def test_span_tags_follow_envoy() -> None:
    identity = ProxyIdentity("reviews", "shop", {"version": "v3"})
    ex = exchange(
        b"POST /" + b"p" * 300 + b" HTTP/1.0\r\nHost: reviews:9080\r\nx-forwarded-proto: https\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    ex.status, ex.end, ex.attempts, ex.request_bytes = 0, ex.start + 1, 3, 7
    ex.flags = "UF,URX"
    context = SpanContext(bytes(range(1, 17)), bytes(range(1, 9)), request_id="rid")
    span = build_span(ex, context, SpanKind.CLIENT, "op", identity, debug_id="")
    a = span.attributes
    assert a["http.url"] == "https://reviews:9080/" + "p" * (MAX_PATH_TAG - 1)
    assert (a["http.method"], a["http.protocol"], a["http.status_code"]) == (
        "POST",
        "HTTP/1.0",
        "0",
    )
    assert (a["request_size"], a["response_flags"], a["retry.count"]) == ("7", "UF,URX", "2")
    assert (a["upstream_cluster"], a["user_agent"], a["peer.address"]) == ("-", "-", "10.1.1.1")
    assert a["guid:x-request-id"] == "rid" and a["component"] == "proxy"
    assert a["node_id"].startswith("sidecar~127.0.0.1~reviews-v3-")
    assert a["node_id"].endswith(".shop~shop.svc.cluster.local")
    assert span.status.code is StatusCode.ERROR  # no response at all
    assert span.resource.attributes["service.name"] == "reviews.shop"
    ex.status = 503
    assert build_span(ex, context, SpanKind.CLIENT, "op", identity).status.code is StatusCode.ERROR
    ex.status = 499
    assert build_span(ex, context, SpanKind.CLIENT, "op", identity).status.code is StatusCode.UNSET


def test_namespace_can_be_left_out_of_the_service_name() -> None:
    assert ProxyIdentity("hello", "").service_name == "hello"


def test_propagator_for_maps_the_mesh_file_formats() -> None:
    only_b3 = propagator_for(["b3"])
    assert only_b3.write == Propagator(write=["b3"]).write and only_b3.write_baggage == ()
    assert propagator_for(["w3c", "baggage"]).write_baggage
    with pytest.raises(ValueError, match="unknown propagation"):
        propagator_for(["b3", "xray"])


def test_cli_choices_are_the_enums_values() -> None:
    assert CHOICES["trust"] == tuple(t.value for t in Trust)
    assert CHOICES["collector_protocol"] == tuple(p.value for p in ReportProtocol)
