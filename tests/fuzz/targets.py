"""One fuzz target per C entry point that client bytes reach: each runs the accelerator and its
Python reference on the same input and fails unless they agree (same result, or the C path
declines where the reference refuses). Used by the short campaign in the test run and by
`make fuzz` (atheris, under AddressSanitizer + UndefinedBehaviorSanitizer)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from types import ModuleType

import orjson
from google.protobuf.message import DecodeError as ProtoDecodeError

from tests.unit.codecs.test_jaeger_thrift_accel import check as thrift_check
from tests.unit.codecs.test_zipkin_json_accel import check as zipkin_check
from tracemesh import accel
from tracemesh.codecs import DecodeError
from tracemesh.codecs.jaeger_json import span_json as reference_span_json
from tracemesh.codecs.otlp_proto import span_from_row
from tracemesh.model.span import Resource, Scope
from tracemesh.query import trace_json  # noqa: F401  (registers key_value with _jaeger_span)
from tracemesh.query.adjusters import adjust
from tracemesh.storage.disk import tags

Target = Callable[[bytes], None]


def _module(name: str) -> ModuleType | None:
    return accel.load(name)  # the sanitizer build under `make fuzz`


def jaeger_thrift(data: bytes) -> None:
    """`_jaeger_thrift.decode`: the first byte picks the protocol and the envelope."""
    if not data:
        return
    protocol = "compact" if data[0] & 1 else "binary"
    thrift_check(data[1:], protocol, bool(data[0] & 2))


def zipkin_json(data: bytes) -> None:
    """`_zipkin_json.rows_from_v2` against the Python decoder of Zipkin v2 JSON."""
    zipkin_check(data)


def span_json(data: bytes) -> None:
    """`_jaeger_span.span_json` of stored span bytes against decode + adjust + render."""
    module = _module("_jaeger_span")
    assert module is not None
    fast = module.span_json(data, "p1", ())
    try:
        span = span_from_row(data, Resource(), Scope())
    except (DecodeError, ProtoDecodeError, RuntimeError, ValueError):
        assert fast is None, "the C path rendered bytes the protobuf parser refuses"
        return
    if fast is not None:
        expected = reference_span_json(adjust([span])[0], "p1")
        assert orjson.dumps(fast) == orjson.dumps(expected)


def span_tags(data: bytes) -> None:
    """`_span_tags.tag_hashes` over spans split at 0xFF 0xFE, and `sort_index` over the rest."""
    module = _module("_span_tags")
    assert module is not None
    raws = data.split(b"\xff\xfe")
    batch_rows = 1 + (data[0] % 4 if data else 0)
    assert module.tag_hashes(raws, batch_rows) == tags.tag_hashes_reference(raws, batch_rows)
    # sort_index: offsets from the first bytes, hashes from the rest
    cut = min(len(data), 4 * (1 + (data[0] % 6 if data else 0)))
    offsets, hashes = data[:cut], data[cut:]
    outcome = []
    for sort in (module.sort_index, tags.sort_index_reference):
        try:
            outcome.append(("ok", sort(hashes, offsets)))
        except ValueError as exc:
            outcome.append(("ValueError", str(exc)))
    assert outcome[0][0] == outcome[1][0], outcome
    if outcome[0][0] == "ok":
        assert outcome[0] == outcome[1]


TARGETS: dict[str, Target] = {
    "jaeger_thrift": jaeger_thrift,
    "zipkin_json": zipkin_json,
    "span_json": span_json,
    "span_tags": span_tags,
}


def u32s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)
