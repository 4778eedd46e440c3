"""Per-block dependency links, computed once per block by the reading process (in the background
after opening it, or on the first dependencies query) instead of on every query.

For every span whose parent is in the same trace *in the same block*: its start and the
(parent service, service) pair, sorted by start, so a time window is two binary searches and a
count. Spans whose parent is not in the block (a trace spread over blocks or log heads) are kept
apart, with their trace and parent id, and resolved at query time across all blocks and heads.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from tracemesh.storage.disk.block import Block

Unresolved = tuple[int, bytes, bytes, str]  # (start, trace id, parent id, service)


class BlockLinks:
    def __init__(self, block: Block) -> None:
        from tracemesh.storage.disk.block import ORIGIN, PARENT, SPAN_ID, START

        span_ids, parents, origins, starts = block.rows(
            0, block.spans, (SPAN_ID, PARENT, ORIGIN, START)
        )
        services = [origin.service for origin in block.origins]
        codes: dict[tuple[str, str], int] = {}
        found: list[tuple[int, int]] = []
        unresolved: list[Unresolved] = []
        rows = block.trace_rows
        for ordinal in range(block.traces):
            first, end = rows[ordinal], rows[ordinal + 1]
            known: dict[bytes, str] = {}
            for row in range(first, end):
                known.setdefault(span_ids[row], services[origins[row]])
            for row in range(first, end):
                parent = parents[row]
                if not parent:
                    continue
                service = services[origins[row]]
                caller = known.get(parent)
                if caller is None:
                    unresolved.append((starts[row], block.trace_id(ordinal), parent, service))
                else:
                    code = codes.setdefault((caller, service), len(codes))
                    found.append((starts[row], code))
        found.sort()
        unresolved.sort()
        self.pairs = list(codes)
        self.starts = array("q", (start for start, _ in found))
        self.codes = pa.array([code for _, code in found], pa.int32())
        self.unresolved = unresolved
        self._unresolved_starts = [item[0] for item in unresolved]

    def count(self, begin_ns: int, end_ns: int, calls: Counter[tuple[str, str]]) -> None:
        """Add the calls of spans that started in [begin, end] and whose parent is in the block."""
        low, high = bisect_left(self.starts, begin_ns), bisect_right(self.starts, end_ns)
        if high <= low:
            return
        counts = pc.value_counts(self.codes.slice(low, high - low))
        for code, n in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        ):
            calls[self.pairs[code]] += n

    def unresolved_in(self, begin_ns: int, end_ns: int) -> list[Unresolved]:
        starts = self._unresolved_starts
        return self.unresolved[bisect_left(starts, begin_ns) : bisect_right(starts, end_ns)]
