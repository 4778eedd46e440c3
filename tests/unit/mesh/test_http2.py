"""The sans-IO HTTP/2 pieces: heads to and from header lists, gRPC's status rules, and the
flow-controlled `Sender`, exercised between two in-memory h2 connections (no sockets)."""

from __future__ import annotations

import contextlib

import pytest
from h2.connection import H2Connection
from h2.events import DataReceived, Event, RequestReceived, StreamEnded, TrailersReceived
from h2.exceptions import H2Error
from hypothesis import given, settings
from hypothesis import strategies as st

from tracemesh.mesh.http1 import DEFAULT_LIMITS, H2_PREFACE, Limits, RequestHead, ResponseHead
from tracemesh.mesh.http2 import (
    STREAM_WINDOW,
    BadRequest,
    FrameGuard,
    GrpcOutcome,
    Sender,
    downstream_response,
    grpc_timeout,
    http_to_grpc_status,
    local_response,
    new_connection,
    percent_encode,
    request_head,
    response_head,
    upstream_request,
)

GRPC_REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/test.Echo/Reverse"),
    (b":authority", b"Echo:50051"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
    (b"grpc-timeout", b"5S"),
    (b"x-b3-sampled", b"1"),
]


def test_request_head_moves_pseudo_headers_out() -> None:
    head = request_head(GRPC_REQUEST, DEFAULT_LIMITS)
    assert (head.method, head.target, head.version, head.host) == (
        b"POST", b"/test.Echo/Reverse", b"2.0", b"echo:50051",
    )  # fmt: skip
    assert all(not name.startswith(b":") for name, _ in head.headers)
    assert (b"grpc-timeout", b"5S") in head.headers


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ([(b":method", b"CONNECT")], 405),
        ([(b":path", b"x" * 9000)], 414),
        ([(b":path", b"relative")], 400),
        ([(b"x-h%d" % i, b"v") for i in range(101)], 431),
    ],
)
def test_request_head_refusals(change: list[tuple[bytes, bytes]], status: int) -> None:
    names = {name for name, _ in change}
    raw = [item for item in GRPC_REQUEST if item[0] not in names] + change
    with pytest.raises(BadRequest) as refused:
        request_head(raw, DEFAULT_LIMITS)
    assert refused.value.status == status


def test_upstream_request_edits_and_drops_connection_headers() -> None:
    head = RequestHead(
        b"POST", b"/a", b"2.0",
        [(b"connection", b"x"), (b"keep-alive", b"1"), (b"te", b"trailers, deflate"),
         (b"host", b"old"), (b"x-b3-traceid", b"old"), (b"x-gone", b"1"), (b"x-kept", b"1")],
        True, b"echo",
    )  # fmt: skip
    out = upstream_request(
        head, set_headers=[(b"x-b3-traceid", b"new")], remove=[b"x-gone"],
        authority=b"echo.default:50051", path=b"/b",
    )  # fmt: skip
    assert out == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", b"echo.default:50051"),
        (b":path", b"/b"),
        (b"te", b"trailers"),
        (b"x-kept", b"1"),
        (b"x-b3-traceid", b"new"),
    ]


def test_response_heads_both_ways() -> None:
    head = response_head([(b":status", b"200"), (b"content-type", b"application/grpc")])
    assert head.status == 200 and head.headers == [(b"content-type", b"application/grpc")]
    assert response_head([(b":status", b"2000")]).status == 0
    head = ResponseHead(503, b"", b"2.0", [(b"transfer-encoding", b"chunked"), (b"x", b"1")], True)
    assert downstream_response(head) == [(b":status", b"503"), (b"x", b"1")]


def test_grpc_local_reply_is_trailers_only_with_envoys_mapping() -> None:
    headers, body = local_response(503, b"no healthy upstream\n", (), grpc=True)
    assert body == b""
    assert headers == [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-status", b"14"),
        (b"grpc-message", b"no healthy upstream"),
    ]
    assert [http_to_grpc_status(s) for s in (400, 401, 403, 404, 429, 502, 503, 504, 500)] == [
        13, 16, 7, 12, 14, 14, 14, 14, 2,
    ]  # fmt: skip
    headers, body = local_response(404, b"no route\n", (), grpc=False)
    assert headers[0] == (b":status", b"404") and body == b"no route\n"
    assert (b"content-length", b"9") in headers
    assert percent_encode("50% \u00e9\n") == b"50%25 %C3%A9%0A"


def test_grpc_outcome_tags_and_envoys_error_rule() -> None:
    outcome = GrpcOutcome.of_request(request_head(GRPC_REQUEST, DEFAULT_LIMITS))
    assert outcome is not None
    assert outcome.tags == {
        "grpc.path": "/test.Echo/Reverse",
        "grpc.authority": "echo:50051",
        "grpc.content_type": "application/grpc",
        "grpc.timeout": "5S",
    }
    errors = set()
    for code in range(17):
        outcome.read_status([(b"grpc-status", b"%d" % code), (b"grpc-message", b"m")])
        assert outcome.tags["grpc.status_code"] == str(code)
        assert outcome.tags["grpc.message"] == "m"
        if outcome.error:
            errors.add(code)
    assert errors == {2, 4, 8, 12, 13, 14, 15}  # upstream errors; client-side ones are not
    plain = request_head([(b":method", b"GET"), (b":path", b"/")], DEFAULT_LIMITS)
    assert GrpcOutcome.of_request(plain) is None


