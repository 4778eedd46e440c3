"""The disk blocks' tag index: the C extractor agrees with the Python reference byte for byte,
the index holds every attribute a tag search can match, searches use it to skip batches and
blocks, a hash collision never gives a wrong answer, a damaged index stops the start, and a
block without one (written before it existed) is scanned as before."""

from __future__ import annotations

import asyncio
import re
import struct
import zlib
from array import array
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from tests.contract.traces import make_span, process, trace_id
from tracemesh.codecs.otlp_proto import batch_from_spans, value_from_pb
from tracemesh.model.attributes import value_to_text
from tracemesh.model.query import TraceQuery
from tracemesh.storage.api import StorageError
from tracemesh.storage.disk import tags
from tracemesh.storage.disk.block import BATCH_ROWS, TAGS_MAGIC
from tracemesh.storage.disk.config import DiskConfig
from tracemesh.storage.disk.factory import DiskStorage

accel = tags._accel
needs_accel = pytest.mark.skipif(accel is None, reason="C accelerators not built")

# ---- C against the reference ----------------------------------------------------------------

values = st.one_of(
    st.builds(lambda s: AnyValue(string_value=s), st.text(max_size=20)),
    st.builds(lambda b: AnyValue(bool_value=b), st.booleans()),
    st.builds(lambda i: AnyValue(int_value=i), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda f: AnyValue(double_value=f), st.floats()),
    st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=10)),
    st.just(AnyValue()),
)
key_values = st.lists(
    st.builds(lambda k, v: KeyValue(key=k, value=v), st.text(max_size=12), values), max_size=6
)


@st.composite
def spans(draw: st.DrawFn) -> bytes:
    span = PbSpan(name=draw(st.text(max_size=8)))
    span.attributes.extend(draw(key_values))
    for attributes in draw(st.lists(key_values, max_size=3)):
        span.events.add(name="e").attributes.extend(attributes)
    for attributes in draw(st.lists(key_values, max_size=2)):
        span.links.add(trace_id=b"t" * 16).attributes.extend(attributes)
    raw: bytes = span.SerializeToString()
    return raw


@needs_accel
@given(st.lists(st.one_of(spans(), st.binary(max_size=60)), max_size=12), st.integers(1, 5))
@settings(max_examples=300)
def test_c_and_reference_agree_on_any_bytes(raws: list[bytes], batch_rows: int) -> None:
    assert accel is not None
    assert accel.tag_hashes(raws, batch_rows) == tags.tag_hashes_reference(raws, batch_rows)


@needs_accel
@given(st.lists(st.binary(max_size=8), max_size=8), st.binary(max_size=40))
def test_c_and_reference_agree_on_mangled_spans(pieces: list[bytes], tail: bytes) -> None:
    """Real span bytes cut and spliced: lengths past the end, truncated varints, groups."""
    assert accel is not None
    span = PbSpan(name="x")
    span.attributes.add(key="user.id").value.string_value = "user-1"
    span.events.add(name="e").attributes.add(key="k").value.int_value = -5
    raw = span.SerializeToString()
    raws = [raw[: len(p)] + p + tail for p in pieces] + [raw + tail, tail + raw]
    assert accel.tag_hashes(raws, 2) == tags.tag_hashes_reference(raws, 2)


@needs_accel
@given(st.lists(st.lists(st.integers(0, 2**32 - 1), max_size=6), max_size=6))
def test_c_and_reference_sort_the_index_alike(batches: list[list[int]]) -> None:
    assert accel is not None
    hashes = array("I", [h for batch in batches for h in batch]).tobytes()
    offsets = array("I", [sum(map(len, batches[:i])) for i in range(len(batches) + 1)])
    expected = tags.sort_index_reference(hashes, offsets.tobytes())
    assert accel.sort_index(hashes, offsets.tobytes()) == expected
    with pytest.raises(ValueError):
        accel.sort_index(hashes + b"\0\0\0\0", offsets.tobytes())


def test_c_refuses_what_is_not_a_list_of_bytes() -> None:
    if accel is None:
        pytest.skip("C accelerators not built")
    with pytest.raises(TypeError):
        accel.tag_hashes(["text"], 2)
    with pytest.raises(ValueError):
        accel.tag_hashes([], 0)


@given(spans())
def test_every_attribute_a_search_can_match_is_in_the_index(raw: bytes) -> None:
    hashes, _, unindexed = tags.tag_hashes([raw], 1)
    assert unindexed == b"\x00"
    found = {int.from_bytes(hashes[i : i + 4], "little") for i in range(0, len(hashes), 4)}
    span = PbSpan.FromString(raw)
    pairs = list(span.attributes)
    pairs += [kv for event in span.events for kv in event.attributes]
    pairs += [kv for link in span.links for kv in link.attributes]
    for kv in pairs:
        key, text = kv.key.encode(), value_to_text(value_from_pb(kv.value)).encode()
        assert tags.pair_hash(key, text) in found or tags.key_hash(key) in found


# ---- the index in a store -------------------------------------------------------------------


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


SPANS = 4 * BATCH_ROWS  # one block of four record batches


async def _store(path: Path, rare: dict[int, str]) -> DiskStorage:
    """One block of single-span traces; span n has user.id=user-<n % 50>, or rare[n]."""
    storage = DiskStorage(DiskConfig(str(path), seal_spans=SPANS))
    await storage.start()
    svc = process("tags")
    batch = [
        make_span(n, 1, svc, start_ms=n, attributes={"user.id": rare.get(n, f"user-{n % 50}")})
        for n in range(1, SPANS + 1)
    ]
    await storage.writer().write(batch_from_spans(batch))
    await storage.settle()
    return storage


