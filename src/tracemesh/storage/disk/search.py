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
        if not any(plans[number] for number in live):
            traces = columns.trace if mask is None else pc.filter(columns.trace, mask)
            return _newest(pc.unique(traces), columns.trace_last)[:want]
        if candidates is not None and len(candidates) * 4 < index.batches:  # type: ignore[union-attr]
            rows = _candidate_rows(block.spans, sorted(candidates), mask)
        elif mask is not None:
            rows = pc.indices_nonzero(mask)
        else:
            rows = pa.array(range(block.spans))
        return _TagScan(block, plans, rows).traces(want)

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


def _candidate_rows(spans: int, batches: list[int], mask: pa.Array | None) -> pa.Array:
    """The rows of the candidate batches (that pass `mask`), ascending."""
    parts: list[pa.Array] = []
    for number in batches:
        first = number * BATCH_ROWS
        size = min(BATCH_ROWS, spans - first)
        if mask is None:
            parts.append(pa.array(range(first, first + size), pa.uint64()))
        else:
            found = pc.indices_nonzero(mask.slice(first, size))
            parts.append(pc.add(found, pa.scalar(first, pa.uint64())))
    return pa.concat_arrays(parts) if parts else pa.array([], pa.uint64())


def _newest(traces: pa.Array, trace_last: pa.Array) -> list[int]:
    order = pc.array_sort_indices(pc.take(trace_last, traces), order="descending")
    result: list[int] = pc.take(traces, order).to_pylist()
    return result


class _TagScan:
    """Rows left after the column filters, tested for the open tag tests trace by trace, newest
    trace first. A record batch is decompressed when a row in it is first tested; a batch whose
    bytes rule out a plain `key=value` every live origin needs is skipped whole, and rows whose
    open tests are all `error` ones are decided by their status where the batch holds no
    `error` bytes at all."""

    CACHED_BATCHES = 64

    def __init__(self, block: Block, plans: list[tuple[TagTest, ...] | None], rows: pa.Array):
        self.block = block
        self.plans = plans
        columns = block.search_columns()
        self.rows: list[int] = rows.to_pylist()
        self.origins: list[int] = pc.take(columns.origin, rows).to_pylist()
        self.kinds: list[int] = pc.take(columns.kind, rows).to_pylist()
        self.statuses: list[int] = pc.take(columns.status, rows).to_pylist()
        row_traces = pc.take(columns.trace, rows)
        self.order = _newest(pc.unique(row_traces), columns.trace_last)
        # rows ascend, so each trace's rows are one run of `self.rows`
        counts = pc.value_counts(row_traces)
        self.runs: dict[int, tuple[int, int]] = {}
        position = 0
        for trace, count in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        ):
            self.runs[trace] = (position, position + count)
            position += count
        self.prunable = _prunable(plans)
        self.errors_only = {
            number: bool(plan) and all(isinstance(t, ErrorTest) for t in plan)
            for number, plan in enumerate(plans)
            if plan is not None
        }
        self.cache: OrderedDict[int, list[bytes] | None] = OrderedDict()

    def traces(self, want: int) -> list[int]:
        found: list[int] = []
        for trace in self.order:
            first, end = self.runs[trace]
            if any(self._matches(at) for at in range(first, end)):
                found.append(trace)
                if len(found) == want:
                    break
        return found

    def _matches(self, at: int) -> bool:
        row = self.rows[at]
        plan = self.plans[self.origins[at]]
        assert plan is not None  # the mask kept live origins only
        if not plan:
            return True
        number = row // BATCH_ROWS
        kind, status = self.kinds[at], self.statuses[at]
        if self.errors_only[self.origins[at]] and not self.block.error_batches[number]:
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
