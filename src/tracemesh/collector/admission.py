"""The ingest boundary: every decoded batch passes here once before any store sees it.

Jaeger keeps what it can and says what it changed; so does this step, for every receiver:

- a resource without a (string, non-empty) `service.name` gets `missing-service-name`;
- a span with an empty name gets `empty-span-name`;
- a span that ends before it starts gets its end set to its start;
- a span that ends past `timerange.MAX_NS` gets its end clamped to it;
- a span whose start is outside `timerange` (0, or at or past 2^63 ns) is refused alone.

A corrected span says what was corrected in its warnings (`model.span_warnings`). Rows keep
their span as OTLP bytes; a correction appends fields to those bytes (protobuf keeps the last
value of a scalar field and appends repeated ones), so the span is never re-encoded.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

from tracemesh.codecs.otlp_bytes import END, NAME, attribute
from tracemesh.codecs.otlp_bytes import field as pb_field
from tracemesh.model.attributes import AttrValue
from tracemesh.model.batch import ResourceGroup, SpanBatch, SpanRow
from tracemesh.model.span import Resource
from tracemesh.model.span_warnings import WARNINGS_ATTRIBUTE
from tracemesh.model.timerange import MAX_NS, MIN_NS

MISSING_SERVICE_NAME = "missing-service-name"
EMPTY_SPAN_NAME = "empty-span-name"

NEGATIVE_DURATION = "negative_duration"
END_PAST_RANGE = "end_out_of_range"
EMPTY_NAME = "empty_span_name"
MISSING_SERVICE = "missing_service_name"
START_OUT_OF_RANGE = "start_out_of_range"

_fixed64 = struct.Struct("<Q").pack


@dataclass(slots=True)
class Admitted:
    """The batch to store, with what was corrected and refused, by reason."""

    batch: SpanBatch
    corrected: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    example: str = ""  # one refusal, for the log


def admit(batch: SpanBatch) -> Admitted:
    """Correct or refuse, span by span; the common (valid) span costs one comparison chain."""
    out = Admitted(batch)
    groups: list[ResourceGroup] = []
    changed = False
    for group in batch.groups:
        if _fix_service(group.resource):
            out.corrected[MISSING_SERVICE] += len(group.rows)
        fixed: list[SpanRow | None] | None = None
        for index, row in enumerate(group.rows):
            if row.name and MIN_NS <= row.start_ns <= row.end_ns <= MAX_NS:
                continue
            if fixed is None:
                fixed = list(group.rows)  # the caller's list is left as it was
            fixed[index] = _fix_row(row, out)
        if fixed is None:
            groups.append(group)
            continue
        changed = True
        kept = [row for row in fixed if row is not None]
        if kept:
            groups.append(ResourceGroup(group.resource, group.scope, kept))
    if changed:
        out.batch = SpanBatch(groups, batch.repaired)
    return out


def _fix_service(resource: Resource) -> bool:
    name = resource.attributes.get("service.name")
    if isinstance(name, str) and name:
        return False
    resource.attributes["service.name"] = MISSING_SERVICE_NAME
    return True


def _fix_row(row: SpanRow, out: Admitted) -> SpanRow | None:
    """The corrected row, or None when the span is refused."""
    start, end = row.start_ns, row.end_ns
    if not MIN_NS <= start <= MAX_NS:
        out.refused[START_OUT_OF_RANGE] += 1
        out.example = out.example or (
            f"span {row.span_id.hex()} starts at {start} ns, outside {MIN_NS}..{MAX_NS} "
            "(1970 to 2262)"
        )
        return None
    warnings: list[AttrValue] = []
    extra = b""
    name = row.name
    if not name:
        name = EMPTY_SPAN_NAME
        extra += pb_field(NAME, name.encode())
        warnings.append(f"span name was empty; stored as {EMPTY_SPAN_NAME!r}")
        out.corrected[EMPTY_NAME] += 1
    if end > MAX_NS:
        warnings.append(f"end time {end} ns was past the year 2262; clamped to {MAX_NS} ns")
        end = MAX_NS
        out.corrected[END_PAST_RANGE] += 1
    elif end < start:
        warnings.append(
            f"end time was {start - end} ns before the start time; end set to the start"
        )
        end = start
        out.corrected[NEGATIVE_DURATION] += 1
    if end != row.end_ns:
        extra += END + _fixed64(end)
    extra += attribute(WARNINGS_ATTRIBUTE, warnings)
    return row._replace(name=name, end_ns=end, raw=row.raw + extra)
