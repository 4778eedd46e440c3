"""Text that is not UTF-8 is repaired, never fatal, in every decoder a network client reaches;
arbitrary corruption of a valid message is either decoded or refused with DecodeError."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e.test_lenient_ingest import BROKEN, broken, spans
from tracemesh.codecs import (
    DecodeError,
    jaeger_proto,
    kafka_spans,
    otlp_proto,
    zipkin_proto,
    zipkin_thrift,
)
from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.jaeger_thrift import batch_to_thrift, decode_batch, spans_from_rows
from tracemesh.codecs.otlp_proto import batch_from_spans, span_from_row
from tracemesh.collector.admission import admit
from tracemesh.model.batch import SpanBatch
from tracemesh.model.span import Span


def decoded_spans(batch: SpanBatch) -> list[Span]:
    return [span_from_row(row.raw, g.resource, g.scope) for g in batch.groups for row in g.rows]


def check(found: list[Span], *, bytes_value: bool = True) -> None:
    by_name = {span.name: span for span in found}
    assert set(by_name) == {"invalid-utf8-span-name", "clean"}
    bad, good = by_name["invalid-utf8-span-name"], by_name["clean"]
    assert good.warnings == [] and bad.warnings
    assert bad.attributes["invalid-utf8-key-1"] == "fine"
    if bytes_value:
        assert bad.attributes["payload"] == BROKEN[b"BADVAL01"]
    assert "@jaeger@warnings" not in bad.attributes


@pytest.mark.parametrize("encoding", kafka_spans.ENCODINGS)
def test_kafka_messages_with_broken_text_are_repaired(encoding: str) -> None:
    trace_id = os.urandom(16)
    messages = kafka_spans.encode(batch_from_spans(spans(trace_id, "kafka")), encoding)
    assert all(p in b"".join(v for _, v in messages) for p in BROKEN)
    found: list[Span] = []
    repaired = 0
    for _, value in messages:  # Jaeger's encodings: a span a message
        for placeholder, bad in BROKEN.items():
            value = value.replace(placeholder, bad)
        decoded = kafka_spans.decode(value, encoding)
        assert decoded.rejected == 0
        repaired += decoded.batch.repaired
        found += decoded_spans(decoded.batch)
    assert repaired == 1
    # api_v2 JSON has no bytes for a string value: the value keeps U+FFFD there
    check(found, bytes_value=encoding != kafka_spans.JSON)


def test_jaeger_thrift_and_proto_and_zipkin_proto() -> None:
    sent = spans(os.urandom(16), "svc")
    check(spans_from_rows(decode_batch(broken(batch_to_thrift(sent, "binary"))).batch))
    proto = broken(jaeger_proto.request_from_spans(sent).SerializeToString())
    check(jaeger_proto.decode_post_spans(proto).spans)
    zipkin = zipkin_proto.spans_from_proto(broken(zipkin_proto.encode_spans(sent)))
    check(zipkin, bytes_value=False)


def test_the_repaired_span_keeps_its_warnings_through_admission() -> None:
    body = broken(otlp_proto.request_from_spans(spans(os.urandom(16), "a")).SerializeToString())
    decoded = otlp_proto.decode_request(body)
    admitted = admit(decoded.batch)
    assert admitted.batch.repaired == 1 and not admitted.refused
    check(decoded_spans(admitted.batch))


VALID = otlp_proto.request_from_spans(spans(b"\x01" * 16, "fuzz")).SerializeToString()


@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8))
def test_any_corruption_of_an_otlp_request_is_decoded_or_refused(
    edits: list[tuple[int, int]],
) -> None:
    data = bytearray(VALID)
    for position, value in edits:
        data[position] = value
    try:
        decoded = otlp_proto.decode_request(bytes(data))
    except DecodeError:
        return
    for span in decoded_spans(decoded.batch):  # what was accepted reads back
        assert isinstance(span.name, str)


def test_zipkin_thrift_spans_with_broken_text_are_repaired() -> None:
    now = 1_700_000_000_000_000
    spans_in = [
        ts.ZipkinSpan(trace_id=5, name="BADNAME1", id=1, timestamp=now, duration=5,
                      binary_annotations=[ts.BinaryAnnotation("BADKEY01", b"fine", 6),
                                          ts.BinaryAnnotation("payload", b"BADVAL01", 6)]),
        ts.ZipkinSpan(trace_id=5, name="clean", id=2, parent_id=1, timestamp=now, duration=1),
    ]  # fmt: skip
    data = broken(zipkin_thrift.encode_zipkin_thrift(spans_in, "binary"))
    check(zipkin_thrift.spans_from_zipkin_thrift(data, "binary"))
