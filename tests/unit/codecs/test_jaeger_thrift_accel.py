"""The C accelerator for Jaeger Thrift (`tracemesh.accel._jaeger_thrift`) against the Python path.

Whenever the accelerator accepts an input, its rows (every `raw` byte), scopes and resource must
equal the Python path's; whenever the Python path fails, the accelerator must decline. Typical
input must not be declined, so these tests fail if the fast path silently stops running. Hostile
input (random bytes, every truncation, bit flips, bombs) must never crash it.

The batches are hand-built `thrift_spec` structs, so they hold what the model encoder never writes:
absent fields, every tag type with stray values in the other fields, duplicate special tags,
unknown tag types, references of any type into any trace, out-of-range log times, unstorable spans;
some are written with fields reordered and unknown fields (of every type) mixed in.
"""

from __future__ import annotations

import copy
import gc
import importlib
import importlib.util
import itertools
import math
import os
import random
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from thrift.Thrift import TMessageType, TType
from thrift.transport.TTransport import TMemoryBuffer

from tracemesh.codecs import DecodeError
from tracemesh.codecs import jaeger_thrift as jt
from tracemesh.codecs import thrift_spec as ts
from tracemesh.codecs.otlp_proto import DecodedBatch
from tracemesh.model.batch import SpanRow
from tracemesh.model.span import Event, Link, Resource, Span, SpanKind, StatusCode


def _extension() -> ModuleType | None:
    try:  # directly, so that these tests run even under TRACEMESH_NO_ACCEL=1
        return importlib.import_module("tracemesh.accel._jaeger_thrift")
    except ImportError:
        return None


EXTENSION = _extension()
pytestmark = pytest.mark.skipif(
    EXTENSION is None,
    reason="the C extension tracemesh.accel._jaeger_thrift is not built (no C compiler at "
    "install time?); `make install` builds it",
)


@pytest.fixture(autouse=True)
def accelerated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The codec's accelerator slot holds the extension, whatever TRACEMESH_NO_ACCEL says."""
    assert EXTENSION is not None
    EXTENSION.setup(SpanRow, tuple(SpanKind), tuple(StatusCode))
    monkeypatch.setattr(jt, "_accel", EXTENSION)
    yield


PROTOCOLS = st.sampled_from(ts.PROTOCOLS)
MAX_US = (2**64 - 1) // 1000
I64 = st.integers(-(2**63), 2**63 - 1)
I32 = st.integers(-(2**31), 2**31 - 1)
TEXT = st.text(max_size=10)
SPECIAL_KEYS = [
    "span.kind", "otel.status_code", "w3c.tracestate", "otel.scope.name", "error",
    "otel.status_description", "otel.scope.version", "http.status_code", "http.status_message",
]  # fmt: skip
KINDS = ["server", "client", "producer", "consumer", "internal", "unspecified", "SERVER",
         "Client", "bogus", ""]  # fmt: skip
STATUS_NAMES = ["OK", "ok", "ERROR", "Error", "UNSET", "x", ""]
HTTP_TEXTS = ["200", "404", "+500", "-1", "0404", "399", "1e3", " 200", "abc", "", "+", "-",
              "9223372036854775807", "9223372036854775808", "-9223372036854775808",
              "-9223372036854775809", "99999999999999999999"]  # fmt: skip
HTTP_CODES = [0, 99, 100, 200, 399, 400, 404, 499, 500, 599, -1, 2**63 - 1, -(2**63)]


# ---- strategies: Jaeger structs as a client (or a fuzzer) might send them ------------------------


