"""The write path's unit: spans with their index fields pulled out and the span kept as OTLP bytes.

Every receiver produces a `SpanBatch`; every storage backend consumes one. Keeping each span as its
serialized OTLP `Span` message (`SpanRow.raw`) and reading only the fields that storage indexes is
what lets ingest run at hundreds of thousands of spans per second: building Python objects for every
attribute costs ~6 µs a span (see docs/adr/0001-span-rows.md). The full `Span` is decoded on read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from tracemesh.model.span import Resource, Scope


class SpanRow(NamedTuple):
    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    parent_span_id: bytes  # b"" for a root
    name: str
    kind: int  # SpanKind value
    start_ns: int
    end_ns: int
    status_code: int  # StatusCode value
    raw: bytes  # the serialized opentelemetry.proto.trace.v1.Span


@dataclass(slots=True)
class ResourceGroup:
    """Spans that share one resource (process) and one instrumentation scope."""

    resource: Resource
    scope: Scope
    rows: list[SpanRow] = field(default_factory=list)


@dataclass(slots=True)
class SpanBatch:
    groups: list[ResourceGroup] = field(default_factory=list)
    repaired: int = 0  # spans whose text was not UTF-8, stored repaired with warnings

    @property
    def span_count(self) -> int:
        return sum(len(g.rows) for g in self.groups)
