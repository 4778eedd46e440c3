"""Model <-> OTLP protobuf and OTLP JSON are lossless, and hostile JSON gets a DecodeError."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.codecs.strategies import spans
from tracemesh.codecs import DecodeError
from tracemesh.codecs.otlp_json import request_from_json, spans_from_json, traces_data_json
from tracemesh.codecs.otlp_proto import (
    batch_from_request,
    decode_request,
    parse_request,
    request_from_spans,
    span_from_row,
    spans_from_request,
)
from tracemesh.model.span import Span


@settings(max_examples=60)
@given(st.lists(spans(), min_size=1, max_size=4))
def test_protobuf_round_trip_is_lossless(sent: list[Span]) -> None:
    wire = request_from_spans(sent).SerializeToString()
    assert spans_from_request(parse_request(wire)) == sent


@settings(max_examples=60)
@given(st.lists(spans(), min_size=1, max_size=4))
def test_json_round_trip_is_lossless(sent: list[Span]) -> None:
    assert spans_from_json(orjson.dumps(traces_data_json(sent))) == sent


@settings(max_examples=40)
@given(st.lists(spans(), min_size=1, max_size=4))
def test_ingest_rows_decode_to_the_sent_spans(sent: list[Span]) -> None:
    decoded = batch_from_request(parse_request(request_from_spans(sent).SerializeToString()))
    assert decoded.rejected == 0
    back = [span_from_row(r.raw, g.resource, g.scope) for g in decoded.batch.groups for r in g.rows]
    assert back == sent
    rows = [r for g in decoded.batch.groups for r in g.rows]
    assert [(r.trace_id, r.span_id, r.start_ns, r.end_ns) for r in rows] == [
        (s.trace_id, s.span_id, s.start_ns, s.end_ns) for s in sent
    ]


@settings(max_examples=40)
@given(st.lists(spans(), min_size=1, max_size=6), st.data())
def test_rows_sliced_from_the_wire_decode_to_the_sent_spans(
    sent: list[Span], data: st.DataObject
) -> None:
    request = request_from_spans(sent)
    narrowed = data.draw(st.sets(st.integers(0, len(sent) - 1)))
    spans_pb = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    for i in narrowed:  # an old client's 64-bit trace id: stored widened to 16 bytes
        spans_pb[i].trace_id = b"\x07" * 8
        sent[i].trace_id = bytes(8) + b"\x07" * 8
    decoded = decode_request(request.SerializeToString())
    assert decoded.rejected == 0
    rows = [(r, g) for g in decoded.batch.groups for r in g.rows]
    assert [span_from_row(r.raw, g.resource, g.scope) for r, g in rows] == sent


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"resourceSpans": {}}',
        b'{"resourceSpans": [1]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "-5"}]}]}]}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SIDEWAYS"}]}]}]}',
        *(
            orjson.dumps(
                {"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [attribute]}]}]}]}
            )
            for attribute in (
                {"key": "k", "value": {"intValue": "1e999"}},
                {"key": "k", "value": {"bytesValue": "!!"}},
                {"key": "k", "value": {"intValue": "99999999999999999999"}},
                {"key": "k", "value": {"boolValue": "yes"}},
                {"key": "k", "value": {"doubleValue": "fast"}},
                {"key": 5, "value": {"stringValue": "x"}},
            )
        ),
    ],
)
def test_hostile_json_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        request_from_json(body)


def test_json_accepts_snake_case_and_enum_names() -> None:
    body = orjson.dumps(
        {
            "resource_spans": [
                {
                    "scope_spans": [
                        {
                            "spans": [
                                {
                                    "trace_id": "0102030405060708090a0b0c0d0e0f10",
                                    "span_id": "0102030405060708",
                                    "name": "x",
                                    "kind": "SPAN_KIND_SERVER",
                                    "start_time_unix_nano": 5,
                                    "end_time_unix_nano": "7",
                                    "status": {"code": "STATUS_CODE_ERROR"},
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    )
    (span,) = spans_from_json(body)
    assert span.kind == 2 and span.status.code == 2 and span.duration_ns == 2


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        request_from_json(data)
