"""Kafka messages: Jaeger's one-span-per-message forms and OTLP's per-trace requests, keyed by
trace id, decode back to what was encoded; anything else is a DecodeError (poison), not a crash."""

from __future__ import annotations

import base64
import contextlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.codecs.test_jaeger_proto import comparable, expected_after_trip, span_lists
from tracemesh.codecs import DecodeError
from tracemesh.codecs.kafka_spans import ENCODINGS, decode, encode, jaeger_key
from tracemesh.codecs.otlp_proto import batch_from_spans, span_from_row
from tracemesh.codecs.proto import jaeger_model_pb2 as pb
from tracemesh.model.batch import SpanBatch
from tracemesh.model.span import Resource, Scope, Span, SpanKind

T0 = 1_700_000_000_123_456_000


def spans_of(batch: SpanBatch) -> list[Span]:
    return [span_from_row(r.raw, g.resource, g.scope) for g in batch.groups for r in g.rows]


def two_traces() -> list[Span]:
    res = Resource({"service.name": "svc", "host.name": "h1"})
    scope = Scope("lib", "1.0")
    t1, t2 = b"\0" * 8 + b"\1" * 8, b"\2" * 16
    return [
        Span(t1, b"\0\0\0\0\0\0\0\1", "a", T0, T0 + 5000, kind=SpanKind.SERVER,
             attributes={"k": "v", "n": 7}, resource=res, scope=scope),
        Span(t2, b"\0\0\0\0\0\0\0\2", "b", T0, T0 + 9000, resource=res, scope=scope),
        Span(t1, b"\0\0\0\0\0\0\0\3", "c", T0 + 10, T0 + 20, parent_span_id=b"\0\0\0\0\0\0\0\1",
             resource=res, scope=scope),
    ]  # fmt: skip


def test_jaeger_encodings_write_one_span_per_message_keyed_like_jaeger() -> None:
    batch = batch_from_spans(two_traces())
    for encoding in ("protobuf", "json"):
        messages = encode(batch, encoding)
        # model.TraceID.String(): 16 hex digits when the high half is zero, else 32.
        assert [key for key, _ in messages] == [
            b"0101010101010101",
            b"02" * 16,
            b"0101010101010101",
        ]
    span = pb.Span.FromString(encode(batch, "protobuf")[0][1])
    assert span.process.service_name == "svc"  # embedded, as Jaeger's Kafka writer does
    assert span.trace_id == b"\0" * 8 + b"\1" * 8


def test_jaeger_json_is_jsonpb_of_the_span() -> None:
    doc = orjson.loads(encode(batch_from_spans(two_traces()), "json")[0][1])
    assert base64.b64decode(doc["traceId"]) == b"\0" * 8 + b"\1" * 8
    assert base64.b64decode(doc["spanId"]) == b"\0\0\0\0\0\0\0\1"
    assert doc["operationName"] == "a"
    assert doc["startTime"] == "2023-11-14T22:13:20.123456Z"
    assert doc["duration"] == "0.000005s"
    assert doc["process"]["serviceName"] == "svc"
    assert {"key": "n", "vType": "INT64", "vInt64": "7"} in doc["tags"]


def test_otlp_encodings_write_one_request_per_trace_keyed_by_its_hex_id() -> None:
    batch = batch_from_spans(two_traces())
    for encoding in ("otlp_proto", "otlp_json"):
        messages = dict(encode(batch, encoding))
        assert set(messages) == {
            (b"\0" * 8 + b"\1" * 8).hex().encode(),
            (b"\2" * 16).hex().encode(),
        }
        first = decode(messages[b"00000000000000000101010101010101"], encoding)
        assert [s.name for s in spans_of(first.batch)] == ["a", "c"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_decodes_back_to_the_spans_it_encoded(encoding: str) -> None:
    sent = two_traces()
    got: list[Span] = []
    for _, value in encode(batch_from_spans(sent), encoding):
        decoded = decode(value, encoding)
        assert decoded.rejected == 0
        got.extend(spans_of(decoded.batch))
    got.sort(key=lambda s: s.span_id)
    assert [comparable(s) for s in got] == [expected_after_trip(s) for s in sent]


@settings(max_examples=30)  # the jaeger_proto tests explore the span space itself
@given(span_lists(), st.sampled_from(("protobuf", "json")))
def test_any_span_survives_the_jaeger_encodings(spans: list[Span], encoding: str) -> None:
    got: list[Span] = []
    for key, value in encode(batch_from_spans(spans), encoding):
        decoded = decode(value, encoding)
        assert decoded.rejected == 0
        (span,) = spans_of(decoded.batch)
        assert key == jaeger_key(span.trace_id)
        got.append(span)
    assert sorted(repr(comparable(s)) for s in got) == sorted(
        repr(expected_after_trip(s)) for s in spans
    )


@given(st.binary(max_size=400), st.sampled_from(ENCODINGS))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes, encoding: str) -> None:
    try:
        decoded = decode(data, encoding)
    except DecodeError:
        return
    assert decoded.batch.span_count + decoded.rejected >= 0


json_docs = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["traceId", "spanId", "startTime", "duration", "tags", "process",
                         "resourceSpans", "scopeSpans", "spans", "vType", "logs", "x"]),
        inner, max_size=5),
    max_leaves=20,
)  # fmt: skip


@given(json_docs, st.sampled_from(("json", "otlp_json")))
def test_hostile_json_decodes_or_raises_decode_error(doc: object, encoding: str) -> None:
    with contextlib.suppress(DecodeError):
        decode(orjson.dumps(doc), encoding)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_empty_and_deeply_nested_messages_are_poison(encoding: str) -> None:
    with pytest.raises(DecodeError):
        decode(b"", encoding)
    if encoding.endswith("json"):
        with pytest.raises(DecodeError):
            decode(b"[" * 100_000 + b"]" * 100_000, encoding)