@st.composite
def tags(draw: st.DrawFn, typical: bool = True, key: str | None = None) -> ts.Tag:
    """A tag whose value fits its key (special keys get the values their rules care about), plus
    stray values in the other value fields; `typical=False` adds what the accelerator declines."""
    if key is None:
        key = draw(st.sampled_from([*SPECIAL_KEYS, "event", "component", "k", ""]) | TEXT)
    vtype = draw(st.sampled_from([0, 1, 2, 3, 4]))
    strings = TEXT
    if key == "span.kind":
        strings = st.sampled_from(KINDS) | (TEXT if not typical else st.nothing())
    elif key == "otel.status_code":
        strings = st.sampled_from(STATUS_NAMES) | (TEXT if not typical else st.nothing())
    elif key == "http.status_code":
        strings = st.sampled_from(HTTP_TEXTS)
    tag = ts.Tag(
        key=key if key or draw(st.booleans()) else None,
        vType=vtype if vtype or draw(st.booleans()) else None,
        vStr=draw(strings) if vtype == 0 or draw(st.booleans()) else None,
        vDouble=draw(st.floats() | st.sampled_from([0.0, -0.0, math.nan])) if vtype == 1 else None,
        vBool=draw(st.booleans()) if vtype == 2 or draw(st.booleans()) else None,
        vLong=draw(st.sampled_from(HTTP_CODES) | I64) if vtype == 3 else None,
        vBinary=draw(st.binary(max_size=8)) if vtype == 4 else None,
    )
    if key in ("span.kind", "otel.status_code", "error") and draw(st.booleans()):
        # the values that decide: strings, and `error` as a bool
        tag.vType = 2 if key == "error" else 0
        tag.vStr = draw(strings) if key != "error" else tag.vStr
        tag.vBool = draw(st.booleans()) if key == "error" else tag.vBool
    if key == "http.status_code" and draw(st.booleans()):
        tag.vType, tag.vLong = 3, draw(st.sampled_from(HTTP_CODES))
    if not typical and draw(st.integers(0, 20)) == 0:
        tag.vType = draw(st.sampled_from([5, -1, 2**31 - 1]))  # unknown: declined
    return tag


def tag_lists(typical: bool = True, max_size: int = 8) -> st.SearchStrategy[list[ts.Tag]]:
    return st.lists(tags(typical), max_size=max_size)


@st.composite
def logs(draw: st.DrawFn, typical: bool = True) -> ts.Log:
    times = st.integers(0, MAX_US)
    if not typical:
        times = times | st.sampled_from([-1, MAX_US + 1, -(2**63), 2**63 - 1])
    fields = draw(st.none() | tag_lists(typical, 4))
    if fields is not None and draw(st.booleans()):  # a (possibly non-string) `event` name
        fields.insert(draw(st.integers(0, len(fields))), draw(tags(typical, key="event")))
    return ts.Log(timestamp=draw(st.none() | times), fields=fields)


@st.composite
def refs(draw: st.DrawFn, low: int | None, high: int | None, typical: bool) -> ts.SpanRef:
    same_trace = draw(st.booleans())
    ref_types = st.sampled_from([None, 0, 1]) | (I32 if not typical else st.nothing())
    return ts.SpanRef(
        refType=draw(ref_types),
        traceIdLow=low if same_trace else draw(st.none() | I64),
        traceIdHigh=high if same_trace else draw(st.none() | I64),
        spanId=draw(st.none() | st.just(0) | I64),
    )


