"""The propagator's fast paths read and write exactly what the general paths do.

`extract_request` without a getter picks the tracing headers out in one pass (`Selection`) and
skips formats that are absent; with `HEADERS` passed explicitly it goes through the general
getter, header by header. Both must agree on every input, valid or not; so must `changes` with
`inject`, and `child_with`/`with_request` with `dataclasses.replace`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from tracemesh.propagation import HEADERS, Propagator, SpanContext
from tracemesh.propagation.carrier import TEXT, Selection
from tracemesh.propagation.composite import BAGGAGE_HEADERS, CONTEXT_HEADERS
from tracemesh.propagation.request_id import new_request_id

from .strategies import contexts, printable_values, span_ids

NAMES = [
    *CONTEXT_HEADERS,
    *BAGGAGE_HEADERS,
    "jaeger-debug-id",
    "x-request-id",
    "uberctx-user",
    "baggage-user",
    "ot-baggage-x",
    "user-agent",
    "host",
]
HEX = "0123456789abcdefABCDEF"
hexes = st.text(alphabet=HEX, min_size=1, max_size=34)
values = st.one_of(
    printable_values,
    hexes,
    st.builds(lambda a, b: f"{a}-{b}", hexes, hexes),
    st.builds(lambda a, b, c: f"{a}-{b}-{c}", hexes, hexes, st.sampled_from("01dD")),
    st.builds(lambda a, b: f"00-{a}-{b}-01", hexes, hexes),
    st.builds(lambda a, b: f"{a}:{b}:0:1", hexes, hexes),
    st.sampled_from(["1", "0", "true", "d", "k=v,k2=v2", "a=%20b"]),
)
names = st.sampled_from(NAMES).flatmap(
    lambda name: st.sampled_from([name, name.upper(), name.title()])
)
header_lists = st.lists(st.tuples(names, values), max_size=12)

READS = [("w3c", "b3", "jaeger"), ("b3", "w3c", "jaeger"), ("jaeger",), ("b3-single",)]


def _propagators() -> list[Propagator]:
    return [Propagator(read=read, generate_request_id=False) for read in READS]


PROPAGATORS = _propagators()


@given(header_lists, st.booleans())
def test_the_selection_path_reads_what_the_general_path_reads(
    headers: list[tuple[str, str]], as_bytes: bool
) -> None:
    carrier: list[tuple[str, str]] | list[tuple[bytes, bytes]] = headers
    if as_bytes:
        carrier = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    for propagator in PROPAGATORS:
        assert propagator.extract_request(carrier) == propagator.extract_request(carrier, HEADERS)


@given(st.dictionaries(names, values, max_size=10))
def test_mappings_take_the_selection_path_too(headers: dict[str, str]) -> None:
    for propagator in PROPAGATORS:
        assert propagator.extract_request(headers) == propagator.extract_request(headers, HEADERS)


@given(header_lists)
def test_selection_keeps_exactly_the_named_and_prefixed_headers(
    headers: list[tuple[str, str]],
) -> None:
    selection = Selection(["traceparent", "x-request-id"], ("uberctx-",))
    raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    expected: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.lower()
        if key in ("traceparent", "x-request-id") or key.startswith("uberctx-"):
            expected.setdefault(key, []).append(value)
    assert selection.select(headers) == expected
    assert selection.select(raw) == expected
    for key, found in expected.items():
        assert TEXT.get(selection.select(raw), key) == found


@given(contexts())
def test_changes_are_what_inject_writes(ctx: SpanContext) -> None:
    propagator = Propagator()
    written: dict[str, str] = {"x-b3-flags": "stale", "b3": "stale"}
    propagator.inject(ctx, written)
    changes = propagator.changes(ctx)
    assert {k: v for k, v in changes.items() if v is not None} == written
    assert all(name not in written for name, value in changes.items() if value is None)


@given(contexts(), st.sampled_from([True, False, None]), st.text(max_size=40), span_ids)
def test_child_with_is_replace_of_a_child(
    ctx: SpanContext, sampled: bool | None, request_id: str, span_id: bytes
) -> None:
    expected = replace(ctx.child(span_id), sampled=sampled, request_id=request_id)
    assert ctx.child_with(sampled, request_id, span_id) == expected


@given(contexts(), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))
def test_with_request_is_replace(ctx: SpanContext, bag: dict[str, str]) -> None:
    assert ctx.with_request(bag, "rid") == replace(ctx, baggage=bag, request_id="rid")
    assert ctx.with_request(bag, "rid", debug=True) == replace(
        ctx, baggage=bag, request_id="rid", debug=True
    )


def test_new_request_ids_are_uuid4() -> None:
    seen = set()
    for _ in range(2000):
        text = new_request_id()
        value = uuid.UUID(text)
        assert str(value) == text and re.fullmatch(r"[0-9a-f-]{36}", text)
        assert value.version == 4 and value.variant == uuid.RFC_4122
        seen.add(text[19])
    assert seen == set("89ab")  # the variant digit takes all four values
