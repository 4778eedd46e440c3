"""Writes the seed corpus of every fuzz target from the project's own encoders and fixtures:
`python -m tests.fuzz.seeds` (the output is committed under tests/fuzz/corpus/)."""

from __future__ import annotations

import hashlib
import os

from tests.contract.traces import make_span, process
from tests.e2e.test_every_path import logical_trace
from tests.fuzz.driver import CORPUS
from tracemesh.codecs import jaeger_thrift, zipkin_json
from tracemesh.codecs.otlp_proto import row_from_span
from tracemesh.model.span import Event, Link, Span, StatusCode


def spans() -> list[Span]:
    trace = logical_trace(bytes(range(1, 17)))
    svc = process("seed")
    extra = make_span(
        7, 3, svc, name="GET /x", parent=1, attributes={
            "http.status_code": 500, "error": True, "ratio": 0.25, "blob": b"\x00\xff",
            "list": ["a", 1, 2.5], "map": {"k": "v"}, "ip": 0x7F000001,
        },
        events=[Event(5_000_000, "boom", {"level": "error"})],
        links=[Link(b"\x02" * 16, b"\x03" * 8, "w=1", {"opentracing.ref_type": "child_of"})],
        status=StatusCode.ERROR,
    )  # fmt: skip
    return [*trace, extra]


def seeds() -> dict[str, list[bytes]]:
    sample = spans()
    by_service: dict[str, list[Span]] = {}
    for span in sample:
        by_service.setdefault(span.service_name, []).append(span)
    thrift = []
    for group in by_service.values():
        for flag, protocol in ((0, "binary"), (1, "compact")):
            thrift.append(bytes([flag]) + jaeger_thrift.batch_to_thrift(group, protocol))
            thrift.append(bytes([flag | 2]) + jaeger_thrift.emit_batch_message(group, protocol))
    raws = [row_from_span(span).raw for span in sample]
    return {
        "jaeger_thrift": thrift,
        "zipkin_json": [zipkin_json.encode_spans(sample), zipkin_json.encode_spans(sample[:1])],
        "span_json": raws,
        "span_tags": [b"\x01" + b"\xff\xfe".join(raws), b"\x03" + raws[-1]],
    }


def main() -> None:
    for name, inputs in seeds().items():
        folder = CORPUS / name
        os.makedirs(folder, exist_ok=True)
        for data in inputs:
            (folder / f"seed-{hashlib.sha1(data).hexdigest()[:12]}").write_bytes(data)


if __name__ == "__main__":
    main()
