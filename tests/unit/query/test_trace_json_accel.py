"""The C fast path of a trace's Jaeger JSON (`query.trace_json`, `tracemesh.accel._jaeger_span`)
against the reference path it must reproduce: spans decoded from storage, adjusted by the standard
adjusters, rendered by `codecs.jaeger_json`. Wherever the fast path answers, `orjson.dumps` of its
answer is byte for byte the reference's; it declines exactly the traces the adjusters change across
spans; and it does not decline the plain traces it exists for, so these tests fail if it silently
stops running. Hostile stored bytes never crash it."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import random
import time
from collections.abc import Sequence
from types import ModuleType

import orjson
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e import ui_seed
from tests.unit.codecs.strategies import ids8, ids16, spans, values
from tests.unit.query.traces import START_NS, client_for, memory_storage, trace_a, trace_b
from tracemesh.codecs.jaeger_json import span_json, trace_json
from tracemesh.codecs.otlp_proto import decode_request, request_from_spans, span_from_row
from tracemesh.model.attributes import AttrValue
from tracemesh.model.ids import trace_id_to_hex
from tracemesh.model.span import Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode
from tracemesh.query import service as query_service
from tracemesh.query import trace_json as fast_path
from tracemesh.query.adjusters import LIBRARY_KEYS, adjust
from tracemesh.storage.memory.reader import MemoryReader
from tracemesh.storage.memory.store import MemoryStore


def _accelerator() -> ModuleType | None:
    """The extension itself, imported directly so that TRACEMESH_NO_ACCEL=1 cannot skip these."""
    try:
        module = importlib.import_module("tracemesh.accel._jaeger_span")
    except ImportError:
        return None
    from tracemesh.codecs.jaeger_json import key_value

    module.setup(key_value)
    return module


ACCEL = _accelerator()
pytestmark = pytest.mark.skipif(
    ACCEL is None,
    reason="tracemesh.accel._jaeger_span is not built (no C compiler when the package was "
    "installed); rebuild with `uv sync --reinstall-package tracemesh`",
)


@pytest.fixture(autouse=True)
def accelerated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_path, "_accel", ACCEL)


def stored(trace: Sequence[Span]) -> MemoryReader:
    """A memory store holding the spans as ingest stores them (bytes sliced from a request)."""
    store = MemoryStore(0)
    store.add(decode_request(request_from_spans(trace).SerializeToString()).batch)
    return MemoryReader(store)


def both(trace: Sequence[Span]) -> tuple[bytes, bytes | None]:
    """(reference JSON, fast-path JSON or None when it declines) of the stored trace."""
    reader = stored(trace)
    trace_id = trace[0].trace_id
    reference = orjson.dumps(trace_json(adjust(asyncio.run(reader.get_trace(trace_id)))))
    fast = fast_path.trace_json_from_otlp(asyncio.run(reader.get_trace_otlp(trace_id)))
    return reference, None if fast is None else orjson.dumps(fast)


def plain(trace: Sequence[Span]) -> bool:
    """A trace the fast path must answer: ids distinct, no span attribute it leaves to Python."""
    if len({span.span_id for span in trace}) != len(trace):
        return False
    for span in trace:
        for key, value in span.attributes.items():
            if key in LIBRARY_KEYS or (key in ("ip", "peer.ipv4") and isinstance(value, float)):
                return False
    return True


def assert_same(trace: Sequence[Span]) -> None:
    reference, fast = both(trace)
    if plain(trace):
        assert fast is not None, "the fast path declined a plain trace"
    if fast is not None:
        assert fast == reference
    # What the query service answers with: the fast path, else its own decoding fallback.
    otlp = asyncio.run(stored(trace).get_trace_otlp(trace[0].trace_id))
    assert orjson.dumps(fast_path.render_otlp(otlp)) == reference


# Values and keys that exercise each adjuster and each formatting rule the C code reproduces.
special_values: st.SearchStrategy[AttrValue] = st.one_of(
    values,
    st.floats(),  # NaN and infinities: formatted by the Python key_value
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([2**53 - 1, 2**53, -(2**53) + 1, -(2**53), 0, "", "<&>\u2028", b"\0\xff"]),
)
special_keys = st.sampled_from(
    ["ip", "peer.ipv4", "event", "a", "b", "é", "\u20ac", "", "opentracing.ref_type", "a\0"]
)
special_attributes = st.dictionaries(special_keys | st.text(max_size=4), special_values, max_size=6)
ref_type_attributes = st.dictionaries(
    st.just("opentracing.ref_type"), st.sampled_from(["child_of", "follows_from", "x", 1])
)


@st.composite
def traces(draw: st.DrawFn) -> list[Span]:
    """A trace of 1-6 spans: shared or distinct resources and scopes, parents within the trace,
    links to the parent, to nowhere (all-zero ids) and elsewhere, events sharing names."""
    trace_id = draw(ids16)
    resources = [Resource(draw(special_attributes)) for _ in range(2)]
    resources.append(Resource({"service.name": "svc", "b": 1, "a": [1, "x"]}))
    scopes = [Scope("lib", "1.0"), Scope(), Scope(draw(st.text(max_size=3)), "", {"k": 1})]
    out: list[Span] = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        start = draw(st.integers(1, 2**64 - 1))
        parent = draw(st.sampled_from(out)).span_id if out and draw(st.booleans()) else b""
        span = Span(
            trace_id,
            out[-1].span_id if out and draw(st.integers(0, 9)) == 0 else draw(ids8),
            draw(st.text(max_size=6)),
            start,
            draw(st.integers(start, 2**64 - 1)),  # ingest refuses an end before the start
            parent_span_id=parent,
            kind=draw(st.sampled_from(SpanKind)),
            attributes=draw(special_attributes),
            status=draw(st.builds(Status, st.sampled_from(StatusCode), st.text(max_size=3))),
            trace_state=draw(st.sampled_from(["", "k=v"])),
            flags=draw(st.integers(0, 2**32 - 1)),
            resource=draw(st.sampled_from(resources)),
            scope=draw(st.sampled_from(scopes)),
        )
        for _ in range(draw(st.integers(0, 2))):
            name = draw(st.sampled_from(["x", "a", ""]))
            span.events.append(
                Event(draw(st.integers(0, 2**64 - 1)), name, draw(special_attributes))
            )
        link_ids = st.sampled_from(
            [(bytes(16), draw(ids8)), (b"", b""), (trace_id, parent or draw(ids8))]
        ) | st.tuples(st.binary(min_size=1, max_size=18), st.binary(max_size=9))
        for _ in range(draw(st.integers(0, 2))):
            link_trace, link_span = draw(link_ids)
            span.links.append(Link(link_trace, link_span, "", draw(ref_type_attributes)))
        out.append(span)
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces())
def test_same_json_as_the_reference(trace: list[Span]) -> None:
    assert_same(trace)


def test_the_browser_tests_large_trace() -> None:
    trace = ui_seed.large(random.Random(3), 1_700_000_000_000_000_000, 2000)
    reference, fast = both(trace)
    assert fast == reference


def test_the_query_tests_traces() -> None:
    reference, fast = both(trace_a())
    assert fast == reference
    assert both(trace_b())[1] is None  # Zipkin-style shared client/server span ids


def sample_span(**changes: object) -> Span:
    span = Span(
        bytes(range(1, 17)),
        bytes(range(1, 9)),
        "op",
        1_000_000,
        2_000_000,
        resource=Resource({"service.name": "svc", "ip": 16909060}),
        attributes={"ip": 3232235777, "peer.ipv4": -1, "b": 1, "a": 2},
    )
    return dataclasses.replace(span, **changes)  # type: ignore[arg-type]


def test_adjusters_work_is_done() -> None:
    """IPs dotted (span and process), attributes sorted, empty links dropped with a warning."""
    span = sample_span(links=[Link(bytes(16), bytes(range(8)))])
    reference, fast = both([span])
    assert fast == reference
    rendered = orjson.loads(fast)
    tags = {t["key"]: t["value"] for t in rendered["spans"][0]["tags"]}
    assert [t["key"] for t in rendered["spans"][0]["tags"]] == ["a", "b", "ip", "peer.ipv4"]
    assert tags["ip"] == "192.168.1.1" and tags["peer.ipv4"] == "255.255.255.255"
    assert rendered["processes"]["p1"]["tags"] == [
        {"key": "ip", "type": "string", "value": "1.2.3.4"}
    ]
    assert rendered["spans"][0]["warnings"] == ["Invalid span link removed"]


@pytest.mark.parametrize(
    "span",
    [
        sample_span(attributes={"telemetry.sdk.name": "opentelemetry"}),  # moves to the resource
        sample_span(attributes={"ip": 1.5}),
    ],
    ids=["library attribute", "float ip"],
)
def test_declines_what_it_leaves_to_python(span: Span) -> None:
    reference, fast = both([span])
    assert fast is None
    assert reference  # and the reference answers


def test_declines_repeated_span_ids() -> None:
    server = sample_span(kind=SpanKind.SERVER)
    client = sample_span(kind=SpanKind.CLIENT, name="call")
    reference, fast = both([client, server])
    assert fast is None
    assert b'"spanID":"0000000000000001"' in reference  # the server span got a new id


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hostile_stored_bytes(data: st.DataObject) -> None:
    """Any bytes: no crash; when upb accepts them too, the same span as the reference."""
    assert ACCEL is not None
    base = request_from_spans([data.draw(spans())]).resource_spans[0].scope_spans[0].spans[0]
    raw = bytearray(base.SerializeToString())
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        raw[at : at + 1] = data.draw(st.binary(max_size=3))
    raw_bytes = bytes(raw) if data.draw(st.booleans()) else data.draw(st.binary(max_size=64))
    fast = ACCEL.span_json(raw_bytes, "p1", ())
    assert fast is None or isinstance(fast, dict)
    try:
        span = span_from_row(raw_bytes, Resource(), Scope())
    except DecodeError:
        return
    if fast is not None:
        assert orjson.dumps(fast) == orjson.dumps(span_json(adjust([span])[0], "p1"))


def test_refuses_wrong_argument_types() -> None:
    assert ACCEL is not None
    with pytest.raises(TypeError):
        ACCEL.span_json("not bytes", "p1", ())
    with pytest.raises(TypeError):
        ACCEL.span_json(b"", "p1", ("not a dict",))


def test_http_answer_is_the_same_with_and_without_the_accelerator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`GET /api/traces/{id}`, a lookup by ids and a search, through the real app and memory
    storage: the same bytes from the fast path as from the reference path."""
    large = ui_seed.large(random.Random(5), START_NS + 1_000_000, 500)
    client = client_for(memory_storage(trace_a(), trace_b(), large))
    ids = [trace_id_to_hex(t[0].trace_id) for t in (trace_a(), trace_b(), large)]
    window = f"start={START_NS // 1000 - 1}&end={time.time_ns() // 1000}"
    urls = [f"/api/traces/{i}" for i in ids]
    urls.append("/api/traces?traceID=" + "&traceID=".join(ids))
    urls.append(f"/api/traces?service=frontend&{window}&limit=10")
    original = fast_path.trace_json_from_otlp
    answered: list[bool] = []

    def counted(spans: Sequence[fast_path.OTLPSpan]) -> object:
        rendered = original(spans)
        answered.append(rendered is not None)
        return rendered

    monkeypatch.setattr(fast_path, "trace_json_from_otlp", counted)
    monkeypatch.setattr(query_service, "ACCELERATED", True)  # even under TRACEMESH_NO_ACCEL=1
    responses = [client.get(url) for url in urls]
    assert [r.status_code for r in responses] == [200] * 5
    fast = [r.content for r in responses]
    # every trace took the fast path but the Zipkin-style one (shared client/server ids)
    assert answered[:6] == [True, False, True, True, False, True]
    assert sorted(answered[6:]) == [False, True, True]
    assert len(orjson.loads(fast[-2])["data"]) == len(orjson.loads(fast[-1])["data"]) == 3
    monkeypatch.setattr(query_service, "ACCELERATED", False)
    assert [client.get(url).content for url in urls] == fast
    assert len(answered) == 9  # the reference path does not call the fast path
