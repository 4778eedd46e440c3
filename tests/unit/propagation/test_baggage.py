"""W3C baggage, baggage-* under B3, the Jaeger forms, their limits and how they merge."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tracemesh.propagation import baggage, limits
from tracemesh.propagation.baggage import BaggageForm

from .strategies import lower_tokens, printable_values, tokens, unicode_values


def test_spec_examples() -> None:
    assert baggage.parse_w3c(["userId=alice,serverNode=DF%2028,isProduction=false"]) == {
        "userId": "alice",
        "serverNode": "DF 28",
        "isProduction": "false",
    }
    assert baggage.parse_w3c(["key1=value1;property1;property2, key2 = value2"]) == {
        "key1": "value1",  # properties are dropped
        "key2": "value2",
    }
    assert baggage.parse_w3c(
        ["key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"]
    ) == {"key1": "value1", "key2": "value2", "key3": "value3"}


def test_split_headers_and_whitespace() -> None:
    assert baggage.parse_w3c(["userId=alice", "serverNode=DF%2028,isProduction=false"]) == {
        "userId": "alice",
        "serverNode": "DF 28",
        "isProduction": "false",
    }
    assert baggage.parse_w3c(
        ["userId =   alice", "serverNode = DF%2028, isProduction = false"]
    ) == {
        "userId": "alice",
        "serverNode": "DF 28",
        "isProduction": "false",
    }


def test_values_decoding() -> None:
    assert baggage.parse_w3c(["a=x=y,b=%E2%9C%93,c=1+2,d=,e=%FF"]) == {
        "a": "x=y",  # `=` may appear in a value
        "b": "\u2713",
        "c": "1+2",  # percent-encoding, not form-encoding
        "d": "",
        "e": "\ufffd",  # invalid UTF-8
    }


def test_bad_members_are_dropped_alone() -> None:
    headers = ['ok=1,bad key=2,q="x",sp=a b,pct=%zz,bs=a\\b,=nokey,nosep,ctl=\x01,u=\u00e9,ok2=2']
    assert baggage.parse_w3c(headers) == {"ok": "1", "ok2": "2"}


def test_repeated_key_keeps_last() -> None:
    assert baggage.parse_w3c(["k=1,k=2"]) == {"k": "2"}


def test_limits_on_read() -> None:
    many = ",".join(f"k{i}=v" for i in range(200))
    parsed = baggage.parse_w3c([many])
    assert len(parsed) == limits.MAX_MEMBERS and "k179" in parsed and "k180" not in parsed
    big = "a=" + "x" * 5000 + ",b=1"
    assert baggage.parse_w3c([big]) == {"b": "1"}  # a member over 4096 bytes is dropped whole
    near = ",".join(f"k{i}=" + "x" * 1000 for i in range(10))
    parsed = baggage.parse_w3c([near])
    assert list(parsed) == [f"k{i}" for i in range(8)]  # 8192 bytes: whole members only


def test_format_encodes_and_respects_limits() -> None:
    text = baggage.format_w3c({"a": "x y+z%", "b": "\u2713", "bad key": "1", "c": '=;,\\"'})
    assert text == "a=x%20y%2Bz%25,b=%E2%9C%93,c==%3B%2C%5C%22"
    assert baggage.parse_w3c([text]) == {"a": "x y+z%", "b": "\u2713", "c": '=;,\\"'}
    many = baggage.format_w3c({f"k{i}": "v" for i in range(300)})
    assert many.count(",") == limits.MAX_MEMBERS - 1
    assert len(baggage.format_w3c({f"k{i}": "x" * 1000 for i in range(20)})) <= limits.MAX_BYTES


def test_prefixed_form() -> None:
    headers = {"baggage-User": " alice ", "Baggage-Tier": "gold", "baggage-ctl": "a\x01", "b": "1"}
    assert baggage.extract_prefixed(headers) == {"user": "alice", "tier": "gold"}
    out: dict[str, str] = {}
    baggage.inject_prefixed({"User": "alice", "bad": "caf\u00e9", "bad key": "x"}, out)
    assert out == {"baggage-user": "alice"}


def test_merge_precedence_follows_form_order() -> None:
    headers = {
        "baggage": "k=w3c,only-w3c=1",
        "uberctx-k": "uberctx",
        "uberctx-only-uberctx": "1",
        "jaeger-baggage": "k=jb, only-jb=1, only-uberctx=jb",
        "baggage-k": "prefixed",
        "baggage-only-prefixed": "1",
    }
    merged = baggage.extract(headers)
    assert merged == {
        "k": "w3c",
        "only-w3c": "1",
        "only-uberctx": "1",  # uberctx-* wins over jaeger-baggage
        "only-jb": "1",
        "only-prefixed": "1",
    }
    reverse = baggage.extract(headers, forms=(BaggageForm.PREFIXED, BaggageForm.JAEGER))
    assert reverse["k"] == "prefixed" and "only-w3c" not in reverse


def test_merge_limits_keep_higher_precedence() -> None:
    headers = {"baggage": ",".join(f"w{i}=1" for i in range(170))}
    headers.update({f"uberctx-j{i}": "1" for i in range(20)})
    merged = baggage.extract(headers)
    assert len(merged) == limits.MAX_MEMBERS
    assert all(f"w{i}" in merged for i in range(170))


def test_inject_forms() -> None:
    out: dict[str, str] = {"baggage": "stale=1"}
    baggage.inject({}, out)
    assert out == {}
    baggage.inject(
        {"k": "v 1"}, out, forms=(BaggageForm.W3C, BaggageForm.JAEGER, BaggageForm.PREFIXED)
    )
    assert out == {"baggage": "k=v%201", "uberctx-k": "v%201", "baggage-k": "v 1"}


@given(st.dictionaries(tokens, unicode_values, max_size=20))
def test_w3c_round_trip(bag: dict[str, str]) -> None:
    out: dict[str, str] = {}
    baggage.inject(bag, out)
    assert baggage.extract(out, forms=(BaggageForm.W3C,)) == bag


@given(st.dictionaries(lower_tokens, printable_values.map(lambda v: v.strip(" ")), max_size=20))
def test_prefixed_round_trip(bag: dict[str, str]) -> None:
    out: list[tuple[str, str]] = []
    baggage.inject_prefixed(bag, out)
    assert baggage.extract(out, forms=(BaggageForm.PREFIXED,)) == bag


@given(st.text(), st.text(), st.text())
def test_arbitrary_text_never_raises(a: str, b: str, c: str) -> None:
    baggage.parse_w3c([a, b])
    baggage.extract({"baggage": a, "baggage-" + b: c, "uberctx-" + c: a, "jaeger-baggage": b})
    baggage.format_w3c({a: b, b: c})
    baggage.inject({a: b, c: a}, {}, forms=tuple(BaggageForm))
