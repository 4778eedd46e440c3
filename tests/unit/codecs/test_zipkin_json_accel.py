"""The C fast path of Zipkin v2 JSON decoding (`tracemesh.accel._zipkin_json`) against the Python
path it must reproduce: the same rows (`raw` byte for byte), groups, shared Resource and Scope
objects and spans whenever it does not decline; a decline whenever the Python path refuses the
request; and no decline on the spans it exists for (Envoy's, the benchmark's, and every generated
request without one of the rare features it leaves to Python), so that these tests fail if the fast
path silently stops running. Hostile input (wrong JSON types anywhere) must end exactly as on the
Python path: same result, or same exception and message."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import ipaddress
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.codecs.test_zipkin_json import GATEWAY_SPAN, SERVER_SPAN
from tracemesh.codecs import zipkin_json
from tracemesh.codecs.zipkin_model import _SPECIAL_KEYS, RESOURCE_KEYS
from tracemesh.model.batch import SpanBatch, SpanRow


def _accelerator() -> ModuleType | None:
    """The extension itself, imported directly so that TRACEMESH_NO_ACCEL=1 cannot skip these."""
    try:
        return importlib.import_module("tracemesh.accel._zipkin_json")
    except ImportError:
        return None


ACCEL = _accelerator()
pytestmark = pytest.mark.skipif(
    ACCEL is None,
    reason="tracemesh.accel._zipkin_json is not built (no C compiler when the package was "
    "installed); rebuild with `uv sync --reinstall-package tracemesh`",
)
Outcome = tuple[str, Any]


@contextlib.contextmanager
def _accel(module: ModuleType | None) -> Iterator[None]:
    saved = zipkin_json._ACCEL
    zipkin_json._ACCEL = module
    try:
        yield
    finally:
        zipkin_json._ACCEL = saved


def _outcome(data: bytes, module: ModuleType | None) -> tuple[Outcome, Outcome]:
    """Both public v2 decoders' results, or the exception each raised, with `module` in use."""
    with _accel(module):
        outcomes = []
        for decode in (zipkin_json.batch_from_json_v2, zipkin_json.spans_from_json_v2):
            try:
                outcomes.append(("ok", decode(data)))
            except Exception as exc:  # any exception: the two paths must raise the same one
                outcomes.append(("raised", (type(exc), str(exc))))
        return outcomes[0], outcomes[1]


def _fast(data: bytes) -> Any:
    """The accelerator's raw answer for `data`: (groups, order), or None when it declines."""
    assert ACCEL is not None
    try:
        docs = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(docs, list):
        return None
    return ACCEL.rows_from_v2(docs, SpanRow, _SPECIAL_KEYS, RESOURCE_KEYS)


def _shape(batch: SpanBatch) -> list[tuple[int, int, list[list[type]]]]:
    """What `==` does not see: which groups share one Resource / Scope object (as RowBuilder
    shares them), and the exact type of every row field (an IntEnum would compare equal)."""
    resources: list[int] = []
    scopes: list[int] = []
    shape = []
    for group in batch.groups:
        if id(group.resource) not in resources:
            resources.append(id(group.resource))
        if id(group.scope) not in scopes:
            scopes.append(id(group.scope))
        types = [[type(row), *map(type, row)] for row in group.rows]
        shape.append((resources.index(id(group.resource)), scopes.index(id(group.scope)), types))
    return shape


def check(data: bytes, *, expect_fast: bool | None = None) -> bool:
    """Assert the fast path's outcome is the Python path's; returns whether it ran. With
    `expect_fast`, also that it ran (True) whenever the Python path accepts the request."""
    python_batch, python_spans = _outcome(data, None)
    fast_batch, fast_spans = _outcome(data, ACCEL)
    ran = _fast(data) is not None
    if python_batch[0] == "raised":
        assert not ran, f"the fast path accepted what the Python path refuses: {python_batch[1]}"
    elif expect_fast:
        assert ran, "the fast path declined a request it should handle"
    assert fast_batch == python_batch
    assert fast_spans == python_spans
    if ran:
        assert _shape(fast_batch[1]) == _shape(python_batch[1])
    return ran


# ---- the spans it exists for ---------------------------------------------------------------------


