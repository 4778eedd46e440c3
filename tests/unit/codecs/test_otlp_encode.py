"""The hand-written OTLP request encoder writes the message `request_from_spans` builds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.unit.codecs.strategies import attributes, spans
from tracemesh.codecs import otlp_encode
from tracemesh.codecs.otlp_encode import encode_request
from tracemesh.codecs.otlp_proto import request_from_spans, spans_from_request
from tracemesh.model.span import Resource, Scope, Span, SpanKind


def _decoded(sent: list[Span]) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(encode_request(sent))


@settings(max_examples=40)
@given(st.lists(spans(), min_size=0, max_size=4), st.data())
def test_encodes_the_message_request_from_spans_builds(
    sent: list[Span], data: st.DataObject
) -> None:
    # share resource and scope objects between some spans, as a proxy's spans do
    resources = [span.resource for span in sent][:2]
    scopes = [span.scope for span in sent][:2]
    for span in sent:
        span.resource = data.draw(st.sampled_from(resources))
        span.scope = data.draw(st.sampled_from(scopes))
    decoded = _decoded(sent)
    reference = request_from_spans(sent)
    assert decoded == reference
    assert spans_from_request(decoded) == spans_from_request(reference)  # regrouped, not lost
    assert sorted(span.span_id for span in spans_from_request(decoded)) == sorted(
        span.span_id for span in sent
    )


@given(attributes, attributes)
def test_cached_string_attributes_stay_right_across_calls(first: dict, second: dict) -> None:
    resource, scope = Resource({"service.name": "a"}), Scope("s")
    for attrs in (first, second, first):
        span = Span(b"\x01" * 16, b"\x02" * 8, "n", 1, 2, attributes=attrs,
                    resource=resource, scope=scope)  # fmt: skip
        assert _decoded([span]) == request_from_spans([span])


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_encode, "_CACHE_LIMIT", 8)
    span = Span(b"\x01" * 16, b"\x02" * 8, "n", 1, 2, kind=SpanKind.SERVER)
    for i in range(50):
        span.attributes = {f"k{i}": f"v{i}", "same": "x"}
        assert _decoded([span]) == request_from_spans([span])
        assert len(otlp_encode._cache) <= 8


def test_long_fields_use_multi_byte_lengths() -> None:
    span = Span(b"\x01" * 16, b"\x02" * 8, "n" * 300, 1, 2,
                attributes={"k" * 200: "v" * 70_000, "list": ["x" * 200, 1, None]})  # fmt: skip
    assert _decoded([span]) == request_from_spans([span])


def test_values_protobuf_cannot_carry_are_refused() -> None:
    span = Span(b"\x01" * 16, b"\x02" * 8, "n", 1, 2, attributes={"big": 1 << 63})
    with pytest.raises(ValueError, match="int64"):
        encode_request([span])
    span.attributes = {"odd": object()}  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="object"):
        encode_request([span])