@st.composite
def jaeger_spans(draw: st.DrawFn, typical: bool = True) -> ts.Span:
    high = draw(st.none() | st.just(0) | I64)  # 64-bit ids have none
    low = draw(I64.filter(bool))
    span_id = draw(I64.filter(bool))
    start = draw(st.integers(1, MAX_US // 2))
    duration: int | None = draw(st.none() | st.integers(0, MAX_US // 2))
    if not typical:  # unstorable spans: zero ids, no start, negative duration, beyond 2554
        if draw(st.integers(0, 10)) == 0:
            low, high = 0, draw(st.sampled_from([0, None]))
        if draw(st.integers(0, 10)) == 0:
            span_id = 0
        if draw(st.integers(0, 10)) == 0:
            start = draw(st.sampled_from([0, -5, MAX_US]))
        if draw(st.integers(0, 10)) == 0:
            duration = draw(st.sampled_from([-1, MAX_US]))
    references = draw(st.none() | st.lists(refs(low, high, typical), max_size=3))
    return ts.Span(
        traceIdLow=low,
        traceIdHigh=high,
        spanId=span_id,
        parentSpanId=draw(st.none() | st.just(0) | I64),
        operationName=draw(st.none() | TEXT | st.sampled_from(["op", "GET /api"])),
        references=references,
        flags=draw(st.none() | st.sampled_from([0, 1, 2, 3]) | I32),
        startTime=start,
        duration=duration,
        tags=draw(st.none() | tag_lists(typical)),
        logs=draw(st.none() | st.lists(logs(typical), max_size=3)),
    )


@st.composite
def batches(draw: st.DrawFn, typical: bool = True) -> ts.Batch:
    stats = st.builds(ts.ClientStats, st.none() | I64, st.none() | I64, st.none() | I64)
    process_tags = st.lists(
        tags(True, draw(st.sampled_from(["hostname", "jaeger.version", "ip", "service.name"]))),
        max_size=3,
    ).filter(lambda tags: not any(math.isnan(tag.vDouble or 0.0) for tag in tags))  # nan != nan
    return ts.Batch(
        process=ts.Process(serviceName=draw(st.none() | TEXT), tags=draw(st.none() | process_tags)),
        spans=draw(st.lists(jaeger_spans(typical), max_size=5)),
        seqNo=draw(st.none() | I64),
        stats=draw(st.none() | stats),
    )


# ---- writing them: plain, or with fields reordered and unknown fields mixed in -------------------

EXTRA_FIELDS = (  # field ids no Jaeger struct reads, one of each type the accelerator skips
    (0, TType.I32, "x_zero", None, None),
    (-3, TType.STRING, "x_negative", "BINARY", None),
    (30, TType.I64, "x_i64", None, None),
    (31, TType.STRUCT, "x_struct", [ts.ClientStats, ts.ClientStats.thrift_spec], None),
    (32, TType.LIST, "x_list", (TType.LIST, (TType.STRING, "BINARY", False), False), None),
    (33, TType.BOOL, "x_bool", None, None),
    (34, TType.DOUBLE, "x_double", None, None),
    (35, TType.I16, "x_i16", None, None),
    (300, TType.BYTE, "x_byte", None, None),
    (37, TType.LIST, "x_bools", (TType.BOOL, None, False), None),
)
EXTRA_VALUES: dict[str, Any] = {
    "x_zero": 7, "x_negative": b"neg", "x_i64": -(2**40), "x_struct": ts.ClientStats(1, -2, None),
    "x_list": [[b"a", b""], []], "x_bool": True, "x_double": -1.5, "x_i16": -300, "x_byte": 7,
    "x_bools": [True, False, True],
}  # fmt: skip


def _variant_spec(cls: type[ts.ThriftStruct], extras: bool) -> ts.Spec:
    """`cls`'s spec with its fields in reverse order (and unknown fields mixed in), nested too."""
    entries: list[ts.SpecEntry] = []
    for entry in reversed(cls.thrift_spec):
        if entry is None:
            continue
        fid, ttype, name, args, default = entry
        if ttype == TType.STRUCT:
            args = [args[0], _variant_spec(args[0], extras)]
        elif ttype == TType.LIST and args[0] == TType.STRUCT:
            args = (TType.STRUCT, [args[1][0], _variant_spec(args[1][0], extras)], False)
        entries.append((fid, ttype, name, args, default))
    if extras:
        middle = len(entries) // 2
        entries[middle:middle] = EXTRA_FIELDS[:4]
        entries += EXTRA_FIELDS[4:]
    return tuple(entries)


def _with_extras(value: Any) -> Any:
    if isinstance(value, ts.ThriftStruct):
        for name in value.field_names():
            _with_extras(getattr(value, name))
        for name, extra in EXTRA_VALUES.items():
            setattr(value, name, extra)
    elif isinstance(value, list):
        for item in value:
            _with_extras(item)
    return value


def encode(batch: ts.Batch, protocol: str, envelope: bool, layout: str = "plain") -> bytes:
    """A bare Batch or an emitBatch message; layout "reordered" or "extras" writes the fields in
    reverse order, "extras" with unknown fields too (Batch.seqNo/stats are unknown already)."""
    if layout == "plain":
        if envelope:
            return ts.encode_message(ts.EMIT_BATCH, 3, ts.EmitBatchArgs(batch), protocol)
        return ts.encode_struct(batch, protocol)
    extras = layout == "extras"
    value: ts.ThriftStruct = ts.EmitBatchArgs(batch) if envelope else batch
    value = _with_extras(copy.deepcopy(value)) if extras else value
    trans = TMemoryBuffer()
    prot = ts._protocol(trans, protocol, 0)
    if envelope:
        prot.writeMessageBegin(ts.EMIT_BATCH, TMessageType.CALL, -1)
    trans.write(prot._fast_encode(value, [type(value), _variant_spec(type(value), extras)]))
    return bytes(trans.getvalue())


# ---- the comparison ----------------------------------------------------------------------------


def python_path(envelope: bool) -> Callable[[bytes, str], DecodedBatch]:
    return jt.decode_emit_batch_python if envelope else jt.decode_batch_python


def public_path(envelope: bool) -> Callable[[bytes, str], DecodedBatch]:
    return jt.decode_emit_batch if envelope else jt.decode_batch


def assert_same(fast: DecodedBatch, slow: DecodedBatch) -> None:
    assert fast == slow
    for fast_group, slow_group in zip(fast.batch.groups, slow.batch.groups, strict=True):
        assert fast_group.scope == slow_group.scope
        assert fast_group.resource == slow_group.resource
        for fast_row, slow_row in zip(fast_group.rows, slow_group.rows, strict=True):
            assert type(fast_row) is SpanRow
            assert fast_row.raw == slow_row.raw
            # SpanKind and StatusCode members, not just equal ints
            assert [type(x) for x in fast_row] == [type(x) for x in slow_row]


def check(data: bytes, protocol: str, envelope: bool) -> DecodedBatch | None:
    """The accelerator's result, after checking it against the Python path (and the public
    function against both): equal, or declined where the Python path fails."""
    fast = jt.decode_accelerated(data, protocol, envelope)
    try:
        slow = python_path(envelope)(data, protocol)
    except (DecodeError, ValueError) as exc:
        assert fast is None, f"accepted what the Python path refuses: {exc!r}"
        with pytest.raises(type(exc)) as public:
            public_path(envelope)(data, protocol)
        assert str(public.value) == str(exc)
        return None
    if fast is not None:
        assert_same(fast, slow)
    assert_same(public_path(envelope)(data, protocol), slow)
    return fast


# ---- typical input: equal, and never declined ---------------------------------------------------


@given(batches(), PROTOCOLS, st.booleans(), st.sampled_from(["plain", "reordered", "extras"]))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_typical_batches_are_accelerated_and_equal(
    batch: ts.Batch, protocol: str, envelope: bool, layout: str
) -> None:
    data = encode(batch, protocol, envelope, layout)
    assert check(data, protocol, envelope) is not None, "the accelerator declined typical input"


@given(batches(typical=False), PROTOCOLS, st.booleans())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_any_batch_is_equal_or_declined(batch: ts.Batch, protocol: str, envelope: bool) -> None:
    check(encode(batch, protocol, envelope), protocol, envelope)


@st.composite
def model_spans(draw: st.DrawFn) -> list[Span]:
    """Spans as an OpenTelemetry exporter would send them through the model encoder."""
    resource = Resource({"service.name": "svc", "hostname": "h", "jaeger.version": "Go-2.30"})
    spans = []
    for i in range(draw(st.integers(1, 4))):
        start = draw(st.integers(1, 2**50)) * 1000
        spans.append(
            Span(
                trace_id=draw(st.binary(min_size=16, max_size=16).filter(any)),
                span_id=draw(st.binary(min_size=8, max_size=8).filter(any)),
                name=draw(TEXT),
                start_ns=start,
                end_ns=start + draw(st.integers(0, 10**9)) * 1000,
                parent_span_id=draw(st.just(b"") | st.binary(min_size=8, max_size=8)),
                kind=draw(st.sampled_from(SpanKind)),
                attributes=draw(st.dictionaries(TEXT, TEXT | I64 | st.booleans(), max_size=4)),
                events=[Event(start + 1000, draw(TEXT), {"i": i})],
                links=[Link(b"\x07" * 16, b"\x08" * 8)] if i % 2 else [],
                flags=draw(st.integers(0, 1)),
                resource=resource,
            )
        )
    return spans


@given(model_spans(), PROTOCOLS)
@settings(max_examples=100)
def test_model_encoder_output_is_accelerated(spans: list[Span], protocol: str) -> None:
    for envelope, data in [
        (True, jt.emit_batch_message(spans, protocol)),
        (False, jt.batch_to_thrift(spans, protocol)),
    ]:
        fast = check(data, protocol, envelope)
        assert fast is not None
        assert len(jt.spans_from_rows(fast.batch)) == len(spans)


def test_benchmark_spans_are_accelerated() -> None:
    """Spans as bench/agent_udp.py makes them (as Jaeger clients pack them)."""
    path = Path(__file__).parents[3] / "bench" / "agent_udp.py"
    spec = importlib.util.spec_from_file_location("agent_udp", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    resource = Resource({"service.name": "bench-svc", "hostname": "h", "jaeger.version": "Go-2"})
    rnd = random.Random(1)
    spans = [s for _ in range(5) for s in bench.trace(rnd, resource, 1_700_000_000 * 10**9)]
    for protocol in ts.PROTOCOLS:
        data = jt.emit_batch_message(spans, protocol)
        fast = check(data, protocol, envelope=True)
        assert fast is not None and fast.batch.span_count == len(spans)


def test_every_combination_of_the_status_and_kind_tags() -> None:
    """The translator's rules, combination by combination, in one batch (each a span)."""
    absent = None
    choices: list[list[ts.Tag | None]] = [
        [absent, ts.Tag("error", 2, vBool=True), ts.Tag("error", 2, vBool=False),
         ts.Tag("error", 0, vStr="true")],
        [absent, *[ts.Tag("otel.status_code", 0, vStr=v) for v in ("OK", "error", "x")],
         ts.Tag("otel.status_code", 3, vLong=1)],
        [absent, ts.Tag("otel.status_description", 0, vStr="d"),
         ts.Tag("otel.status_description", 3, vLong=7)],
        [absent, *[ts.Tag("http.status_code", 3, vLong=v) for v in HTTP_CODES],
         *[ts.Tag("http.status_code", 0, vStr=v) for v in HTTP_TEXTS],
         ts.Tag("http.status_code", 1, vDouble=500.0), ts.Tag("http.status_code", 2, vBool=True)],
        [absent, ts.Tag("http.status_message", 0, vStr="m")],
        [absent, *[ts.Tag("span.kind", 0, vStr=v) for v in ("server", "CLIENT", "producer", "")]],
    ]  # fmt: skip
    spans = []
    rnd = random.Random(5)
    for combination in itertools.product(*choices):
        tags = [tag for tag in combination if tag is not None]
        if rnd.random() < 0.3 and tags:  # a duplicate of one of them, which the last decides
            tags.append(copy.copy(rnd.choice(tags)))
        rnd.shuffle(tags)
        spans.append(
            ts.Span(traceIdLow=1, spanId=len(spans) + 1, startTime=T0, duration=1, tags=tags)
        )
    for protocol in ts.PROTOCOLS:
        data = encode(ts.Batch(process=ts.Process("svc"), spans=spans), protocol, False)
        fast = check(data, protocol, False)
        assert fast is not None and fast.batch.span_count == len(spans)


# ---- cases declined on purpose: the Python path decides ----------------------------------------

T0 = 1_700_000_000_000_000


def one_span_batch(**fields: Any) -> ts.Batch:
    span = {"traceIdLow": 1, "spanId": 2, "startTime": T0, "duration": 5, **fields}
    return ts.Batch(process=ts.Process("svc", []), spans=[ts.Span(**span)])


DECLINED = {
    "unknown tag type": one_span_batch(tags=[ts.Tag("k", 9, vStr="v")]),
    "log time out of range": one_span_batch(logs=[ts.Log(timestamp=-1)]),
    "rejected span": one_span_batch(spanId=0),
    "span beyond 2554": one_span_batch(startTime=MAX_US, duration=1),
    "non-ASCII span.kind": one_span_batch(tags=[ts.Tag("span.kind", 0, vStr="ſerver")]),
    "non-ASCII status": one_span_batch(tags=[ts.Tag("otel.status_code", 0, vStr="ok\u0131")]),
    "long http.status_code": one_span_batch(tags=[ts.Tag("http.status_code", 0, vStr="5" * 30)]),
    "no process": ts.Batch(spans=[]),
    "no spans": ts.Batch(process=ts.Process("svc")),
}


@pytest.mark.parametrize("name", DECLINED)
@pytest.mark.parametrize("protocol", ts.PROTOCOLS)
def test_declined_cases_follow_the_python_path(name: str, protocol: str) -> None:
    for envelope in (True, False):
        data = encode(DECLINED[name], protocol, envelope)
        assert jt.decode_accelerated(data, protocol, envelope) is None
        check(data, protocol, envelope)


INVALID_UTF8 = [
    b"\xff", b"\x80", b"\xc2", b"\xc0\x80", b"\xe0\x80\x80", b"\xed\xa0\x80",
    b"\xf0\x80\x80\x80", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xe2\x82",
]  # fmt: skip
VALID_UTF8 = [b"\xc2\x80", b"\xdf\xbf", b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbf",
              b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\x7f"]  # fmt: skip


@pytest.mark.parametrize("where", ["name", "key", "value", "log"])
@pytest.mark.parametrize("raw", INVALID_UTF8 + VALID_UTF8)
def test_utf8_exactly_as_python_reads_it(raw: bytes, where: str) -> None:
    """Invalid UTF-8 is declined (Python repairs it with U+FFFD); valid UTF-8 is accelerated."""
    marker = "A" * 9
    tag = ts.Tag(marker if where == "key" else "k", 0, vStr=marker if where == "value" else "v")
    value = one_span_batch(
        operationName=marker if where == "name" else "op",
        tags=[tag] if where != "log" else None,
        logs=[ts.Log(T0, [ts.Tag("k", 0, vStr=marker)])] if where == "log" else None,
    )
    for protocol in ts.PROTOCOLS:
        data = encode(value, protocol, False)
        data = data.replace(marker.encode(), (b"<" + raw + b">").ljust(len(marker), b"A"))
        fast = check(data, protocol, False)
        assert (fast is None) == (raw in INVALID_UTF8)


def _repeat(spec: ts.Spec, name: str) -> ts.Spec:
    """`spec` with field `name` written twice: again, from the attribute `name + "2"`."""
    entry = next(e for e in spec if e is not None and e[2] == name)
    return (*spec, (entry[0], entry[1], name + "2", entry[3], entry[4]))


@pytest.mark.parametrize("field", ["references", "tags", "logs", "key", "spans", "process"])
def test_repeated_fields_are_declined(field: str) -> None:
    """The Python reader keeps the last of a repeated field; the accelerator declines."""
    tag_spec = _repeat(ts.Tag.thrift_spec, "key") if field == "key" else ts.Tag.thrift_spec
    span_spec = tuple(
        (e[0], e[1], e[2], (TType.STRUCT, [ts.Tag, tag_spec], False), e[4])
        if e is not None and e[2] == "tags" else e
        for e in ts.Span.thrift_spec
    )  # fmt: skip
    if field in ("references", "tags", "logs"):
        span_spec = _repeat(span_spec, field)
    batch_spec = tuple(
        (e[0], e[1], e[2], (TType.STRUCT, [ts.Span, span_spec], False), e[4])
        if e is not None and e[2] == "spans" else e
        for e in ts.Batch.thrift_spec
    )  # fmt: skip
    if field in ("spans", "process"):
        batch_spec = _repeat(batch_spec, field)
    tag = ts.Tag("k", 0, vStr="v")
    tag.key2 = "k2"  # type: ignore[attr-defined]
    span = ts.Span(traceIdLow=1, spanId=2, startTime=T0, references=[ts.SpanRef(1, 1, 0, 7)],
                   tags=[tag], logs=[ts.Log(T0, [])])  # fmt: skip
    span.references2 = [ts.SpanRef(1, 1, 0, 8)]  # type: ignore[attr-defined]
    span.tags2 = [ts.Tag("other", 3, vLong=1)]  # type: ignore[attr-defined]
    span.logs2 = [ts.Log(T0 + 1, [])]  # type: ignore[attr-defined]
    value = ts.Batch(process=ts.Process("a"), spans=[span])
    value.spans2 = [span, span]  # type: ignore[attr-defined]
    value.process2 = ts.Process("b")  # type: ignore[attr-defined]
    for protocol in ts.PROTOCOLS:
        prot = ts._protocol(TMemoryBuffer(), protocol, 0)
        data = prot._fast_encode(value, [ts.Batch, batch_spec])
        assert jt.decode_accelerated(data, protocol, False) is None
        assert check(data, protocol, False) is None
        assert jt.decode_batch(data, protocol).batch.span_count == (2 if field == "spans" else 1)


def test_a_list_of_structs_with_another_element_type_is_declined() -> None:
    tag = ts.Tag("k", 0, vStr="v")
    headers = {"compact": (b"\x1c", b"\x18"), "binary": (b"\x0c\0\0\0\1", b"\x0b\0\0\0\1")}
    for protocol, (struct_list, string_list) in headers.items():
        data = encode(one_span_batch(tags=[tag]), protocol, False)
        tag_bytes = ts.encode_struct(tag, protocol)
        data = data.replace(struct_list + tag_bytes, string_list + tag_bytes)
        assert jt.decode_accelerated(data, protocol, False) is None
        assert check(data, protocol, False) is None
        with pytest.raises(DecodeError, match="wrong ttype"):
            jt.decode_batch_python(data, protocol)


def test_a_binary_bool_other_than_0_or_1_is_declined() -> None:
    data = bytearray(encode(one_span_batch(tags=[ts.Tag("b", 2, vBool=True)]), "binary", False))
    at = data.index(b"\x02\x00\x05\x01") + 3  # Tag.vBool: type BOOL, id 5, value 1
    data[at] = 2
    assert jt.decode_accelerated(bytes(data), "binary", False) is None
    check(bytes(data), "binary", False)


def test_non_strict_binary_envelope_is_declined() -> None:
    args = ts.encode_struct(ts.EmitBatchArgs(one_span_batch()), "binary")
    old = struct.pack("!i", 9) + b"emitBatch" + bytes([TMessageType.ONEWAY]) + b"\0\0\0\1" + args
    assert jt.decode_accelerated(old, "binary", True) is None
    assert check(old, "binary", True) is None
    assert jt.decode_emit_batch(old, "binary").batch.span_count == 1


def test_many_scopes_are_declined_past_the_limit() -> None:
    spans = [
        ts.Span(
            traceIdLow=1, spanId=i + 1, startTime=T0, tags=[ts.Tag("otel.scope.name", 0, f"s{i}")]
        )
        for i in range(65)
    ]
    value = ts.Batch(process=ts.Process("svc"), spans=spans)
    assert jt.decode_accelerated(encode(value, "compact", False), "compact", False) is None
    value.spans = spans[:64]
    fast = check(encode(value, "compact", False), "compact", False)
    assert fast is not None and len(fast.batch.groups) == 64


def test_a_process_only_the_python_reader_refuses_falls_back() -> None:
    """The accelerator skips the process; Python reads it and refuses a list of the wrong type."""
    tags_of_i32 = (2, TType.LIST, "tags", (TType.I32, None, False), None)
    process_spec = (None, ts.Process.thrift_spec[1], tags_of_i32)
    batch_spec = (None, (1, TType.STRUCT, "process", [ts.Process, process_spec], None),
                  *ts.Batch.thrift_spec[2:])  # fmt: skip
    value = one_span_batch()
    value.process = ts.Process("svc", [1, 2])  # type: ignore[list-item]
    for protocol in ts.PROTOCOLS:
        prot = ts._protocol(TMemoryBuffer(), protocol, 0)
        data = prot._fast_encode(value, [ts.Batch, batch_spec])
        assert EXTENSION is not None and EXTENSION.decode(data, protocol == "compact", False)
        assert jt.decode_accelerated(data, protocol, False) is None
        assert check(data, protocol, False) is None


def test_a_process_with_invalid_utf8_goes_to_python_which_repairs_it_with_warnings() -> None:
    value = one_span_batch()
    value.process = ts.Process("AAAA", [])
    data = encode(value, "binary", False).replace(b"AAAA", b"A\xffAA")
    assert check(data, "binary", False) is None  # declined: the warnings are the Python path's
    slow = jt.decode_batch_python(data, "binary")
    assert slow.batch.groups[0].resource.attributes == {"service.name": "A\ufffdAA"}
    (span,) = jt.spans_from_rows(slow.batch)
    assert span.warnings == ["process: text was not valid UTF-8; invalid bytes replaced by U+FFFD"]


def test_other_protocol_names_and_types_go_to_python() -> None:
    data = encode(one_span_batch(), "binary", False)
    assert jt.decode_accelerated(data, "json", False) is None
    assert jt.decode_accelerated(bytearray(data), "binary", False) is None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown Thrift protocol"):
        jt.decode_batch(data, "json")


# ---- hostile input: never a crash, never a different answer -------------------------------------


def samples(protocol: str) -> list[tuple[bytes, bool]]:
    tag = [
        ts.Tag("http.status_code", 3, vLong=500), ts.Tag("span.kind", 0, vStr="client"),
        ts.Tag("error", 2, vBool=True), ts.Tag("x", 1, vDouble=1.5), ts.Tag("y", 4, vBinary=b"z"),
    ]  # fmt: skip
    span = ts.Span(
        traceIdLow=-1, traceIdHigh=5, spanId=-2, parentSpanId=0, operationName="op ü",
        references=[ts.SpanRef(0, -1, 5, 9), ts.SpanRef(1, 3, 4, 5)], flags=1, startTime=T0,
        duration=7, tags=tag, logs=[ts.Log(T0, [ts.Tag("event", 0, vStr="e"), *tag[:2]])],
    )  # fmt: skip
    value = ts.Batch(process=ts.Process("svc", tag[:2]), spans=[span, span], seqNo=3,
                     stats=ts.ClientStats(1, 2, 3))  # fmt: skip
    return [(encode(value, protocol, envelope, layout), envelope)
            for envelope in (True, False) for layout in ("plain", "extras")]  # fmt: skip


@pytest.mark.parametrize("protocol", ts.PROTOCOLS)
def test_every_truncation(protocol: str) -> None:
    for data, envelope in samples(protocol):
        assert check(data, protocol, envelope) is not None
        for size in range(len(data)):
            check(data[:size], protocol, envelope)


@given(st.data(), PROTOCOLS)
@settings(max_examples=600)
def test_mutations(data: st.DataObject, protocol: str) -> None:
    message, envelope = data.draw(st.sampled_from(samples(protocol)))
    mutated = bytearray(message)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        how = data.draw(st.sampled_from(["flip", "byte", "insert", "delete"]))
        if how == "flip":
            mutated[at] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "byte":
            mutated[at] = data.draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]) | st.integers(0, 255))
        elif how == "insert":
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif len(mutated) > 1:
            del mutated[at]
    check(bytes(mutated), protocol, envelope)


@given(st.binary(max_size=400), PROTOCOLS, st.booleans())
@settings(max_examples=500)
def test_random_bytes(data: bytes, protocol: str, envelope: bool) -> None:
    check(data, protocol, envelope)
    header = b"\x82\x81\x01\x09emitBatch" if protocol == "compact" else b""
    check(header + data, protocol, envelope)


COMPACT_HEADER = b"\x82\x81\x01\x09emitBatch"  # protocol id, ONEWAY v1, seqid 1, name


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out) + bytes((n,))


# A storable compact span (traceIdLow 1, spanId 2, startTime T0) whose references (field 6,
# written with an explicit id) are FOLLOWS_FROM refs of three bytes each: 64 bytes of output.
LINKS_SPAN = (
    b"\x16\x02\x26\x04\x56" + varint(2 * T0) + b"\x09\x0c\xfc" + varint(20_000)
    + b"\x15\x02\x00" * 20_000 + b"\x00"
)  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        b"\x1c\x5c" + b"\x1c" * 100_000,  # unknown nested structs, 100,000 deep
        b"\x1c\x59" + b"\x19" * 100_000,  # unknown nested lists, 100,000 deep
        b"\x1c\x29\xfc\xff\xff\xff\x07",  # 2^31-1 spans claimed
        b"\x1c\x29\x1c\x58\xff\xff\xff\xff\x0f",  # an operation name of 4 GB claimed
        b"\x1c\x29\x1c\x69\xfc\xff\xff\xff\xff\x0f",  # references: 2^32-1 claimed
        b"\x1c\x29\x1c\x16" + b"\xff" * 10 + b"\x7f",  # an 11-byte varint
        b"\x1c\x1c\x00\x19\xfc" + varint(30_000) + b"\x00" * 30_002,  # 30,000 empty spans
        b"\x1c\x1c\x00\x19\x1c" + LINKS_SPAN + b"\x00\x00",  # one span, 20,000 links
    ],
)
def test_bombs(body: bytes) -> None:
    check(COMPACT_HEADER + body, "compact", True)


def test_no_references_leak_on_accept_or_decline() -> None:
    inputs = [
        (data[:size], protocol == "compact", envelope)
        for protocol in ts.PROTOCOLS
        for data, envelope in samples(protocol)
        for size in range(0, len(data) + 1, 3)
    ]
    assert EXTENSION is not None

    def decode_all() -> int:
        return sum(EXTENSION.decode(*item) is not None for item in inputs)

    accepted = decode_all()
    gc.collect()
    before = sys.getallocatedblocks()
    for _ in range(10):
        assert decode_all() == accepted
    gc.collect()
    assert accepted and sys.getallocatedblocks() - before < 100


def test_disabled_by_environment() -> None:
    code = "from tracemesh.codecs import jaeger_thrift as jt; print(jt.ACCELERATED)"
    for value, expected in (("1", "False"), ("", "True")):
        env = {**os.environ, "TRACEMESH_NO_ACCEL": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.stdout.strip() == expected, out.stderr
