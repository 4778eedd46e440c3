"""The default getter/setter over dicts, str pairs, bytes pairs and multi-value mappings."""

from __future__ import annotations

from email.message import Message

import pytest

from tracemesh.propagation.carrier import HEADERS


def test_dict_is_case_insensitive_and_writes_lowercase() -> None:
    headers = {"X-B3-TraceId": "a", "other": "b"}
    assert HEADERS.get(headers, "x-b3-traceid") == ["a"]
    assert HEADERS.get(headers, "missing") == []
    HEADERS.set(headers, "X-B3-TRACEID", "c")
    assert headers == {"other": "b", "x-b3-traceid": "c"}
    HEADERS.delete(headers, "OTHER")
    HEADERS.delete(headers, "absent")
    assert headers == {"x-b3-traceid": "c"}
    assert list(HEADERS.keys(headers)) == ["x-b3-traceid"]


def test_dict_of_lists() -> None:
    headers = {"tracestate": ["a=1", "b=2"], "Tracestate": "c=3"}
    assert HEADERS.get(headers, "TRACESTATE") == ["a=1", "b=2", "c=3"]


def test_str_pairs_keep_order_and_repeats() -> None:
    pairs = [("Baggage", "a=1"), ("x", "y"), ("baggage", "b=2")]
    assert HEADERS.get(pairs, "baggage") == ["a=1", "b=2"]
    HEADERS.set(pairs, "BAGGAGE", "c=3")
    assert pairs == [("x", "y"), ("baggage", "c=3")]
    assert HEADERS.keys(pairs) == ["x", "baggage"]


def test_bytes_pairs_are_latin1() -> None:
    pairs = [(b"Traceparent", b"00-x"), (b"h", b"caf\xe9")]
    assert HEADERS.get(pairs, "traceparent") == ["00-x"]
    assert HEADERS.get(pairs, "H") == ["caf\u00e9"]
    HEADERS.set(pairs, "traceparent", "00-y")
    assert pairs == [(b"h", b"caf\xe9"), (b"traceparent", b"00-y")]
    HEADERS.delete(pairs, "H")
    assert pairs == [(b"traceparent", b"00-y")]


def test_mapping_with_get_all() -> None:
    message = Message()
    message["Baggage"] = "a=1"
    message["baggage"] = "b=2"
    assert HEADERS.get(message, "BAGGAGE") == ["a=1", "b=2"]


def test_unsupported_carriers() -> None:
    with pytest.raises(TypeError):
        HEADERS.get(42, "x")
    with pytest.raises(TypeError):
        HEADERS.set(("a", "b"), "x", "y")


def test_starlette_headers() -> None:
    from starlette.datastructures import Headers, MutableHeaders

    raw = [(b"baggage", b"a=1"), (b"baggage", b"b=2"), (b"x-b3-traceid", b"abc")]  # ASGI: lowercase
    headers = Headers(raw=raw)
    assert HEADERS.get(headers, "BAGGAGE") == ["a=1", "b=2"]
    mutable = MutableHeaders(raw=list(raw))
    HEADERS.set(mutable, "Baggage", "c=3")
    HEADERS.delete(mutable, "X-B3-TraceId")
    assert mutable.raw == [(b"baggage", b"c=3")]


def test_http_client_message() -> None:
    import email.parser
    import http.client

    parsed = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(
        "Traceparent: 00-x\r\nBaggage: a=1\r\nbaggage: b=2\r\n\r\n"
    )
    assert HEADERS.get(parsed, "baggage") == ["a=1", "b=2"]
    assert list(HEADERS.keys(parsed)) == ["Traceparent", "Baggage", "baggage"]
    HEADERS.set(parsed, "BAGGAGE", "c=3")
    assert HEADERS.get(parsed, "baggage") == ["c=3"]


def test_index_and_edits() -> None:
    from tracemesh.propagation.carrier import INDEXED, Edits

    index = HEADERS.index([(b"B3", b"1"), ("b3", "0"), ("x", "y")])
    assert INDEXED.get(index, "B3") == ["1", "0"] and list(INDEXED.keys(index)) == ["b3", "x"]
    edits = Edits()
    edits.set(None, "A", "1")
    edits.delete(None, "B")
    edits.set(None, "b", "2")
    edits.delete(None, "x")
    pairs = [("X", "old"), ("keep", "k")]
    edits.apply(pairs)
    assert pairs == [("keep", "k"), ("a", "1"), ("b", "2")]
    through: dict[str, str] = {"x": "old"}
    edits.apply(through, HEADERS)
    assert through == {"a": "1", "b": "2"}
