"""A trace's Jaeger JSON straight from stored OTLP span bytes: the fast path of
`GET /api/traces/{id}`.

The reference path decodes every span into a model `Span`, copies the trace, runs the standard
adjusters over it and renders the result (`codecs.jaeger_json`): ~55 µs a span in Python, 0.6 s for
a 10,000-span trace. Here a C accelerator (`tracemesh/accel/_jaeger_span.c`) turns each stored span
into its JSON dict in one pass and does the adjusters' work on the way; the resource of each
distinct origin (the Jaeger process) and the scope tags are computed once, in Python, with the
reference functions.

That is exact only for a trace whose span ids are all distinct: with a repeated id the
client/server and duplicate-span adjusters work across spans. Such a trace, any span the
accelerator declines, a missing accelerator (`TRACEMESH_NO_ACCEL=1`, no C compiler) or a storage
backend without stored OTLP bytes all give None, and the caller takes the reference path.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tracemesh import accel
from tracemesh.codecs.jaeger_json import (
    JSON,
    _process_identity,
    key_value,
    process_json,
    trace_json,
)
from tracemesh.codecs.otlp_proto import span_from_row
from tracemesh.model.query import TraceQuery
from tracemesh.model.span import Resource, Scope, Span
from tracemesh.query.adjusters import adjust, normalize_ips, sorted_attributes

# (the OTLP protobuf bytes of one Span, its resource, its scope). The resource and scope may be
# storage's own objects: read here, never changed.
OTLPSpan = tuple[bytes, Resource, Scope]

_accel = accel.load("_jaeger_span")
if _accel is not None:
    _accel.setup(key_value)
ACCELERATED = _accel is not None


@runtime_checkable
class OTLPTraceReader(Protocol):
    """Optional `TraceReader` methods: a backend that keeps spans as OTLP bytes offers them."""

    async def get_trace_otlp(
        self, trace_id: bytes, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[OTLPSpan]:
        """What `get_trace` returns, each span still encoded, in the same order."""
        ...

    async def find_traces_otlp(self, query: TraceQuery) -> list[list[OTLPSpan]]:
        """What `find_traces` returns, each span still encoded."""
        ...


def render_otlp(spans: Sequence[OTLPSpan]) -> JSON:
    """The trace's Jaeger JSON after the standard adjusters: from the fast path, or, where it
    declines, decoded, adjusted and rendered in Python (the reference)."""
    fast = trace_json_from_otlp(spans)
    return fast if fast is not None else trace_json(adjust(decode_otlp(spans)))


def decode_otlp(spans: Sequence[OTLPSpan]) -> list[Span]:
    """Model spans, each distinct resource and scope pair copied once (as the memory reader copies
    each stored origin), so that the adjusters never touch storage's own objects."""
    copies: dict[tuple[int, int], tuple[Resource, Scope]] = {}
    out = []
    for raw, resource, scope in spans:
        key = (id(resource), id(scope))
        pair = copies.get(key)
        if pair is None:
            pair = copies[key] = (copy.deepcopy(resource), copy.deepcopy(scope))
        out.append(span_from_row(raw, *pair))
    return out


def adjusted_process(resource: Resource) -> JSON:
    """The Jaeger process of a resource after the standard adjusters: attributes sorted, integer
    IPs dotted (library attributes moving in from spans make the accelerator decline)."""
    attributes = sorted_attributes(resource.attributes)
    normalize_ips(attributes)
    return process_json(Span(b"", b"", "", 0, 0, resource=Resource(attributes)))


def scope_tags(scope: Scope) -> tuple[JSON, ...]:
    """The tags `jaeger_json.span_tags` puts first: the scope's name and version."""
    tags = []
    if scope.name:
        tags.append(key_value("otel.scope.name", scope.name))
    if scope.version:
        tags.append(key_value("otel.scope.version", scope.version))
    return tuple(tags)


def trace_json_from_otlp(spans: Sequence[OTLPSpan]) -> JSON | None:
    """`jaeger_json.trace_json(adjust(decoded spans))`, or None when the fast path cannot give
    exactly that (see the module docstring)."""
    if _accel is None or not spans:
        return None
    span_json = _accel.span_json
    process_ids: dict[tuple[object, ...], str] = {}
    processes: JSON = {}
    by_resource: dict[int, str] = {}  # id() is safe: `spans` keeps every resource alive
    by_scope: dict[int, tuple[JSON, ...]] = {}
    out: list[JSON] = []
    for raw, resource, scope in spans:
        process_id = by_resource.get(id(resource))
        if process_id is None:
            process = adjusted_process(resource)
            identity = _process_identity(process)
            process_id = process_ids.get(identity)
            if process_id is None:
                process_id = process_ids[identity] = f"p{len(process_ids) + 1}"
                processes[process_id] = process
            by_resource[id(resource)] = process_id
        head = by_scope.get(id(scope))
        if head is None:
            head = by_scope[id(scope)] = scope_tags(scope)
        rendered = span_json(raw, process_id, head) if type(raw) is bytes else None
        if rendered is None:
            return None
        out.append(rendered)
    if len({span["spanID"] for span in out}) != len(out):
        return None  # a repeated span id: the cross-span adjusters apply
    return {"traceID": out[0]["traceID"], "spans": out, "processes": processes, "warnings": None}
