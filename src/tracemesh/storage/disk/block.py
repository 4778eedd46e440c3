"""Immutable blocks: one sealed log segment's spans, grouped by trace, as a zstd-compressed Arrow
IPC file.

Traces are laid out in order of their earliest span start (a trace's spans stay together, in
arrival order), so that a search going newest first reads the last record batches first.
Columns: trace id, span id, parent id, origin (block-local number), operation (block-local
number), kind, start, end, status and the raw OTLP span bytes, in record batches of
`BATCH_ROWS` rows so that reading one trace decompresses a few batches only. The file's schema
metadata holds everything else a reader needs without scanning rows: the origins (as OTLP
ResourceSpans), the operation names, the (service, operation, kind) list, and a trace index —
the trace ids in layout order with each trace's first row and its earliest and latest span
start, and the trace ordinals sorted by id for lookups.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from tracemesh.model.timerange import MAX_NS
from tracemesh.storage.api import StorageError
from tracemesh.storage.disk import tags
from tracemesh.storage.disk.links import BlockLinks
from tracemesh.storage.disk.log import origin_bytes, origin_from_bytes
from tracemesh.storage.memory.store import MemoryStore, Origin, StoredSpan

FORMAT = b"tracemesh.block.1"
BATCH_ROWS = 256  # reading a 10-span trace decompresses ~100 KB; 1,024 rows cost 4x that
TRACE_ID, SPAN_ID, PARENT, ORIGIN, OP, KIND, START, END, STATUS, RAW = range(10)
SEARCH_FIELDS = [ORIGIN, OP, KIND, START, END, STATUS]
SCHEMA = pa.schema(
    [
        ("trace_id", pa.binary(16)),
        ("span_id", pa.binary()),
        ("parent", pa.binary()),
        ("origin", pa.int32()),
        ("op", pa.int32()),
        ("kind", pa.int8()),
        ("start", pa.int64()),
        ("end", pa.int64()),
        ("status", pa.int8()),
        ("raw", pa.binary()),
    ]
)
_U32 = struct.Struct("<I")
# A block file is an Arrow IPC file followed by the tag index: blob, CRC-32 (u32), the blob's
# length (u64) and TAGS_MAGIC. Not in the Arrow metadata: every reader opened on a block (one per
# set of columns) would parse and copy it again. A file without the magic at its end is a block
# written before the tag index (all Arrow).
TAGS_MAGIC = b"TMTAGS01"
_TRAILER = struct.Struct("<Q8s")


class CorruptBlock(StorageError):
    """A block file is damaged or not a tracemesh block."""


def _fits(span: StoredSpan) -> bool:
    """Whether a span's times fit the int64 columns (see `model.timerange`)."""
    return 0 <= span[1] <= MAX_NS and 0 <= span[2] <= MAX_NS


def storable_traces(
    store: MemoryStore,
) -> tuple[list[tuple[int, int, bytes, list[StoredSpan]]], int]:
    """(earliest start, latest start, trace id, spans) of every trace, leaving out spans no
    column can hold, and how many were left out. The ingest boundary refuses such spans
    already; a log segment written before it existed may still hold one, and one span must
    never keep a block from being written (its segment would then stay in memory forever)."""
    out: list[tuple[int, int, bytes, list[StoredSpan]]] = []
    dropped = 0
    for entry in store.traces.values():
        spans = entry.spans
        first, last = entry.min_start, entry.max_start
        if not (_fits(spans[0]) and all(map(_fits, spans))):
            kept = [span for span in spans if _fits(span)]
            dropped += len(spans) - len(kept)
            if not kept:
                continue
            spans = kept
            first, last = min(s[1] for s in kept), max(s[1] for s in kept)
        out.append((first, last, entry.trace_id, spans))
    return out, dropped


