"""Jaeger span documents <-> spans without a node: round trips and hostile documents."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.contract.traces import event, make_span, process
from tracemesh.codecs import DecodeError
from tracemesh.codecs.otlp_proto import span_to_pb
from tracemesh.model.span import Link, SpanKind, StatusCode
from tracemesh.storage.elasticsearch.config import ElasticConfig
from tracemesh.storage.elasticsearch.documents import (
    OtlpEnvelope,
    Reader,
    TagFields,
    span_document,
    split_process,
)
from tracemesh.storage.elasticsearch.documents import process as process_doc
from tracemesh.storage.elasticsearch.indices import Indices

FIELDS = TagFields(keys=("http.method",))


def _span() -> Any:
    return make_span(
        7, 3, process("svc", **{"host.name": "h"}), parent=1, kind=SpanKind.CLIENT,
        attributes={"http.method": "GET", "n": 5, "f": 2.5, "b": True, "raw": b"\x00\x01",
                    "list": [1, "a"]},
        events=[event({"k": "v"}, name="ev")],
        links=[Link(bytes(16), (9).to_bytes(8, "big"), "", {"opentracing.ref_type": "child_of"})],
        status=StatusCode.ERROR,
    )  # fmt: skip


def test_otlp_field_reads_back_exactly() -> None:
    span = _span()
    envelope = OtlpEnvelope(span.resource, span.scope)
    raw = span_to_pb(span).SerializeToString()
    doc = span_document(span, process_doc(span.resource), FIELDS, envelope.wrap(raw))
    assert Reader(FIELDS).span(doc) == span


def test_jaeger_fields_alone_read_back_as_the_translator_maps_them() -> None:
    span = _span()
    doc = span_document(span, split_process(process_doc(span.resource), FIELDS), FIELDS)
    got = Reader(FIELDS).jaeger_span(doc)
    assert doc["tag"] == {"http@method": "GET"}
    assert (got.trace_id, got.span_id, got.parent_span_id) == (
        span.trace_id, span.span_id, span.parent_span_id
    )  # fmt: skip
    assert got.kind is SpanKind.CLIENT and got.status.code is StatusCode.ERROR
    assert got.attributes["n"] == 5 and got.attributes["raw"] == b"\x00\x01"
    assert got.attributes["http.method"] == "GET"
    assert got.attributes["list"] == '[1,"a"]'  # Jaeger keeps arrays as JSON text
    assert got.scope.name == span.scope.name
    assert [e.name for e in got.events] == ["ev"]
    assert got.resource.attributes == span.resource.attributes


def test_daily_index_names() -> None:
    indices = Indices(ElasticConfig(index_prefix="prod"))
    day_ns = 86_400 * 10**9
    start = 1_700_000_000 * 10**9  # 2023-11-14 22:13 UTC
    assert indices.write_span(start) == "prod-jaeger-span-2023-11-14"
    assert indices.read_spans(start, start + day_ns) == (
        "prod-jaeger-span-2023-11-15,prod-jaeger-span-2023-11-14"
    )
    assert indices.read_spans(None, start) == "prod-jaeger-span-*"
    aliased = Indices(ElasticConfig(use_aliases=True))
    assert aliased.write_span(start) == "jaeger-span-write"
    assert aliased.read_spans(start, start) == "jaeger-span-read"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                               max_size=3),
    max_leaves=12,
)  # fmt: skip
KEYS = st.sampled_from(["traceID", "spanID", "startTime", "duration", "references", "tags",
                        "tag", "logs", "process", "flags", "operationName", "otlp",
                        "parentSpanID"])  # fmt: skip


@given(st.dictionaries(KEYS, JSON_VALUES, max_size=10))
def test_hostile_documents_decode_or_fail_cleanly(doc: dict[str, Any]) -> None:
    with contextlib.suppress(DecodeError):
        Reader(FIELDS).span(doc)


@given(st.text(alphabet="0123456789abcdefxyz", max_size=40), st.integers(), st.integers())
def test_hostile_ids_and_times(trace: str, start: int, duration: int) -> None:
    doc = {"traceID": trace, "spanID": "01", "startTime": start, "duration": duration}
    try:
        span = Reader(FIELDS).span(doc)
    except DecodeError:
        return
    assert len(span.trace_id) == 16 and span.start_ns > 0


def test_es_flags_make_the_storage() -> None:
    from tracemesh.cli.main import build_parser
    from tracemesh.runtime.config import from_namespace
    from tracemesh.runtime.process import make_storage
    from tracemesh.storage.elasticsearch.factory import ElasticStorage

    args = build_parser().parse_args([
        "collector", "--storage", "elasticsearch",
        "--es.server-urls", "http://a:9200, https://b:9200", "--es.index-prefix", "prod",
        "--es.num-shards", "3", "--es.use-aliases", "true", "--es.tags-as-fields.include",
        "http.method,peer.service", "--es.tls.skip-host-verify", "1", "--es.bulk.workers", "4",
    ])  # fmt: skip
    storage = make_storage(from_namespace(args))
    assert isinstance(storage, ElasticStorage)
    config = storage.config
    assert config.server_urls == ("http://a:9200", "https://b:9200")
    assert (config.index_prefix, config.num_shards, config.num_replicas) == ("prod", 3, 1)
    assert config.use_aliases and config.tls_skip_verify and config.bulk_workers == 4
    assert config.tags_as_fields_include == ("http.method", "peer.service")
    assert storage.indices.write_span(0) == "prod-jaeger-span-write"
