"""The tag index of a block: which record batches may hold a span with a given `key=value`.

Per record batch, the distinct 32-bit hashes of every `key=value` among its spans'
attributes, event attributes and link attributes, the value in its search text form (strings
as they are, bools `true`/`false`, ints in decimal: `value_to_text`). Values whose text form the
index does not compute (doubles, bytes, arrays, kvlists, unset) add the hash of the key alone:
"this key, any value". A batch with a span whose bytes cannot be read is marked unindexed and
is always a candidate. Resource and scope tags are settled per origin by the search plan and
are not in the index. A hash match is only a candidate: the existing byte and decoded tests
still confirm every span, so collisions cost a read, never a wrong answer.

On disk (schema metadata of the block, key `tag_index`): a zstd-compressed blob of
`batches+1` u32 offsets, one unindexed byte per batch, then the hashes (u32), all little-endian;
its CRC-32 is `tag_index_crc`. (Sorting the hashes to store deltas saved 15% of the index's
bytes for 11% more C time; not worth it.)

`tag_hashes` is the reference; `tracemesh.accel._span_tags` computes the same bytes in C.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import pyarrow as pa

from tracemesh import accel

SEED_PAIR = 0x243F6A8885A308D3
SEED_KEY = 0x13198A2E03707344
_K_LEN = 0x9E3779B97F4A7C15
_K_WORD = 0xFF51AFD7ED558CCD
_K_FINAL = 0xC4CEB9FE1A85EC53
_MASK = 2**64 - 1
_CODEC = pa.Codec("zstd", compression_level=1)

_accel = accel.load("_span_tags")


class Unreadable(Exception):
    """The span's bytes are not a readable protobuf message."""


def _mix(h: int, data: bytes) -> int:
    h ^= (len(data) * _K_LEN) & _MASK
    for at in range(0, len(data), 8):
        h = ((h ^ int.from_bytes(data[at : at + 8], "little")) * _K_WORD) & _MASK
        h ^= h >> 32
    return h


def _finish(h: int) -> int:
    h ^= h >> 33
    h = (h * _K_FINAL) & _MASK
    h ^= h >> 33
    return h >> 32


def pair_hash(key: bytes, text: bytes) -> int:
    return _finish(_mix(_mix(SEED_PAIR, key), text))


def key_hash(key: bytes) -> int:
    return _finish(_mix(SEED_KEY, key))


# ---- the reference extraction ------------------------------------------------------------------


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 64, 7):
        if at >= len(data):
            raise Unreadable
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & _MASK, at
    raise Unreadable


