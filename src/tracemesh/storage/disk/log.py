"""The write-ahead log: segment files of checksummed records, one record per written batch.

A segment is `wal/<seq>.wal`: an 8-byte file header, then records `magic, length, crc32,
payload`. A payload is a batch: per resource group, the group's Resource and Scope as an OTLP
`ResourceSpans` message without spans, the span count, every span's length (u32), then the
spans' raw OTLP bytes back to back. Replaying a record gives back the very rows and origins that
were written.

A crash can leave the last record of a segment short or with a bad checksum (it was being
written; never acknowledged): readers stop there. A bad record followed by good ones is damage,
not a crash, and is reported instead of skipped.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.proto.trace.v1 import trace_pb2

from tracemesh.codecs.otlp_proto import attributes_to_pb, resource_from_pb, scope_from_pb
from tracemesh.model.batch import ResourceGroup, SpanBatch, SpanRow
from tracemesh.model.ids import ZERO_SPAN_ID
from tracemesh.model.span import Resource, Scope
from tracemesh.storage.api import StorageError
from tracemesh.storage.memory.store import origin_key

SEGMENT_HEADER = b"TMWAL\x00\x01\n"
RECORD = struct.Struct("<4sII")  # magic, payload length, crc32 of the payload
RECORD_MAGIC = b"TMR1"
_U32 = struct.Struct("<I")
assert array("I").itemsize == 4 and sys.byteorder == "little"  # the lengths' on-disk form
_PbSpan = trace_pb2.Span


class CorruptLog(StorageError):
    """A segment holds damaged records or is not a tracemesh log at all."""


def origin_bytes(resource: Resource, scope: Scope) -> bytes:
    """Resource and scope as an OTLP ResourceSpans with one empty ScopeSpans."""
    message = trace_pb2.ResourceSpans(schema_url=resource.schema_url)
    message.resource.SetInParent()
    attributes_to_pb(resource.attributes, message.resource.attributes)
    message.resource.dropped_attributes_count = resource.dropped_attributes_count
    scope_spans = message.scope_spans.add(schema_url=scope.schema_url)
    scope_spans.scope.SetInParent()
    scope_spans.scope.name = scope.name
    scope_spans.scope.version = scope.version
    attributes_to_pb(scope.attributes, scope_spans.scope.attributes)
    scope_spans.scope.dropped_attributes_count = scope.dropped_attributes_count
    return message.SerializeToString()


def origin_from_bytes(data: bytes) -> tuple[Resource, Scope]:
    message = trace_pb2.ResourceSpans.FromString(data)
    scope_spans = message.scope_spans[0]
    return (
        resource_from_pb(message.resource, message.schema_url),
        scope_from_pb(scope_spans.scope, scope_spans.schema_url),
    )


_encoded_origins: dict[object, bytes] = {}  # by value: a client's resource repeats per request


def _origin_cached(resource: Resource, scope: Scope) -> bytes:
    key = origin_key(resource, scope)
    data = _encoded_origins.get(key)
    if data is None:
        if len(_encoded_origins) >= 4096:
            _encoded_origins.clear()
        data = _encoded_origins[key] = origin_bytes(resource, scope)
    return data


def encode_batch(batch: SpanBatch) -> bytes:
    pack = _U32.pack
    parts: list[bytes] = []
    for group in batch.groups:
        if not group.rows:
            continue
        origin = _origin_cached(group.resource, group.scope)
        raws = [row.raw for row in group.rows]
        lengths = array("I", map(len, raws))
        parts += (pack(len(origin)), origin, pack(len(raws)), lengths.tobytes(), *raws)
    return b"".join(parts)


def decode_batch(payload: bytes) -> SpanBatch:
    """The rows of a record, their index fields read back from each span's bytes."""
    batch = SpanBatch()
    unpack = _U32.unpack_from
    position, end = 0, len(payload)
    while position < end:
        (size,) = unpack(payload, position)
        resource, scope = origin_from_bytes(payload[position + 4 : position + 4 + size])
        position += 4 + size
        (count,) = unpack(payload, position)
        position += 4
        lengths = array("I", payload[position : position + 4 * count])
        if len(lengths) != count:
            raise ValueError("span lengths cut short")
        position += 4 * count
        rows: list[SpanRow] = []
        for size in lengths:
            if position + size > end:
                raise ValueError("span bytes cut short")
            rows.append(row_from_raw(payload[position : position + size]))
            position += size
        batch.groups.append(ResourceGroup(resource, scope, rows))
    return batch


def row_from_raw(raw: bytes) -> SpanRow:
    span = _PbSpan.FromString(raw)
    parent = span.parent_span_id
    return SpanRow(
        span.trace_id,
        span.span_id,
        b"" if parent == ZERO_SPAN_ID else parent,
        span.name,
        span.kind,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        span.status.code,
        raw,
    )


def frame(payload: bytes) -> bytes:
    return RECORD.pack(RECORD_MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(slots=True)
class Scan:
    payloads: list[bytes]
    end: int  # offset after the last whole record: where the next read starts
    torn: bool  # the data after `end` is an incomplete or torn record


def scan(data: bytes, at_file_start: bool, name: str) -> Scan:
    """Whole records of `data`: a segment's bytes from its start or from a record boundary."""
    position = 0
    if at_file_start:
        if len(data) < len(SEGMENT_HEADER):
            if SEGMENT_HEADER.startswith(data):
                return Scan([], 0, bool(data))
            raise CorruptLog(f"{name} is not a tracemesh log segment (bad header)")
        if data[: len(SEGMENT_HEADER)] != SEGMENT_HEADER:
            raise CorruptLog(f"{name} is not a tracemesh log segment (bad header)")
        position = len(SEGMENT_HEADER)
    payloads: list[bytes] = []
    while position < len(data):
        if len(data) - position < RECORD.size:
            return Scan(payloads, position, True)
        magic, size, crc = RECORD.unpack_from(data, position)
        end = position + RECORD.size + size
        if magic != RECORD_MAGIC:
            if not data[position:].strip(b"\x00"):  # zeros a crash left past the end
                return Scan(payloads, position, True)
            raise CorruptLog(f"{name}: damaged record at byte {position} (bad magic)")
        if end > len(data):
            return Scan(payloads, position, True)
        payload = data[position + RECORD.size : end]
        if zlib.crc32(payload) != crc:
            if end == len(data):  # the last record, torn by a crash while it was written
                return Scan(payloads, position, True)
            raise CorruptLog(f"{name}: damaged record at byte {position} (checksum mismatch)")
        payloads.append(payload)
        position = end
    return Scan(payloads, position, False)


def batches(payloads: list[bytes], name: str) -> Iterator[SpanBatch]:
    for payload in payloads:
        try:
            yield decode_batch(payload)
        except Exception as exc:  # a checksummed record that does not parse: a foreign writer
            raise CorruptLog(f"{name}: a record does not decode ({exc})") from None
