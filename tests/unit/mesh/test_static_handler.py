"""StaticHandler's routing decision, without sockets."""

from __future__ import annotations

import pytest

from tracemesh.mesh.handler import Exchange, Forward, Respond
from tracemesh.mesh.http1 import RequestHead, RequestParser
from tracemesh.mesh.static import StaticHandler


def exchange(raw: bytes) -> Exchange:
    head = RequestParser().feed(raw)[0]
    assert isinstance(head, RequestHead)
    return Exchange(head, ("127.0.0.1", 5000), 0, 0.0)


def test_one_upstream_takes_everything() -> None:
    handler = StaticHandler(("10.0.0.1", 8080))
    decision = handler.on_request(exchange(b"GET / HTTP/1.1\r\nHost: anything\r\n\r\n"))
    assert isinstance(decision, Forward) and (decision.host, decision.port) == ("10.0.0.1", 8080)


def test_routes_by_host_with_or_without_port_and_refuses_unknown() -> None:
    handler = StaticHandler(services={"Reviews": ("127.0.0.1", 9080), "ratings:9080": ("h", 1)})
    for host in (b"reviews", b"REVIEWS:9080"):
        decision = handler.on_request(exchange(b"GET / HTTP/1.1\r\nHost: %b\r\n\r\n" % host))
        assert isinstance(decision, Forward) and decision.cluster == "Reviews"
    decision = handler.on_request(exchange(b"GET / HTTP/1.1\r\nHost: ratings:9080\r\n\r\n"))
    assert isinstance(decision, Forward) and decision.host == "h"
    for host in (b"ratings", b"evil.example", b"127.0.0.1:9080"):
        decision = handler.on_request(exchange(b"GET / HTTP/1.1\r\nHost: %b\r\n\r\n" % host))
        assert decision == Respond(404, b"no route for this host\n", flag="NR")
    proxied = exchange(b"GET http://reviews/r HTTP/1.1\r\nHost: elsewhere\r\n\r\n")
    assert isinstance(handler.on_request(proxied), Forward)


def test_needs_somewhere_to_send() -> None:
    with pytest.raises(ValueError, match="upstream"):
        StaticHandler()