def write_block(store: MemoryStore, path: Path) -> int:
    """Write a sealed head's spans to `path` durably: a temporary file, fsync, rename, fsync of
    the directory. Runs in a worker thread; the store no longer changes. Returns how many spans
    were left out because no column can hold their times (see `storable_traces`)."""
    spans: list[StoredSpan] = []
    span_trace_ids: list[bytes] = []
    traces, dropped = storable_traces(store)
    traces.sort(key=lambda item: (item[0], item[2]))
    trace_ids = [trace_id for _, _, trace_id, _ in traces]
    id_order = array("i", sorted(range(len(trace_ids)), key=trace_ids.__getitem__))
    trace_rows, trace_first, trace_last = array("q"), array("q"), array("q")
    for first, last, trace_id, group in traces:
        trace_rows.append(len(spans))
        trace_first.append(first)
        trace_last.append(last)
        spans += group
        span_trace_ids += [trace_id] * len(group)
    trace_rows.append(len(spans))
    # Columns by transposing the stored tuples; origins and names renumbered for this block.
    raws, starts, ends, names, kinds, statuses, numbers, span_ids, parents = (
        zip(*spans, strict=True) if spans else ((),) * 9
    )
    local_origin = {number: i for i, number in enumerate(sorted(set(numbers)))}
    local_name = {name: i for i, name in enumerate(sorted(set(names)))}
    origins = []
    for number in local_origin:
        origin = store.origins[number]
        assert origin is not None
        origins.append(origin_bytes(origin.resource, origin.scope))
    operations = {
        (service, name, kind) for service, pairs in store.operations.items() for name, kind in pairs
    }
    columns = (
        span_trace_ids,
        span_ids,
        parents,
        list(map(local_origin.__getitem__, numbers)),
        list(map(local_name.__getitem__, names)),
        kinds,
        starts,
        ends,
        statuses,
        raws,
    )
    tag_index, tag_index_crc = tags.encode(raws, BATCH_ROWS)
    # Per record batch: may a span of it have an `error=true` attribute? Where not, `error=true`
    # is decided by the status column alone, without decompressing the batch.
    batches = -(-len(raws) // BATCH_ROWS)
    flagged = tags.TagIndex(tag_index, tag_index_crc, batches).candidates([(b"error", b"true")])
    error_batches = bytes(number in flagged for number in range(batches))
    metadata = {
        b"format": FORMAT,
        b"error_batches": error_batches,
        b"origins": b"".join(_U32.pack(len(o)) + o for o in origins),
        b"names": orjson.dumps(list(local_name)),
        b"operations": orjson.dumps(sorted(operations)),
        b"range": orjson.dumps([min(starts, default=0), max(starts, default=0), len(spans)]),
    }
    # The large parts go in the file's footer only: the schema's metadata is written twice
    # (at the start and in the footer). Blocks written before kept them in the schema.
    footer = {
        b"trace_ids": b"".join(trace_ids),
        b"id_order": id_order.tobytes(),
        b"trace_rows": trace_rows.tobytes(),
        b"trace_first": trace_first.tobytes(),
        b"trace_last": trace_last.tobytes(),
    }
    arrays = [pa.array(column, type=f.type) for column, f in zip(columns, SCHEMA, strict=True)]
    durations = pc.min_max(pc.subtract(arrays[END], arrays[START]))
    metadata[b"durations"] = orjson.dumps([durations["min"].as_py(), durations["max"].as_py()])
    schema = SCHEMA.with_metadata(metadata)
    table = pa.Table.from_arrays(arrays, schema=schema)
    tmp = path.with_suffix(".tmp")
    options = ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=3))
    with (
        pa.OSFile(str(tmp), "wb") as sink,
        ipc.new_file(sink, schema, options=options, metadata=footer) as out,
    ):
        for batch in table.to_batches(max_chunksize=BATCH_ROWS):
            out.write_batch(batch)
    with open(tmp, "ab") as file:  # the tag index after the Arrow file: see `_TRAILER`
        file.write(tag_index + tag_index_crc + _TRAILER.pack(len(tag_index), TAGS_MAGIC))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_directory(path.parent)
    return dropped


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class SearchColumns:
    trace: pa.Array  # each row's trace ordinal (a trace's rows are together)
    trace_last: pa.Array  # per trace: its latest span start in this block
    origin: pa.Array
    op: pa.Array
    kind: pa.Array
    start: pa.Array
    end: pa.Array
    status: pa.Array


