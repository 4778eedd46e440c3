"""The demo apps' shared HTTP server on a real socket: what it forwards, what it answers to odd
requests, and the Chapter 7 formatter's two greetings."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracemesh.demos import app_kit
from tracemesh.demos.app_kit import Request, Response, copy_headers, trace_id
from tracemesh.demos.hello.app import formatter


def handler(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("broken demo")
    return Response(body={"path": request.path, "query": dict(request.query)})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), app_kit._handler_class(handler))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def get(port: int, target: str, method: str = "GET") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_handler_error_is_a_500_and_the_server_keeps_serving(port: int) -> None:
    status, body = get(port, "/boom")
    assert status == 500 and b"broken demo" in body
    assert get(port, "/ok?a=1")[0] == 200


def test_other_methods_are_refused(port: int) -> None:
    assert get(port, "/", "DELETE")[0] == 501


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60))
def test_any_target_gets_an_answer(port: int, path: str) -> None:
    status, _ = get(port, "/" + path)
    assert status in (200, 400, 404, 500)


def test_copy_headers_keeps_tracing_and_baggage_only() -> None:
    incoming = {"x-request-id": "r", "x-b3-traceid": "t", "baggage": "k=v",
                "uberctx-user-agent": "N", "cookie": "secret", "end-user": "jason"}  # fmt: skip
    assert copy_headers(incoming) == {"x-request-id": "r", "x-b3-traceid": "t",
                                      "baggage": "k=v", "uberctx-user-agent": "N"}  # fmt: skip
    assert copy_headers(incoming, ("end-user",))["end-user"] == "jason"


def test_trace_id_from_b3_or_w3c() -> None:
    assert trace_id({"x-b3-traceid": "abc"}) == "abc"
    w3c = "00-463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-01"
    assert trace_id({"traceparent": w3c}) == "463ac35c9f6413ad48485a3953bb6124"
    assert trace_id({"traceparent": "junk"}) == ""


def test_formatter_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    request = Request("GET", "/formatGreeting", {"name": "Fry"}, {})
    assert formatter(request).body == (
        "Hello, puny human Fry! Morbo asks: how do you like running on Kubernetes?"
    )
    monkeypatch.setenv("PROFESSOR", "true")
    assert (
        formatter(request).body == "Good news, Fry! If anyone needs me I'll be in the Angry Dome!"
    )
    assert formatter(Request("GET", "/other", {}, {})).status == 404