def _bench_request(seed: int) -> bytes:
    """A body of bench/zipkin_json.py: 1000 Envoy-like spans, the load the fast path is for."""
    path = Path(__file__).resolve().parents[3] / "bench" / "zipkin_json.py"
    spec = importlib.util.spec_from_file_location("bench_zipkin_json", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    body: bytes = module.make_request(seed)[0]
    return body


def test_benchmark_requests_take_the_fast_path() -> None:
    for seed in range(3):
        assert check(_bench_request(seed), expect_fast=True)


def test_envoy_spans_take_the_fast_path() -> None:
    failing = {
        **SERVER_SPAN,
        "tags": {
            **SERVER_SPAN["tags"],
            "error": "true",
            "http.status_code": "503",
            "response_flags": "UF",
        },
    }
    for spans in ([GATEWAY_SPAN], [GATEWAY_SPAN, SERVER_SPAN], [SERVER_SPAN, failing]):
        assert check(orjson.dumps(spans), expect_fast=True)


def test_otel_sdk_style_tags_take_the_fast_path() -> None:
    span = {
        "traceId": "00000000000000000000000000000abc",
        "id": "ABCDEF0123456789",
        "parentId": "0000000000000000",
        "name": "GET /users",
        "kind": "server",
        "timestamp": 1_700_000_000_000_000,
        "duration": 1500,
        "localEndpoint": {"serviceName": "users", "ipv6": "2001:0DB8:0:0:0:0:0:1", "port": 8080},
        "remoteEndpoint": {"serviceName": "gateway", "ipv4": "10.0.0.1", "port": 44123},
        "tags": {
            "otel.library.name": "opentelemetry.instrumentation.flask",
            "otel.library.version": "0.45b0",
            "otel.status_code": "ERROR",
            "otel.status_description": "boom",
            "error": "boom",
            "host.name": "node-1",
            "net.host.port": "8080",
            "http.route": "/users",
            "w3c.tracestate": "a=b",
        },
        "annotations": [{"timestamp": 1_700_000_000_000_100, "value": "exception"}],
        "shared": True,
        "debug": False,
    }
    assert check(orjson.dumps([span, {**span, "id": "1"}]), expect_fast=True)


def test_hex_parsing_and_ipv6_canonical_form() -> None:
    ids = ["1", "a", "F", "0" * 31 + "1", "ABCDEFabcdef0123", "123", "f" * 32]
    addresses = [
        "::",
        "::1",
        "1::",
        "1:0:0:2::",
        "1:0:0:2:0:0:0:3",
        "0:0:1:0:0:1:0:0",
        "FFFF:0:0:0:0:0:0:0",
        "1:2:3:4:5:6:7:8",
        "0001:0db8::0000:0001",
        "1::2:0:0",
    ]
    spans = [
        {"traceId": tid, "id": tid[-16:], "timestamp": 1, "localEndpoint": {"ipv6": ip}}
        for tid in ids
        for ip in addresses
    ]
    assert check(orjson.dumps(spans), expect_fast=True)


def test_rare_but_valid_forms_are_left_to_python() -> None:
    base = {"traceId": "1", "id": "2", "timestamp": 1}
    for rare in (
        {"kind": "ſerver"},  # str.upper() is Unicode-aware: this is SERVER
        {"localEndpoint": {"ipv6": "::ffff:10.0.0.1"}},
        {"localEndpoint": {"ipv6": "::ffff:a00:1"}},  # IPv4-mapped: printed so only before 3.13
        {"localEndpoint": {"ipv6": "fe80::1%eth0"}},
        {"tags": {"otlp.link.0": "00|01||{}|0"}},
        {"tags": {"otel.library.name": "a", "otel.scope.name": "b"}},
        {"annotations": [{"timestamp": 2, "value": "name|{}|0"}]},
        {"annotations": [{"timestamp": 2, "value": '{"event": "x"}'}]},
    ):
        data = orjson.dumps([{**base, **rare}])
        assert _outcome(data, None)[0][0] == "ok"
        assert not check(data)


def test_bad_arguments_are_type_errors() -> None:
    assert ACCEL is not None
    with pytest.raises(TypeError):
        ACCEL.rows_from_v2((), SpanRow, _SPECIAL_KEYS, RESOURCE_KEYS)
    with pytest.raises(TypeError):
        ACCEL.rows_from_v2([], dict, _SPECIAL_KEYS, RESOURCE_KEYS)
    with pytest.raises(TypeError):
        ACCEL.rows_from_v2([])
    assert ACCEL.rows_from_v2([], SpanRow, _SPECIAL_KEYS, RESOURCE_KEYS) == ([], [])
    for junk in (None, 1, "x", [], [{}], {"traceId": 1}):
        assert ACCEL.rows_from_v2([junk], SpanRow, _SPECIAL_KEYS, RESOURCE_KEYS) is None


# ---- random well-formed requests -----------------------------------------------------------------

texts = st.text(max_size=12)  # any code point but surrogates, which JSON cannot carry
hex_digits = "0123456789abcdefABCDEF"


def hex_ids(size: int) -> st.SearchStrategy[str]:
    full = st.binary(min_size=size, max_size=size).filter(any).map(bytes.hex)
    short = st.text(hex_digits, min_size=1, max_size=2 * size).filter(lambda t: t.strip("0"))
    return st.one_of(full, full.map(str.upper), short)


@st.composite
def ipv6_texts(draw: st.DrawFn) -> tuple[str, bool]:
    """An IPv6 address as some client may write it, and whether the fast path takes it."""
    # ip_addresses() favours special networks (IPv4-mapped ones decline); random ints rarely are
    address = ipaddress.IPv6Address(
        draw(
            st.one_of(
                st.integers(0, 2**128 - 1),
                st.integers(0, 2**128 - 1),
                st.ip_addresses(v=6),
                st.sampled_from(["::", "::1", "1::", "::ffff:1:2", "1:0:0:1::", "0:0:1::1:0:0"]),
            )
        )
    )
    text = draw(st.sampled_from([str(address), address.exploded, str(address).upper()]))
    if draw(st.booleans()) and ":" in text[1:-1]:  # a non-compressed, non-exploded spelling
        text = ":".join(part.lstrip("0") or "0" for part in address.exploded.split(":"))
    return text, address.ipv4_mapped is None


@st.composite
def endpoints(draw: st.DrawFn) -> tuple[Any, bool]:
    fast = True
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["serviceName"] = draw(texts | st.sampled_from(["", "svc-1.default"]) | st.none())
    if draw(st.booleans()):
        doc["ipv4"] = draw(st.ip_addresses(v=4).map(str) | st.just("") | st.none())
    if draw(st.booleans()):
        text, fast = draw(ipv6_texts())
        doc["ipv6"] = text
    if draw(st.booleans()):
        doc["port"] = draw(st.integers(0, 65535) | st.none())
    return draw(st.sampled_from([doc, doc, doc, None, {}])), fast


SCOPE_KEYS = ["otel.library.name", "otel.scope.name", "otel.library.version", "otel.scope.version"]
SPECIAL_VALUES = {
    "error": st.sampled_from(["true", "false", "", "boom", "True"]),
    "otel.status_code": st.sampled_from(
        [
            "Ok",
            "OK",
            "ok",
            "Error",
            "ERROR",
            "STATUS_CODE_OK",
            "STATUS_CODE_ERROR",
            "status_code_unset",
            "Unset",
            "bogus",
            "",
            "érror",
        ]
    ),
    "span.kind": st.sampled_from(["internal", "INTERNAL", "client", "", "x"]),
}


@st.composite
def tag_dicts(draw: st.DrawFn) -> tuple[dict[str, str], bool]:
    """Plain and special tags in random order; False when the fast path is expected to decline."""
    special = st.sampled_from(
        sorted(_SPECIAL_KEYS | {"otlp.link.1", "otel.zipkin.absentField.startTime"})
    )
    keys = draw(
        st.lists(
            special | texts | st.sampled_from(["component", "http.url"]), max_size=8, unique=True
        )
    )
    tags = {}
    for key in keys:
        tags[key] = draw(SPECIAL_VALUES.get(key, texts | st.sampled_from(["", "proxy", "8080"])))
    fast = "otlp.link.0" not in tags and tags.get("otel.status_code", "").isascii()
    for a, b in (SCOPE_KEYS[:2], SCOPE_KEYS[2:]):
        if tags.get(a) and tags.get(b) and tags[a] != tags[b]:
            fast = False  # the Python result depends on set iteration order
    return tags, fast


def plain_annotation(value: str) -> bool:
    return "|" not in value and not (value.startswith("{") and value.endswith("}"))


times = st.integers(1, 2**64 // 1000 - 1)  # µs whose ns fit 64 bits (more is a Python error)


@st.composite
def span_docs(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """A well-formed v2 span with any mix of optional fields, and whether the fast path must take
    it (it may decline only for the rare forms it documents)."""
    fast = True
    span_id = draw(hex_ids(8))
    doc: dict[str, Any] = {"traceId": draw(hex_ids(16)), "id": span_id}
    parent = draw(
        st.one_of(
            st.none(),
            st.just(""),
            hex_ids(8),
            st.just(span_id),
            st.text("0", min_size=1, max_size=20),
        )
    )
    if parent is not None or draw(st.booleans()):
        doc["parentId"] = parent
    if draw(st.booleans()):
        doc["name"] = draw(texts | st.none())
    if draw(st.booleans()):
        known = st.sampled_from(
            [
                "CLIENT",
                "SERVER",
                "PRODUCER",
                "CONSUMER",
                "client",
                "Server",
                "INTERNAL",
                "",
                "bogus",
            ]
        )
        kind = draw(st.one_of(known, known, known, texts, st.none()))
        fast &= kind is None or kind.isascii()
        doc["kind"] = kind
    for key in ("timestamp", "duration"):
        if draw(st.integers(0, 3)) < 3:  # (draws lean to 0: mostly present)
            doc[key] = draw(st.one_of(times, times, times, st.just(0), st.none()))
    for key in ("localEndpoint", "remoteEndpoint"):
        if draw(st.booleans()):
            doc[key], endpoint_fast = draw(endpoints())
            fast &= endpoint_fast
    if draw(st.booleans()):
        values = texts | st.sampled_from(["", "cs", "a|{}|1", '{"event":"x"}', "wr"])
        annotation = st.fixed_dictionaries(
            {"value": values}, optional={"timestamp": times | st.none()}
        )
        annotations = draw(st.lists(annotation, max_size=3) | st.none())
        fast &= all(plain_annotation(a["value"]) for a in annotations or ())
        doc["annotations"] = annotations
    if draw(st.booleans()):
        doc["tags"], tags_fast = draw(tag_dicts())
        fast &= tags_fast
    for key in ("debug", "shared"):
        if draw(st.booleans()):
            doc[key] = draw(st.booleans() | st.none())
    return doc, fast


@settings(max_examples=150)
@given(st.lists(span_docs(), max_size=4))
def test_random_requests_match_the_python_path(spans: list[tuple[dict[str, Any], bool]]) -> None:
    check(orjson.dumps([doc for doc, _ in spans]), expect_fast=all(fast for _, fast in spans))


@settings(max_examples=40)
@given(st.lists(span_docs().filter(lambda item: item[1]), min_size=1, max_size=3))
def test_every_service_and_scope_mix_groups_as_python_does(
    spans: list[tuple[dict[str, Any], bool]],
) -> None:
    docs = [doc for doc, _ in spans]
    for i, doc in enumerate(docs):  # few services, so that groups repeat and interleave
        doc["localEndpoint"] = {"serviceName": f"svc-{i % 2}"}
    check(orjson.dumps(docs + docs[::-1]), expect_fast=True)


# ---- hostile input -------------------------------------------------------------------------------


def encode(docs: Any) -> bytes:
    """JSON for any value here: the standard library writes integers past 64 bits (orjson reads
    them as floats) and non-finite floats (orjson refuses them: a DecodeError on both paths)."""
    return json.dumps(docs).encode()


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3)


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | texts
    | st.sampled_from(["", "0", "1", "true", "::1", "1.2.3.4", "CLIENT"]),
    _nested,
    max_leaves=6,
)
SPAN_KEYS = [
    "traceId",
    "id",
    "parentId",
    "name",
    "kind",
    "timestamp",
    "duration",
    "localEndpoint",
    "remoteEndpoint",
    "annotations",
    "tags",
    "debug",
    "shared",
]
INNER_KEYS = ["serviceName", "ipv4", "ipv6", "port", "timestamp", "value", "error"]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document where a value could be replaced."""
    yield prefix
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in items:
        yield from _paths(child, (*prefix, key))


@settings(max_examples=200)
@given(st.data())
def test_one_bad_value_anywhere_ends_as_on_the_python_path(data: st.DataObject) -> None:
    """A valid Envoy request with one value (any depth) swapped for a random JSON value, or one
    field added with a random value."""
    docs = orjson.loads(orjson.dumps([GATEWAY_SPAN, SERVER_SPAN]))
    path = data.draw(st.sampled_from(list(_paths(docs))[1:]))
    *parents, last = path
    target = docs
    for key in parents:
        target = target[key]
    if data.draw(st.booleans()) and isinstance(target[last], dict):
        target = target[last]
        last = data.draw(st.sampled_from(SPAN_KEYS + INNER_KEYS))
    target[last] = data.draw(json_values)
    check(encode(docs))


hostile_inner = st.dictionaries(st.sampled_from(INNER_KEYS) | texts, json_values, max_size=4)
hostile_field = json_values | hostile_inner | st.lists(hostile_inner, max_size=3)


@settings(max_examples=200)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(SPAN_KEYS), hostile_field, max_size=13) | json_values,
        max_size=3,
    )
)
def test_random_json_values_in_every_field_end_as_on_the_python_path(docs: list[Any]) -> None:
    check(encode(docs))


@given(st.text(hex_digits + ":.%/ g", max_size=46), st.text("0123456789.+ a", max_size=18))
def test_address_texts_end_as_on_the_python_path(ipv6: str, ipv4: str) -> None:
    for endpoint in ({"ipv6": ipv6}, {"ipv4": ipv4}, {"ipv4": ipv4, "ipv6": ipv6}):
        check(orjson.dumps([{"traceId": "1", "id": "1", "localEndpoint": endpoint}]))


@given(
    st.text(hex_digits + " g0", max_size=36),
    st.text(hex_digits + " 0", max_size=20),
    st.text(hex_digits + "0x", max_size=20) | st.none(),
)
def test_id_texts_end_as_on_the_python_path(trace: str, span: str, parent: str | None) -> None:
    check(orjson.dumps([{"traceId": trace, "id": span, "parentId": parent, "timestamp": 5}]))


@given(st.integers(-(2**65), 2**65), st.integers(-(2**65), 2**65), st.integers(-(2**65), 2**65))
def test_times_end_as_on_the_python_path(timestamp: int, duration: int, annotated: int) -> None:
    annotation = {"timestamp": annotated, "value": "x"}
    span = {"traceId": "1", "id": "1", "timestamp": timestamp, "duration": duration}
    check(encode([span, {**span, "annotations": [annotation]}]))


def test_no_reference_leaks_on_any_path() -> None:
    """Every way out (rows, a decline at each stage, after earlier spans made rows and groups)
    releases what it made: repeated calls do not grow the interpreter's allocated blocks."""
    assert ACCEL is not None
    good = orjson.loads(_bench_request(0))[:20]
    special = {**good[0], "tags": {"otel.library.name": "x", "host.name": "h", "error": "e"}}
    bad_fields: list[dict[str, Any]] = [
        {"traceId": 5},
        {"traceId": "0"},
        {"id": "xyz"},
        {"parentId": "1" * 17},
        {"name": 1},
        {"kind": "ſerver"},
        {"timestamp": -1},
        {"duration": 2**64},
        {"timestamp": 2**63},
        {"localEndpoint": {"ipv4": "1.2.3"}},
        {"remoteEndpoint": {"ipv6": "::ffff:1.2.3.4"}},
        {"localEndpoint": {"port": 70000}},
        {"annotations": [{"value": "a|{}|1"}]},
        {"annotations": [{"timestamp": 2**62, "value": "x"}]},
        {"annotations": {}},
        {"tags": {"otlp.link.0": "x"}},
        {"tags": {"a": 1}},
        {"debug": 1},
        {"shared": "true"},
    ]
    requests = [
        good,
        [special, *good],
        *[[*good, special, {**good[1], **bad}] for bad in bad_fields],
    ]
    args = (SpanRow, _SPECIAL_KEYS, RESOURCE_KEYS)
    for docs in requests:  # warm up caches (UTF-8 copies, interned ints...)
        ACCEL.rows_from_v2(docs, *args)
    before = sys.getallocatedblocks()
    for _ in range(50):
        for docs in requests:
            ACCEL.rows_from_v2(docs, *args)
    assert sys.getallocatedblocks() - before < 50