def test_grpc_timeout_header() -> None:
    def parse(value: bytes) -> float | None:
        return grpc_timeout([(b"x", b"1"), (b"grpc-timeout", value)])

    assert parse(b"5S") == 5.0 and parse(b"250m") == 0.25 and parse(b"2M") == 120.0
    assert parse(b"1H") == 3600.0 and parse(b"100u") == pytest.approx(1e-4)
    assert parse(b"123456789S") is None and parse(b"5s") is None and parse(b"S") is None
    assert grpc_timeout([]) is None


# -- the Sender between two in-memory connections --


def pair() -> tuple[H2Connection, H2Connection]:
    client = new_connection(DEFAULT_LIMITS, client=True)
    server = new_connection(DEFAULT_LIMITS, client=False)
    exchange(client, server)
    return client, server


def exchange(a: H2Connection, b: H2Connection) -> tuple[list[Event], list[Event]]:
    """Pump bytes both ways until quiet: (events at a, events at b)."""
    at_a: list[Event] = []
    at_b: list[Event] = []
    while True:
        to_b, to_a = a.data_to_send(), b.data_to_send()
        if not to_b and not to_a:
            return at_a, at_b
        if to_b:
            at_b += b.receive_data(to_b)
        if to_a:
            at_a += a.receive_data(to_a)


def test_sender_respects_the_window_and_resumes_when_it_opens() -> None:
    client, server = pair()
    sender = Sender(client)
    client.send_headers(1, GRPC_REQUEST)
    body = bytes(range(256)) * (3 * STREAM_WINDOW // 256)
    assert sender.data(1, body) == STREAM_WINDOW  # exactly one window goes, the rest waits
    sender.end(1, [(b"x-trailer", b"1")])
    _, events = exchange(client, server)
    received = b"".join(e.data for e in events if isinstance(e, DataReceived))
    assert received == body[:STREAM_WINDOW] and sender.pending(1) == 2 * STREAM_WINDOW
    total = len(received)
    while sender.pending(1) or 1 in sender.streams:
        server.acknowledge_received_data(STREAM_WINDOW, 1)  # the far side passed it on
        exchange(client, server)
        sent = sender.flush_all().get(1, 0)
        assert 0 < sent <= STREAM_WINDOW
        _, events = exchange(client, server)
        chunk = b"".join(e.data for e in events if isinstance(e, DataReceived))
        assert len(chunk) == sent
        total += sent
        received += chunk
    assert received == body and total == len(body)
    assert any(isinstance(e, TrailersReceived) for e in events)
    assert any(isinstance(e, StreamEnded) for e in events)


def test_a_blocked_sender_holds_everything() -> None:
    client, server = pair()
    sender = Sender(client)
    client.send_headers(1, GRPC_REQUEST)
    sender.blocked = True
    assert sender.data(1, b"x" * 10) == 0
    sender.end(1)
    _, events = exchange(client, server)
    assert not any(isinstance(e, (DataReceived, StreamEnded)) for e in events)
    sender.blocked = False
    assert sender.flush_all() == {1: 10}
    _, events = exchange(client, server)
    assert any(isinstance(e, StreamEnded) for e in events)


def test_a_reset_stream_drops_its_queue() -> None:
    client, server = pair()
    sender = Sender(client)
    client.send_headers(1, GRPC_REQUEST)
    sender.data(1, b"x" * (STREAM_WINDOW + 10))
    exchange(client, server)
    server.reset_stream(1)
    exchange(client, server)
    assert sender.flush(1) == 0 and sender.streams == []


def test_header_lists_over_the_limit_are_refused_by_h2() -> None:
    limits = Limits(max_head_bytes=4096)
    client = new_connection(DEFAULT_LIMITS, client=True)
    server = new_connection(limits, client=False)
    exchange(client, server)
    client.send_headers(1, [*GRPC_REQUEST, (b"x-big", b"v" * 8000)], end_stream=True)
    with pytest.raises(H2Error):
        server.receive_data(client.data_to_send())
    assert 7 in frame_types(server.data_to_send())  # GOAWAY queued, to be sent before closing


def test_frame_guard_refuses_an_oversized_frame_header_at_once() -> None:
    guard = FrameGuard(skip=len(H2_PREFACE))
    frame = b"\x00\x00\x03\x00\x00\x00\x00\x00\x01abc"
    stream = H2_PREFACE + frame * 3
    for at in range(0, len(stream), 5):  # cut anywhere
        assert guard.feed(stream[at : at + 5])
    assert guard.feed(b"\x00\x40\x00")  # 16384: the largest allowed, header not complete yet
    assert guard.feed(b"\x00\x00\x00\x00\x00\x01" + b"x" * 16384)
    assert not guard.feed(b"\x00\x40\x01\x00\x00\x00\x00\x00\x01")  # 16385: refused
    assert not FrameGuard(skip=len(H2_PREFACE)).feed(H2_PREFACE + b"GET / HTTP/1.1\r\n")


def frame_types(data: bytes) -> list[int]:
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        types.append(data[3])
        data = data[9 + length :]
    return types


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_after_the_preface_is_an_h2_error_or_nothing(garbage: bytes) -> None:
    """Whatever follows the preface, h2 either makes sense of it or raises its own error,
    which the server answers with GOAWAY; heads it accepts parse or are refused cleanly."""
    server = new_connection(DEFAULT_LIMITS, client=False)
    try:
        events = server.receive_data(H2_PREFACE + garbage)
    except H2Error:
        return
    for event in events:
        if isinstance(event, RequestReceived):
            with contextlib.suppress(BadRequest):
                request_head(event.headers, DEFAULT_LIMITS)
