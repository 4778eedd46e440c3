"""SpanContext invariants, children and new roots."""

from __future__ import annotations

import pytest

from tracemesh.propagation.context import SpanContext

TRACE = bytes.fromhex("463ac35c9f6413ad48485a3953bb6124")
SPAN = bytes.fromhex("a2fb4a1d1a96d312")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"trace_id": bytes(16), "span_id": SPAN},
        {"trace_id": TRACE[:8], "span_id": SPAN},
        {"trace_id": TRACE, "span_id": bytes(8)},
        {"trace_id": TRACE, "span_id": SPAN + b"\x01"},
        {"trace_id": TRACE, "span_id": SPAN, "parent_span_id": b"\x01"},
        {"trace_id": TRACE, "span_id": SPAN, "trace_id_64bit": True},
    ],
)
def test_invalid_contexts_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SpanContext(**kwargs)  # type: ignore[arg-type]


def test_normalizations() -> None:
    ctx = SpanContext(trace_id=TRACE, span_id=SPAN, parent_span_id=bytes(8), debug=True)
    assert ctx.parent_span_id is None  # zero parent is a root
    assert ctx.sampled is True  # debug implies sampled
    bag = {"k": "v"}
    frozen = SpanContext(trace_id=TRACE, span_id=SPAN, baggage=bag)
    bag["k"] = "changed"
    assert frozen.baggage == {"k": "v"}
    with pytest.raises(TypeError):
        frozen.baggage["k"] = "x"  # type: ignore[index]
    assert hash(frozen) == hash(SpanContext(trace_id=TRACE, span_id=SPAN))


def test_child_keeps_everything_but_ids() -> None:
    ctx = SpanContext(
        trace_id=TRACE, span_id=SPAN, sampled=False, trace_state="a=1", baggage={"k": "v"},
        request_id="rid",
    )  # fmt: skip
    child = ctx.child()
    assert child.trace_id == TRACE and child.parent_span_id == SPAN and child.span_id != SPAN
    assert (child.sampled, child.trace_state, dict(child.baggage), child.request_id) == (
        False, "a=1", {"k": "v"}, "rid",
    )  # fmt: skip
    assert ctx.child(b"\x01" * 8).span_id == b"\x01" * 8


def test_new_root() -> None:
    root = SpanContext.new_root(sampled=True, baggage={"k": "v"}, request_id="r")
    assert root.parent_span_id is None and any(root.trace_id[:8]) | any(root.trace_id[8:])
    assert root.sampled is True and root.baggage == {"k": "v"} and root.request_id == "r"
    short = SpanContext.new_root(trace_id_64bit=True)
    assert short.trace_id[:8] == bytes(8) and short.trace_id_64bit
    assert len(short.trace_id_hex) == 16 and len(root.trace_id_hex) == 32
    assert SpanContext.new_root().trace_id != SpanContext.new_root().trace_id


def test_repr_shows_hex() -> None:
    assert TRACE.hex() in repr(SpanContext(trace_id=TRACE, span_id=SPAN))
