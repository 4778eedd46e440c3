"""Trace search in a block, with the memory store's semantics (one span meets every filter).

The columns kept in memory (origin, operation, kind, start, end, status) are filtered with Arrow
compute kernels, a whole block at once. Tags are settled per origin first (service, resource and
scope tags, exactly as `memory.search` plans them); tags left open are tested on the raw span
bytes of the remaining rows, a record batch at a time: a batch none of whose bytes could hold a
plain `key=value` is skipped without looking at its rows, and only rows passing the byte tests
are decoded (`tags_match`).
"""

from __future__ import annotations

from itertools import groupby

import pyarrow as pa
import pyarrow.compute as pc

from tracemesh.model.query import TraceQuery
from tracemesh.storage.disk.block import BATCH_ROWS, RAW, Block
from tracemesh.storage.memory.search import TagTest, TraceFilter, tags_match


class BlockSearch:
    def __init__(self, query: TraceQuery) -> None:
        self.query = query
        self.filter = TraceFilter(query)  # also what searches the log heads

    def traces(self, block: Block) -> list[int]:
        """Ordinals of the block's traces with a matching span, latest span start first."""
        q = self.query
        if q.service and q.service not in block.services:
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
        mask = self._mask(block, live, op)
        if mask is None:
            rows: list[int] = list(range(block.spans))
        else:
            rows = pc.indices_nonzero(mask).to_pylist()
        if not rows:
            return []
        if any(plans[number] for number in live):
            rows = self._tags(block, rows, plans)
        traces = {block.trace_of_row(row) for row in rows}
        return sorted(traces, key=block.trace_last.__getitem__, reverse=True)

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

    def _tags(
        self, block: Block, rows: list[int], plans: list[tuple[TagTest, ...] | None]
    ) -> list[int]:
        columns = block.search_columns()
        indices = pa.array(rows, pa.int64())
        origins = pc.take(columns.origin, indices).to_pylist()
        kinds = pc.take(columns.kind, indices).to_pylist()
        statuses = pc.take(columns.status, indices).to_pylist()
        # Plain key=value tests that every live origin leaves open can rule out a whole batch.
        open_plans = [set(plan) for plan in plans if plan]
        common = set.intersection(*open_plans) if open_plans else set()
        prunable = [test for test in common if type(test) is TagTest]
        matched: list[int] = []
        last_trace = -1
        position = 0
        for number, group in groupby(rows, key=lambda row: row // BATCH_ROWS):
            batch_rows = list(group)
            at = position
            position += len(batch_rows)
            raw_column = block.batch_column(number, RAW)
            if prunable and len(open_plans) == sum(1 for plan in plans if plan is not None):
                data = raw_column.buffers()[2]
                everything = data.to_pybytes() if data is not None else b""
                if any(test.on_span(everything, -1, -1) is False for test in prunable):
                    continue
            base = number * BATCH_ROWS
            for offset, row in enumerate(batch_rows):
                trace = block.trace_of_row(row)
                if trace == last_trace:
                    continue  # this trace already matched
                plan = plans[origins[at + offset]]
                assert plan is not None  # the mask kept live origins only
                raw = raw_column[row - base].as_py()
                if not plan or tags_match(plan, raw, kinds[at + offset], statuses[at + offset]):
                    matched.append(row)
                    last_trace = trace
        return matched
