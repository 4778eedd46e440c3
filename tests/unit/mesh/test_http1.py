"""The sans-IO HTTP/1.1 layer on byte strings: events, refusals, limits, serializers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemesh.mesh.http1 import (
    END,
    H2_PREFACE,
    Event,
    Invalid,
    Limits,
    RequestHead,
    RequestParser,
    ResponseHead,
    ResponseParser,
    Tunnel,
    chunk,
    encode_request,
    encode_response,
    local_response,
)

DEFAULT = Limits()


def parse(data: bytes, limits: Limits = DEFAULT) -> list[Event]:
    return RequestParser(limits).feed(data)


def head_of(data: bytes) -> RequestHead:
    event = parse(data)[0]
    assert isinstance(event, RequestHead), event
    return event


def refusal(data: bytes, limits: Limits = DEFAULT) -> Invalid:
    event = parse(data, limits)[-1]
    assert isinstance(event, Invalid), event
    return event


def test_request_events_and_head_fields() -> None:
    events = parse(
        b"POST /a?b=1 HTTP/1.1\r\nHost: Svc:80\r\nX-One: 1\r\nContent-Length: 3\r\n\r\nabc"
    )
    head, body, end = events
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.version, head.host) == (
        b"POST",
        b"/a?b=1",
        b"1.1",
        b"svc:80",
    )
    assert head.headers == [(b"host", b"Svc:80"), (b"x-one", b"1"), (b"content-length", b"3")]
    assert (head.framing, head.content_length, head.keep_alive) == ("length", 3, True)
    assert (body, end) == (b"abc", END)


def test_chunked_body_events_and_trailers_dropped() -> None:
    events = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")  # fmt: skip
    head = events[0]
    assert isinstance(head, RequestHead) and head.framing == "chunked"
    assert events[1:] == [b"abc", b"de", END]
    assert (b"x-trailer", b"t") not in head.headers


def test_keep_alive_rules() -> None:
    assert not head_of(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive
    assert not head_of(b"GET / HTTP/1.0\r\n\r\n").keep_alive
    assert head_of(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive


def test_pipelined_requests_in_one_feed() -> None:
    events = parse(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [e.target for e in events if isinstance(e, RequestHead)] == [b"/1", b"/2"]
    assert events.count(END) == 2


def test_absolute_form_becomes_origin_form_with_host_from_the_url() -> None:
    head = head_of(b"GET http://Reviews:9080/r/1?x#frag HTTP/1.1\r\nHost: proxy:3128\r\n\r\n")
    assert (head.target, head.host) == (b"/r/1?x", b"reviews:9080")
    assert [v for n, v in head.headers if n == b"host"] == [b"reviews:9080"]
    assert head_of(b"GET http://svc?q=1 HTTP/1.1\r\nHost: a\r\n\r\n").target == b"/?q=1"
    assert head_of(b"GET http://svc HTTP/1.0\r\n\r\n").target == b"/"  # 1.0 needs no Host


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
         400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked"
         b"\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400),  # obs-fold
        (b"GET / HTTP/1.1\nHost: a\n\n", 400),  # bare LF
        (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: \x7f\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 505),
    ],
)  # fmt: skip
def test_refusals(data: bytes, status: int) -> None:
    assert refusal(data).status == status


def test_limits_431_and_414() -> None:
    small = Limits(max_head_bytes=1024, max_headers=5, max_target_bytes=64)
    many = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: 1\r\n" * 5 + b"\r\n"
    assert refusal(many, small).status == 431
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 1100 + b"\r\n\r\n"
    assert refusal(big, small).status == 431
    assert refusal(b"GET /" + b"a" * 64 + b" HTTP/1.1\r\n", small).status == 414
    trailers = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    assert refusal(trailers + b"T: 1\r\n" * 6 + b"\r\n", small).status == 431


def test_a_head_growing_across_feeds_is_cut_at_the_limit() -> None:
    parser = RequestParser(Limits(max_head_bytes=1024))
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX: ") == []
    fed = 0
    while not (events := parser.feed(b"v" * 200)):  # each feed is small, together too many
        fed += 200
    assert events == [Invalid(431, "request head too large")]
    assert 800 <= fed <= 1200  # cut within one feed of the limit, before it grows without end
    assert parser.feed(b"more") == events  # and it stays refused


def test_endless_chunk_extensions_are_cut() -> None:
    parser = RequestParser(Limits(max_head_bytes=1024))
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;")
    events: list[Event] = []
    for _ in range(10):
        events += parser.feed(b"e" * 200)
    assert isinstance(events[-1], Invalid) and events[-1].status == 400


def test_upgrade_and_h2_preface_become_tunnels() -> None:
    events = parse(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw"
    )
    head = events[0]
    assert isinstance(head, RequestHead) and head.upgrade == b"websocket"
    assert events[1:] == [END, Tunnel(b"raw")]
    parser = RequestParser()
    assert parser.feed(H2_PREFACE[:10]) == []  # could still be a preface: wait
    assert parser.feed(H2_PREFACE[10:] + b"frames") == [Tunnel(H2_PREFACE + b"frames")]
    assert isinstance(parse(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")[-1], Invalid)  # not the preface
    assert isinstance(parse(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n")[0], RequestHead)


def test_response_parser_framing() -> None:
    parser = ResponseParser()
    parser.start(b"GET")
    head, body, end = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nhi")
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason, head.framing, head.keep_alive) == (200, b"OK", "length", True)
    assert (body, end) == (b"hi", END)
    assert parser.idle


def test_response_to_head_has_no_body_and_the_parser_recovers() -> None:
    parser = ResponseParser()
    parser.start(b"HEAD")
    events = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert [type(e) for e in events] == [ResponseHead, type(END)] and parser.idle
    parser.start(b"GET")
    events = parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert isinstance(events[0], ResponseHead) and events[0].status == 204 and events[1] is END


def test_close_delimited_response_ends_at_eof() -> None:
    parser = ResponseParser()
    parser.start(b"GET")
    head, _ = parser.feed(b"HTTP/1.1 200 OK\r\n\r\nsome")
    assert isinstance(head, ResponseHead) and head.framing == "close" and not head.keep_alive
    assert parser.eof() == [END]
    cut = ResponseParser()
    cut.start(b"GET")
    cut.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert cut.eof() == [Invalid(502, "the upstream closed the connection mid-response")]


def test_interim_responses_then_final() -> None:
    parser = ResponseParser()
    parser.start(b"POST")
    events = parser.feed(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    statuses = [e.status for e in events if isinstance(e, ResponseHead)]
    assert statuses == [100, 200] and events.count(END) == 2


def test_response_refusals_are_502() -> None:
    for data in (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ):
        parser = ResponseParser()
        parser.start(b"GET")
        event = parser.feed(data)[-1]
        assert isinstance(event, Invalid) and event.status == 502, data


def test_encode_request_drops_hop_by_hop_and_applies_edits() -> None:
    head = head_of(
        b"POST /p HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
        b"Keep-Alive: 5\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nX-Old: 1\r\n"
        b"Proxy-Authorization: x\r\nX-End: e\r\n\r\n"
    )
    wire = encode_request(head, set_headers=[(b"x-old", b"2"), (b"traceparent", b"00-1")],
                          remove=[b"x-end"], host=b"b:81", target=b"/q")  # fmt: skip
    assert wire == (
        b"POST /q HTTP/1.1\r\nhost: b:81\r\nx-old: 2\r\ntraceparent: 00-1\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )


def test_encode_request_keeps_upgrade() -> None:
    head = head_of(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    wire = encode_request(head)
    assert wire == b"GET / HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"


def test_encode_response_and_local_response() -> None:
    headers = [(b"connection", b"x-a"), (b"x-a", b"1"), (b"content-type", b"text/plain")]
    head = ResponseHead(200, b"OK", b"1.1", headers, True, connection=b"x-a")
    assert encode_response(head, chunked=True, connection=b"close") == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n"
        b"connection: close\r\n\r\n"
    )
    assert local_response(404, b"no\n", close=True) == (
        b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 3\r\nconnection: close\r\n\r\nno\n"
    )
    assert chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"


# -- properties --

HEADER_NAMES = st.sampled_from([b"Accept", b"X-Trace", b"User-Agent", b"Cookie", b"X-B3-TraceId"])
VALUES = st.binary(min_size=0, max_size=40).map(
    lambda v: bytes(c for c in v if c in range(0x21, 0x7F) or c == 0x20).strip()
)
BODIES = st.binary(max_size=300)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        headers = b"".join(
            b"%b: %b\r\n" % (n, v)
            for n, v in draw(st.lists(st.tuples(HEADER_NAMES, VALUES), max_size=6))
        )
        body = draw(BODIES)
        if draw(st.booleans()):
            pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
            framed = b"".join(chunk(p) for p in pieces if p) + b"0\r\n\r\n"
            out += b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n%b\r\n%b" % (
                headers,
                framed,
            )
        else:
            out += b"PUT /l HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n%b\r\n%b" % (
                len(body),
                headers,
                body,
            )
    return out


def normalized(events: list[Event]) -> list[object]:
    """Events with adjacent body pieces joined (split points may cut a chunk in two)."""
    out: list[object] = []
    for event in events:
        if isinstance(event, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += event
        elif isinstance(event, RequestHead):
            out.append((event.method, event.target, event.headers, event.framing))
        else:
            out.append(event)
    return out


@given(requests(), st.lists(st.integers(0, 2000), max_size=8))
def test_any_split_of_valid_requests_gives_the_same_events(data: bytes, cuts: list[int]) -> None:
    whole = normalized(RequestParser().feed(data))
    assert not any(isinstance(e, Invalid) for e in whole)
    parser = RequestParser()
    events: list[Event] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        events += parser.feed(data[start:cut])
        start = cut
    assert normalized(events) == whole


@given(st.binary(max_size=2000), st.binary(max_size=200))
def test_arbitrary_bytes_give_events_or_a_clear_refusal_never_an_exception(
    data: bytes, more: bytes
) -> None:
    parser = RequestParser(Limits(max_head_bytes=512, max_headers=10, max_target_bytes=128))
    events = parser.feed(data) + parser.feed(more)
    assert all(isinstance(e, (RequestHead, bytes, type(END), Invalid, Tunnel)) for e in events)
    refusals = [e for e in events if isinstance(e, Invalid)]
    assert all(e.status in (400, 405, 414, 431, 501, 505) for e in refusals)
    response = ResponseParser(Limits(max_head_bytes=512))
    response.start(b"GET")
    for event in response.feed(data) + response.feed(more) + response.eof():
        assert not isinstance(event, Invalid) or event.status == 502


@given(st.binary(max_size=300).map(lambda b: b"GET / HTTP/1.1\r\nHost: a\r\n" + b))
def test_arbitrary_header_bytes_never_raise(data: bytes) -> None:
    for event in RequestParser().feed(data):
        assert isinstance(event, (RequestHead, bytes, type(END), Invalid, Tunnel))


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    headers = b"".join(
        b"%b: %b\r\n" % (n, v)
        for n, v in draw(st.lists(st.tuples(HEADER_NAMES, VALUES), max_size=6))
    )
    body = draw(BODIES)
    if draw(st.booleans()):
        framed = b"".join(chunk(body[i : i + 5]) for i in range(0, len(body), 5)) + b"0\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n%b\r\n%b" % (headers, framed)
    return b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n%b\r\n%b" % (len(body), headers, body)


@given(responses(), st.lists(st.integers(0, 1000), max_size=6))
def test_any_split_of_a_valid_response_gives_the_same_events(data: bytes, cuts: list[int]) -> None:
    def run(pieces: list[bytes]) -> list[object]:
        parser = ResponseParser()
        parser.start(b"GET")
        events: list[object] = []
        for piece in pieces:
            for event in parser.feed(piece):
                if isinstance(event, bytes) and events and isinstance(events[-1], bytes):
                    events[-1] += event
                elif isinstance(event, ResponseHead):
                    events.append((event.status, event.headers, event.framing))
                else:
                    events.append(event)
        return events

    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    whole = run([data])
    assert whole[-1] is END
    assert run([data[a:b] for a, b in itertools.pairwise(bounds)]) == whole
