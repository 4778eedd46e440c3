"""x-request-id: keep a sane one, replace anything else, and Envoy's trace bits."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemesh.propagation import request_id
from tracemesh.propagation.request_id import TraceReason

FRESH = "3d2e6d1c-9f0b-4c1a-8a7e-2b4c6d8e0f12"
SAMPLED = "3d2e6d1c-9f0b-9c1a-8a7e-2b4c6d8e0f12"


@pytest.mark.parametrize(
    "value", [FRESH, "abc", "Root=1-5759e988-bd862e3fe1be46a994272793", "x" * 200]
)
def test_sane_values_are_kept(value: str) -> None:
    assert request_id.extract({"X-Request-Id": value}) == value
    assert request_id.ensure({"x-request-id": f" {value}\t"}) == value


@pytest.mark.parametrize(
    "value", ["", " ", "x" * 201, "a b", "a,b", "a\x00b", "a\nb", "caf\u00e9", "x" * 10_000_000]
)
def test_absurd_values_are_replaced(value: str) -> None:
    assert request_id.extract({"x-request-id": value}) is None
    made = request_id.ensure({"x-request-id": value})
    assert uuid.UUID(made).version == 4 and len(made) == 36


def test_missing_is_generated_and_first_of_several_wins() -> None:
    assert uuid.UUID(request_id.ensure({})).version == 4
    assert request_id.extract([("x-request-id", "one"), ("x-request-id", "two")]) == "one"


def test_inject() -> None:
    headers = {"X-Request-ID": "old"}
    request_id.inject("new", headers)
    assert headers == {"x-request-id": "new"}


def test_envoy_trace_reason_example() -> None:
    assert request_id.trace_reason(FRESH) is TraceReason.NONE
    assert request_id.with_trace_reason(FRESH, TraceReason.SAMPLED) == SAMPLED
    assert request_id.trace_reason(SAMPLED) is TraceReason.SAMPLED
    assert request_id.trace_reason(SAMPLED.upper()) is TraceReason.SAMPLED
    forced = request_id.with_trace_reason(FRESH, TraceReason.CLIENT_FORCED)
    assert request_id.trace_reason(forced) is TraceReason.CLIENT_FORCED
    assert request_id.trace_reason("not-a-uuid") is None
    assert request_id.trace_reason(FRESH.replace("-4c1a", "-1c1a")) is None  # version 1: no reason
    assert request_id.with_trace_reason("short", TraceReason.SAMPLED) == "short"


def test_sampling_draw() -> None:
    assert request_id.sampling_draw(FRESH) == 0x3D2E6D1C % 10000
    assert request_id.sampling_draw("zzzzzzzz-rest") is None
    assert request_id.sampling_draw("abc") is None


@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    request_id.sanitize(text)
    request_id.trace_reason(text)
    request_id.with_trace_reason(text, TraceReason.SAMPLED)
    request_id.sampling_draw(text)