class Block:
    """An open block: its metadata and trace index in memory, rows read on demand."""

    def __init__(self, path: Path, seq: int) -> None:
        self.path = path
        self.seq = seq
        self.size = path.stat().st_size
        try:
            self._source = pa.memory_map(str(path))
            tag_blob, self._arrow = _split_trailer(self._source.read_buffer(), path)
            self._all = ipc.open_file(self._arrow)
            meta = {**(self._all.schema.metadata or {}), **(self._all.metadata or {})}
        except (pa.ArrowInvalid, OSError) as exc:
            raise CorruptBlock(f"{path} is not a readable tracemesh block: {exc}") from None
        if meta.get(b"format") != FORMAT or self._all.schema.remove_metadata() != SCHEMA:
            raise CorruptBlock(f"{path} is not a tracemesh block (format {meta.get(b'format')!r})")
        try:
            self.min_start, self.max_start, self.spans = orjson.loads(meta[b"range"])
            self.names: list[str] = orjson.loads(meta[b"names"])
            self.operations = {(s, n, k) for s, n, k in orjson.loads(meta[b"operations"])}
            self.origins = [_origin(data, i) for i, data in enumerate(_split(meta))]
            self._trace_ids = meta[b"trace_ids"]
            self._id_order = array("i", meta[b"id_order"])
            self.trace_rows = array("q", meta[b"trace_rows"])
            self.trace_first = array("q", meta[b"trace_first"])
            self.trace_last = array("q", meta[b"trace_last"])
            self.error_batches = meta[b"error_batches"]
            # the shortest and longest span (blocks written before this: anything)
            low, high = orjson.loads(meta.get(b"durations", b"[null, null]"))
            self.durations = (
                -(2**63) if low is None else int(low),
                2**63 - 1 if high is None else int(high),
            )
        except (KeyError, ValueError, IndexError, struct.error) as exc:
            raise CorruptBlock(f"{path}: damaged block metadata ({exc!r})") from None
        self.traces = len(self.trace_first)
        self.batches = len(self.error_batches)
        if (
            len(self._trace_ids) != 16 * self.traces
            or len(self._id_order) != self.traces
            or (self.traces and not 0 <= min(self._id_order) <= max(self._id_order) < self.traces)
            or len(self.trace_rows) != self.traces + 1
            or self.trace_rows[-1] != self.spans
            or len(self.error_batches) != -(-self.spans // BATCH_ROWS)
        ):
            raise CorruptBlock(f"{path}: trace index does not match its rows")
        # Blocks written before the tag index have none: their tag searches scan, as before.
        self.tag_index: tags.TagIndex | None = None
        if tag_blob is not None:
            try:
                self.tag_index = tags.TagIndex(tag_blob[:-4], tag_blob[-4:], self.batches)
            except tags.CorruptIndex as exc:
                raise CorruptBlock(f"{path}: damaged tag index ({exc})") from None
        self.services = {origin.service for origin in self.origins}
        self.name_ids = {name: i for i, name in enumerate(self.names)}
        self._search: SearchColumns | None = None
        self._readers: dict[tuple[int, ...], ipc.RecordBatchFileReader] = {}
        self._links: BlockLinks | None = None

    def trace_id(self, ordinal: int) -> bytes:
        ids: bytes = self._trace_ids
        return ids[16 * ordinal : 16 * ordinal + 16]

    def find(self, trace_id: bytes) -> int:
        """The trace's ordinal in this block, or -1."""
        ids: bytes = self._trace_ids
        order: array[int] = self._id_order
        low, high = 0, self.traces
        while low < high:
            mid = (low + high) // 2
            at = 16 * order[mid]
            if ids[at : at + 16] < trace_id:
                low = mid + 1
            else:
                high = mid
        if low < self.traces and self.trace_id(order[low]) == trace_id:
            return order[low]
        return -1

    def trace_of_row(self, row: int) -> int:
        return bisect_right(self.trace_rows, row) - 1

    def search_columns(self) -> SearchColumns:
        """The columns search filters on, decompressed once and kept (26 bytes a span)."""
        if self._search is None:
            table = self._reader(tuple(SEARCH_FIELDS)).read_all()
            trace = pa.array([], pa.int32())
            if self.traces:
                ends = pa.array(self.trace_rows[1:], pa.int32())
                runs = pa.RunEndEncodedArray.from_arrays(ends, pa.array(range(self.traces)))
                trace = pc.run_end_decode(runs).cast(pa.int32())
            self._search = SearchColumns(
                trace,
                pa.array(self.trace_last, pa.int64()),
                *(table.column(i).combine_chunks() for i in range(6)),
            )
        return self._search

    def warm(self) -> None:
        """Load what searches use (search columns, the sorted tag index) ahead of them."""
        self.search_columns()
        if self.tag_index is not None and self.batches <= 65536:
            self.tag_index.sorted()

    @property
    def links_ready(self) -> bool:
        """Whether `links()` answers at once (computing them takes ~0.5 s a block)."""
        return self._links is not None

    def links(self) -> BlockLinks:
        """The block's dependency links, computed on first use and kept."""
        if self._links is None:
            self._links = BlockLinks(self)
        return self._links

    def rows(self, first: int, end: int, fields: tuple[int, ...]) -> list[list[Any]]:
        """Rows [first, end) of the given fields, as one Python list per field."""
        out: list[list[Any]] = [[] for _ in fields]
        reader = self._reader(fields)
        for number in range(first // BATCH_ROWS, (end - 1) // BATCH_ROWS + 1):
            base = number * BATCH_ROWS
            batch = reader.get_batch(number)
            low, high = max(first - base, 0), min(end - base, batch.num_rows)
            for column, values in zip(out, batch.columns, strict=True):
                column.extend(values.slice(low, high - low).to_pylist())
        return out

    def batch_column(self, number: int, field: int) -> pa.Array:
        return self._reader((field,)).get_batch(number).column(0)

    def _reader(self, fields: tuple[int, ...]) -> ipc.RecordBatchFileReader:
        reader = self._readers.get(fields)
        if reader is None:
            options = ipc.IpcReadOptions(included_fields=list(fields), use_threads=False)
            try:
                reader = self._readers[fields] = ipc.open_file(self._arrow, options=options)
            except (pa.ArrowInvalid, OSError) as exc:
                raise CorruptBlock(f"{self.path}: {exc}") from None
        return reader


def _split_trailer(data: pa.Buffer, path: Path) -> tuple[bytes | None, pa.Buffer]:
    """(tag index blob with its CRC, or None for an older block; the Arrow file's bytes)."""
    size = data.size
    if size < _TRAILER.size or data.slice(size - 8).to_pybytes() != TAGS_MAGIC:
        return None, data
    (length, _) = _TRAILER.unpack(data.slice(size - _TRAILER.size).to_pybytes())
    start = size - _TRAILER.size - 4 - length
    if start < 0:
        raise CorruptBlock(f"{path}: damaged tag index (longer than the file)")
    blob = data.slice(start, length + 4).to_pybytes()
    return blob, data.slice(0, start)


def _split(meta: dict[bytes, bytes]) -> list[bytes]:
    data, position, out = meta[b"origins"], 0, []
    while position < len(data):
        (size,) = _U32.unpack_from(data, position)
        out.append(data[position + 4 : position + 4 + size])
        position += 4 + size
    return out


def _origin(data: bytes, index: int) -> Origin:
    resource, scope = origin_from_bytes(data)
    return Origin(resource, scope, resource.service_name, set(), None, index)