def _fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field, wire type, payload) of each field: bytes for LEN, an int otherwise."""
    out: list[tuple[int, int, bytes | int]] = []
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        field, wire = tag >> 3, tag & 7
        payload: bytes | int
        if wire == 0:
            payload, at = _varint(data, at)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if len(data) - at < size:
                raise Unreadable
            payload, at = int.from_bytes(data[at : at + size], "little"), at + size
        elif wire == 2:
            size, at = _varint(data, at)
            if size > len(data) - at:
                raise Unreadable
            payload, at = data[at : at + size], at + size
        else:
            raise Unreadable
        out.append((field, wire, payload))
    return out


def _key_value(data: bytes) -> int:
    key, value, values = b"", b"", 0
    for field, wire, payload in _fields(data):
        if field in (1, 2):
            if wire != 2:
                raise Unreadable
            assert isinstance(payload, bytes)
            if field == 1:
                key = payload
            else:
                value, values = payload, values + 1
    text: bytes | None = None
    if values == 1:
        kind, number, string = 0, 0, b""
        for field, wire, payload in _fields(value):
            if field == 1 and wire == 2:
                assert isinstance(payload, bytes)
                kind, string = 1, payload
            elif field in (2, 3) and wire == 0:
                assert isinstance(payload, int)
                kind, number = field, payload
            elif 1 <= field <= 7:
                kind = 9
        if kind == 1:
            text = string
        elif kind == 2:
            text = b"true" if number else b"false"
        elif kind == 3:
            text = str(number - 2**64 if number >= 2**63 else number).encode()
    return key_hash(key) if text is None else pair_hash(key, text)


def _span(data: bytes) -> list[int]:
    out: list[int] = []
    for field, wire, payload in _fields(data):
        if field in (9, 11, 13):
            if wire != 2:
                raise Unreadable
            assert isinstance(payload, bytes)
            if field == 9:
                out.append(_key_value(payload))
                continue
            inner = 3 if field == 11 else 4
            for sub, sub_wire, kv in _fields(payload):
                if sub == inner:
                    if sub_wire != 2:
                        raise Unreadable
                    assert isinstance(kv, bytes)
                    out.append(_key_value(kv))
    return out


def tag_hashes_reference(raws: Sequence[bytes], batch_rows: int) -> tuple[bytes, bytes, bytes]:
    """(hashes, offsets, unindexed) as `_span_tags.tag_hashes` returns them."""
    hashes, offsets, unindexed = array("I"), array("I"), bytearray()
    for first in range(0, len(raws), batch_rows):
        offsets.append(len(hashes))
        found: dict[int, None] = {}  # distinct, in order of first appearance
        bad = 0
        for raw in raws[first : first + batch_rows]:
            try:
                found.update(dict.fromkeys(_span(raw)))
            except Unreadable:
                bad = 1
        hashes.extend(found)
        unindexed.append(bad)
    offsets.append(len(hashes))
    return _le(hashes), _le(offsets), bytes(unindexed)


def _le(values: array[int]) -> bytes:
    if struct.pack("=I", 1) != struct.pack("<I", 1):
        values = array("I", values)
        values.byteswap()
    return values.tobytes()


def tag_hashes(raws: Sequence[bytes], batch_rows: int) -> tuple[bytes, bytes, bytes]:
    if _accel is not None:
        result: tuple[bytes, bytes, bytes] = _accel.tag_hashes(raws, batch_rows)
        return result
    return tag_hashes_reference(raws, batch_rows)


# ---- stored form -------------------------------------------------------------------------------


def encode(raws: Sequence[bytes], batch_rows: int) -> tuple[bytes, bytes]:
    """The block metadata values (`tag_index`, `tag_index_crc`)."""
    hashes, offsets, unindexed = tag_hashes(raws, batch_rows)
    plain = offsets + unindexed + hashes
    blob = struct.pack("<I", len(plain)) + _CODEC.compress(plain, asbytes=True)
    return blob, struct.pack("<I", zlib.crc32(blob))


class CorruptIndex(ValueError):
    pass


class TagIndex:
    """A block's tag index, decoded: candidate batches for a set of `key=value` tests."""

    def __init__(self, blob: bytes, crc: bytes, batches: int) -> None:
        if len(crc) != 4 or struct.unpack("<I", crc)[0] != zlib.crc32(blob) or len(blob) < 4:
            raise CorruptIndex("tag index checksum mismatch")
        (size,) = struct.unpack_from("<I", blob)
        try:
            plain = _CODEC.decompress(blob[4:], decompressed_size=size, asbytes=True)
        except (pa.ArrowException, OSError) as exc:
            raise CorruptIndex(f"tag index does not decompress ({exc})") from None
        head = 4 * (batches + 1) + batches
        if len(plain) < head or (len(plain) - head) % 4:
            raise CorruptIndex("tag index has the wrong size for its batches")
        self.offsets = array("I", plain[: 4 * (batches + 1)])
        self.unindexed = plain[4 * (batches + 1) : head]
        count = (len(plain) - head) // 4
        offsets = self.offsets
        if (
            offsets[0] != 0
            or offsets[-1] != count
            or any(offsets[i] > offsets[i + 1] for i in range(batches))
        ):
            raise CorruptIndex("tag index offsets do not match its hashes")
        self._hashes = plain[head:]  # per batch, until sorted
        self.batches = batches
        self.any_unindexed = any(self.unindexed)
        self._sorted: tuple[memoryview[int], memoryview[int]] | None = None

    def sorted(self) -> tuple[memoryview[int], memoryview[int]]:
        """The (hash, batch) pairs sorted by hash, then batch, as two parallel views (u32, u16);
        made on first use (~20 ms a block in C; the background preload does it)."""
        if self._sorted is None:
            hashes, numbers = sort_index(self._hashes, self.offsets.tobytes())
            self._sorted = memoryview(hashes).cast("I"), memoryview(numbers).cast("H")
            self._hashes = b""
        return self._sorted

    def candidates(self, tests: Sequence[tuple[bytes, bytes]]) -> set[int]:
        """Batches that may hold a span with every one of `(key, text)` (each possibly in a
        different span: the index is per batch)."""
        if self.batches > 65536:  # batch numbers are sorted as u16: too many to index
            return set(range(self.batches))
        hashes, numbers = self.sorted()
        result: set[int] | None = None
        for key, text in tests:
            batches: set[int] = set()
            for target in (pair_hash(key, text), key_hash(key)):
                low, high = bisect_left(hashes, target), bisect_right(hashes, target)
                batches.update(numbers[low:high])
            result = batches if result is None else result & batches
        unindexed = (
            {b for b, flag in enumerate(self.unindexed) if flag} if self.any_unindexed else set()
        )
        return (result if result is not None else set(range(self.batches))) | unindexed


def sort_index_reference(hashes: bytes, offsets: bytes) -> tuple[bytes, bytes]:
    """(sorted hashes, their batches) as `_span_tags.sort_index` returns them."""
    values, bounds = array("I", hashes), array("I", offsets)
    if not bounds or len(bounds) - 1 > 65536 or bounds[-1] != len(values):
        raise ValueError("offsets do not fit the hashes")
    pairs = []
    for batch in range(len(bounds) - 1):
        if bounds[batch] > bounds[batch + 1] or bounds[batch + 1] > len(values):
            raise ValueError("offsets do not fit the hashes")
        pairs += [(values[i], batch) for i in range(bounds[batch], bounds[batch + 1])]
    pairs.sort()
    return array("I", [h for h, _ in pairs]).tobytes(), array("H", [b for _, b in pairs]).tobytes()


def sort_index(hashes: bytes, offsets: bytes) -> tuple[bytes, bytes]:
    if _accel is not None:
        result: tuple[bytes, bytes] = _accel.sort_index(hashes, offsets)
        return result
    return sort_index_reference(hashes, offsets)
