"""What a trace search asks for, in the storage contract's units (nanoseconds, bytes ids)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracemesh.model.span import SpanKind

DEFAULT_SEARCH_LIMIT = 100


@dataclass(slots=True)
class TraceQuery:
    """A trace matches when at least one of its spans meets every set filter at once.

    `tags` values are compared as strings against span attributes, resource attributes and event
    attributes; `error=true` also matches status ERROR. Times bound the span start; durations bound
    the individual span's duration. Results are the most recent matching traces, at most `limit`.
    """

    service: str = ""  # empty: any service (only where the backend declares that capability)
    operation: str = ""
    span_kind: SpanKind | None = None
    tags: dict[str, str] = field(default_factory=dict)
    start_min_ns: int | None = None
    start_max_ns: int | None = None
    duration_min_ns: int | None = None
    duration_max_ns: int | None = None
    limit: int = DEFAULT_SEARCH_LIMIT


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    span_kind: SpanKind
