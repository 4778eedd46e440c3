"""Trace search in a block, with the memory store's semantics (one span meets every filter).

The columns kept in memory (origin, operation, kind, start, end, status) are filtered with Arrow
compute kernels, a whole block at once. Tags are settled per origin first (service, resource and
scope tags, exactly as `memory.search` plans them); tags left open are tested on the raw span
bytes of the remaining rows, a record batch at a time: a batch none of whose bytes could hold a
plain `key=value` is skipped without looking at its rows, and only rows passing the byte tests
are decoded (`tags_match`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from tracemesh.model.query import TraceQuery
from tracemesh.storage.disk.block import BATCH_ROWS, RAW, Block
from tracemesh.storage.memory.search import ErrorTest, TagTest, TraceFilter, tags_match


class BlockSearch:
    def __init__(self, query: TraceQuery) -> None:
        self.query = query
        self.filter = TraceFilter(query)  # also what searches the log heads

    def traces(self, block: Block, want: int) -> list[int]:
        """Ordinals of up to `want` of the block's traces with a matching span, latest span start
        first. Without open tag tests this is all vector work; with them, traces are tried newest
        first and the search stops at `want`."""
        q = self.query
        if want <= 0 or (q.service and q.service not in block.services):
            return []
        if q.start_min_ns is not None and block.max_start < q.start_min_ns:
            return []
        if q.start_max_ns is not None and block.min_start > q.start_max_ns:
            return []
        plans = [self.filter.plan(origin) for origin in block.origins]
        live = [number for number, plan in enumerate(plans) if plan is not None]
        if not live:
            return []
        op = -1
        if q.operation:
            op = block.name_ids.get(q.operation, -1)
            if op < 0:
                return []
        if not self._may_hold(block):
            return []
        candidates = None
        index = block.tag_index
        if index is not None:
            tests = _prunable(plans)
            if tests:
                candidates = index.candidates([(t.key_bytes, t.value.encode()) for t in tests])
                if not candidates:
                    return []  # no batch has the tag: the block is skipped
        columns = block.search_columns()
        mask = self._mask(block, live, op)
        if candidates is not None and len(candidates) < block.batches:
            in_batches = _batch_mask(block.spans, candidates)
            mask = in_batches if mask is None else pc.and_(mask, in_batches)
        if not any(plans[number] for number in live):
            traces = columns.trace if mask is None else pc.filter(columns.trace, mask)
            return _newest(pc.unique(traces), columns.trace_last)[:want]
        return _TagScan(block, plans, mask).traces(want)

    def _may_hold(self, block: Block) -> bool:
        """False when the block's (service, operation, kind) list or its duration range rules
        out every span, without touching its columns."""
        q = self.query
        kind = None if q.span_kind is None else int(q.span_kind)
        if (q.operation or kind is not None) and not any(
            (not q.service or s == q.service)
            and (not q.operation or n == q.operation)
            and (kind is None or k == kind)
            for s, n, k in block.operations
        ):
            return False
        low, high = block.durations
        if q.duration_min_ns is not None and high < q.duration_min_ns:
            return False
        return q.duration_max_ns is None or low <= q.duration_max_ns

    def _mask(self, block: Block, live: list[int], op: int) -> pa.Array | None:
        q = self.query
        columns = block.search_columns()
        tests: list[pa.Array] = []
        if len(live) < len(block.origins):
            tests.append(pc.is_in(columns.origin, value_set=pa.array(live, pa.int32())))
        if op >= 0:
            tests.append(pc.equal(columns.op, op))
        if q.span_kind is not None:
            tests.append(pc.equal(columns.kind, int(q.span_kind)))
        if q.start_min_ns is not None:
            tests.append(pc.greater_equal(columns.start, q.start_min_ns))
        if q.start_max_ns is not None:
            tests.append(pc.less_equal(columns.start, q.start_max_ns))
        if q.duration_min_ns is not None or q.duration_max_ns is not None:
            duration = pc.subtract(columns.end, columns.start)
            if q.duration_min_ns is not None:
                tests.append(pc.greater_equal(duration, q.duration_min_ns))
            if q.duration_max_ns is not None:
                tests.append(pc.less_equal(duration, q.duration_max_ns))
        if not tests:
            return None
        mask = tests[0]
        for test in tests[1:]:
            mask = pc.and_(mask, test)
        return mask


def _prunable(plans: list[tuple[TagTest, ...] | None]) -> list[TagTest]:
    """The plain `key=value` tests every live origin leaves open: a span must hold each."""
    open_plans = [set(plan) for plan in plans if plan]
    live = sum(1 for plan in plans if plan is not None)
    if not open_plans or len(open_plans) != live:
        return []
    return [t for t in set.intersection(*open_plans) if type(t) is TagTest]


def _batch_mask(spans: int, batches: set[int]) -> pa.Array:
    """True for the rows of the given record batches."""
    flags = bytes(number in batches for number in range(-(-spans // BATCH_ROWS)))
    rows = b"".join(b"\x01" * BATCH_ROWS if flag else b"\x00" * BATCH_ROWS for flag in flags)
    array = pa.Array.from_buffers(pa.uint8(), spans, [None, pa.py_buffer(rows[:spans])])
    return pc.cast(array, pa.bool_())


def _view(array: pa.Array, code: Literal["b", "B", "i"]) -> memoryview[int]:
    """The values of a primitive Arrow array without nulls, zero-copy, indexable by row."""
    buffer = array.buffers()[1]
    data: memoryview[int] = memoryview(b"" if buffer is None else buffer).cast(code)
    return data[array.offset : array.offset + len(array)]


def _newest(traces: pa.Array, trace_last: pa.Array) -> list[int]:
    order = pc.array_sort_indices(pc.take(trace_last, traces), order="descending")
    result: list[int] = pc.take(traces, order).to_pylist()
    return result


class _TagScan:
    """Traces whose rows pass the column mask, tested for the open tag tests one trace at a time,
    newest trace first, until enough match: only the traces tried cost Python work. A record
    batch is decompressed when a row in it is first tested; a batch whose bytes rule out a plain
    `key=value` every live origin needs is skipped whole, and rows whose open tests are all
    `error` ones are decided by their status where the batch holds no `error=true` at all."""

    CACHED_BATCHES = 64

    def __init__(
        self, block: Block, plans: list[tuple[TagTest, ...] | None], mask: pa.Array | None
    ):
        self.block = block
        self.plans = plans
        columns = block.search_columns()
        traces = columns.trace if mask is None else pc.filter(columns.trace, mask)
        self.order = _newest(pc.unique(traces), columns.trace_last)
        self.mask = None if mask is None else _view(pc.cast(mask, pa.uint8()), "B")
        self.origins = _view(columns.origin, "i")
        self.kinds = _view(columns.kind, "b")
        self.statuses = _view(columns.status, "b")
        self.prunable = _prunable(plans)
        self.errors_only = {
            number: bool(plan) and all(isinstance(t, ErrorTest) for t in plan)
            for number, plan in enumerate(plans)
            if plan is not None
        }
        self.cache: OrderedDict[int, list[bytes] | None] = OrderedDict()

    def traces(self, want: int) -> list[int]:
        found: list[int] = []
        trace_rows, mask = self.block.trace_rows, self.mask
        for trace in self.order:
            rows = range(trace_rows[trace], trace_rows[trace + 1])
            if any((mask is None or mask[row]) and self._matches(row) for row in rows):
                found.append(trace)
                if len(found) == want:
                    break
        return found

    def _matches(self, row: int) -> bool:
        origin = self.origins[row]
        plan = self.plans[origin]
        if plan is None:  # without a mask, rows of origins that cannot match come by
            return False
        if not plan:
            return True
        number = row // BATCH_ROWS
        kind, status = self.kinds[row], self.statuses[row]
        if self.errors_only[origin] and not self.block.error_batches[number]:
            return tags_match(plan, b"", kind, status)  # no `error` bytes: status decides
        raws = self._batch(number)
        if raws is None:
            return False
        return tags_match(plan, raws[row - number * BATCH_ROWS], kind, status)

    def _batch(self, number: int) -> list[bytes] | None:
        """The batch's raw span bytes, or None when its bytes rule out every row."""
        if number in self.cache:
            self.cache.move_to_end(number)
            return self.cache[number]
        column = self.block.batch_column(number, RAW)
        raws: list[bytes] | None = column.to_pylist()
        if self.prunable:
            data = column.buffers()[2]
            everything = data.to_pybytes() if data is not None else b""
            if any(test.on_span(everything, -1, -1) is False for test in self.prunable):
                raws = None
        self.cache[number] = raws
        if len(self.cache) > self.CACHED_BATCHES:
            self.cache.popitem(last=False)
        return raws