async def _find(path: Path, **query: Any) -> list[bytes]:
    storage = DiskStorage(DiskConfig(str(path), writable=False))
    await storage.start()
    try:
        found = await storage.reader().find_traces(TraceQuery(limit=20, **query))
        return sorted(spans[0].trace_id for spans in found)
    finally:
        await storage.close()


def test_a_tag_in_one_batch_only_is_found_and_only_that_batch_is_a_candidate(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        storage = await _store(tmp_path, {700: "needle"})
        (block,) = storage.state.blocks.values()
        assert block.tag_index is not None
        # the trace laid out in row 699 (traces sorted by start) is in batch 699 // 256 = 2
        assert block.tag_index.candidates([(b"user.id", b"needle")]) == {2}
        assert block.tag_index.candidates([(b"user.id", b"user-3")]) == {0, 1, 2, 3}
        await storage.close()
        assert await _find(tmp_path, tags={"user.id": "needle"}) == [trace_id(700)]
        assert await _find(tmp_path, service="tags", tags={"user.id": "needle"}) == [trace_id(700)]

    run(scenario())


def test_an_absent_tag_skips_the_block(tmp_path: Path) -> None:
    async def scenario() -> None:
        storage = await _store(tmp_path, {})
        (block,) = storage.state.blocks.values()
        assert block.tag_index is not None
        assert block.tag_index.candidates([(b"user.id", b"nobody")]) == set()
        assert block.tag_index.candidates([(b"nobody", b"user-1")]) == set()
        await storage.close()
        assert await _find(tmp_path, tags={"user.id": "nobody"}) == []

    run(scenario())


def test_a_hash_collision_costs_a_read_not_a_wrong_answer(tmp_path: Path) -> None:
    stored, wanted = "user-22836", "user-40045"  # found by a birthday search: same 32-bit hash
    assert tags.pair_hash(b"user.id", stored.encode()) == tags.pair_hash(
        b"user.id", wanted.encode()
    )

    async def scenario() -> None:
        storage = await _store(tmp_path, {300: stored})
        (block,) = storage.state.blocks.values()
        assert block.tag_index is not None
        assert block.tag_index.candidates([(b"user.id", wanted.encode())]) == {1}
        await storage.close()
        assert await _find(tmp_path, tags={"user.id": wanted}) == []
        assert await _find(tmp_path, tags={"user.id": stored}) == [trace_id(300)]

    run(scenario())


def test_values_the_index_does_not_spell_out_are_still_found(tmp_path: Path) -> None:
    """Doubles, bytes and event attributes: the key-only entry keeps their batches candidates."""

    async def scenario() -> None:
        storage = DiskStorage(DiskConfig(str(tmp_path), seal_spans=2))
        await storage.start()
        svc = process("tags")
        await storage.writer().write(
            batch_from_spans(
                [
                    make_span(1, 1, svc, attributes={"ratio": 2.5, "blob": b"\x01\x02"}),
                    make_span(2, 1, svc, attributes={"n": -7, "ok": True}),
                ]
            )
        )
        await storage.settle()
        await storage.close()
        assert await _find(tmp_path, tags={"ratio": "2.5"}) == [trace_id(1)]
        assert await _find(tmp_path, tags={"blob": "AQI="}) == [trace_id(1)]
        assert await _find(tmp_path, tags={"n": "-7", "ok": "true"}) == [trace_id(2)]
        assert await _find(tmp_path, tags={"ratio": "2.6"}) == []

    run(scenario())


def _index_of(path: Path) -> tuple[bytes, bytes]:
    """(the Arrow file's bytes, the tag index blob with its CRC) of a block file."""
    data = path.read_bytes()
    assert data.endswith(TAGS_MAGIC)
    (length,) = struct.unpack_from("<Q", data, len(data) - 16)
    start = len(data) - 16 - 4 - length
    return data[:start], data[start:-16]


@pytest.mark.parametrize("damage", ["flipped", "checksum", "sizes", "length"])
def test_a_damaged_tag_index_stops_the_start(tmp_path: Path, damage: str) -> None:
    async def scenario() -> None:
        storage = await _store(tmp_path, {})
        (block,) = storage.state.blocks.values()
        path = block.path
        await storage.close()
        arrow, stored = _index_of(path)
        blob, crc = bytearray(stored[:-4]), stored[-4:]
        if damage == "flipped":  # a bit flip the checksum catches
            blob[len(blob) // 2] ^= 0x10
        elif damage == "checksum":
            crc = bytes(4)
        elif damage == "sizes":  # consistent checksum, contents that do not fit the block
            plain = b"\x00" * 12
            blob = bytearray(
                struct.pack("<I", len(plain)) + tags._CODEC.compress(plain, asbytes=True)
            )
            crc = struct.pack("<I", zlib.crc32(blob))
        trailer = struct.pack("<Q", len(blob) if damage != "length" else 10**9) + TAGS_MAGIC
        path.write_bytes(arrow + bytes(blob) + crc + trailer)
        storage = DiskStorage(DiskConfig(str(tmp_path)))
        with pytest.raises(StorageError, match=re.escape(path.name) + ".*tag index"):
            await storage.start()
        await storage.close()

    run(scenario())


def test_a_block_without_a_tag_index_is_scanned(tmp_path: Path) -> None:
    async def scenario() -> None:
        storage = await _store(tmp_path, {10: "needle"})
        (block,) = storage.state.blocks.values()
        path = block.path
        await storage.close()
        arrow, _ = _index_of(path)
        path.write_bytes(arrow)  # as blocks were written before the tag index
        storage = DiskStorage(DiskConfig(str(tmp_path), writable=False))
        await storage.start()
        (block,) = storage.state.blocks.values()
        assert block.tag_index is None
        await storage.close()
        assert await _find(tmp_path, tags={"user.id": "needle"}) == [trace_id(10)]

    run(scenario())
