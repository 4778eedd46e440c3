"""Query-side adjusters: the fixes Jaeger applies to a trace read from storage unless `raw=true`.

`adjust()` runs, in Jaeger v2's order (`jaegerquery/internal/adjuster/standard.go`):

1. `uniquify_client_server_span_ids` — a SERVER span sharing its span id with a CLIENT span
   (Zipkin-style RPC spans) gets the first unused id counting up from 1, and the shared id as its
   parent; spans that had the shared id as parent are re-parented onto the new id.
2. `sort_collections` — resource, scope, span, event and link attributes sorted by key; events
   sorted by name (stably). Links keep their order.
3. `drop_duplicate_spans` — exact copies (same resource and scope attributes, same span) dropped,
   the first kept.
4. Clock-skew correction is *not* applied: Jaeger's default `max_clock_skew_adjust` is 0 (off).
5. `normalize_ip_attributes` — integer `ip` / `peer.ipv4` (IPv4 packed in 32 bits) become dotted
   strings, on resources and spans.
6. `move_library_attributes` — `telemetry.sdk.*` / `telemetry.distro.*` span attributes move to
   the resource (a conflicting value stays put, with a warning).
7. `remove_empty_links` — links with an empty or all-zero trace id dropped, with a warning.

Storage hands out shared objects (one `Resource` may serve many spans and traces), so `adjust()`
first copies the trace; the individual steps then work in place on that private copy.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Sequence

from opentelemetry.proto.common.v1 import common_pb2

from tracemesh.codecs.otlp_proto import attributes_to_pb, span_to_pb
from tracemesh.model.attributes import Attributes
from tracemesh.model.span import Link, Resource, Scope, Span, SpanKind

Adjuster = Callable[[list[Span]], list[Span]]

LIBRARY_KEYS = frozenset(
    {
        "telemetry.sdk.language",
        "telemetry.sdk.name",
        "telemetry.sdk.version",
        "telemetry.distro.name",
        "telemetry.distro.version",
    }
)
IP_KEYS = frozenset({"ip", "peer.ipv4"})
INVALID_LINK_WARNING = "Invalid span link removed"
TOO_MANY_SPANS_WARNING = "cannot assign unique span ID, too many spans in the trace"


def copy_trace(spans: Sequence[Span]) -> list[Span]:
    """A copy that adjusters may change: spans, their attribute maps, events, links, and each
    distinct resource and scope (copied once, so spans that shared one still share its copy)."""
    resources: dict[int, Resource] = {}
    scopes: dict[int, Scope] = {}
    out = []
    for span in spans:
        resource = resources.get(id(span.resource))
        if resource is None:
            resource = dataclasses.replace(span.resource, attributes=dict(span.resource.attributes))
            resources[id(span.resource)] = resource
        scope = scopes.get(id(span.scope))
        if scope is None:
            scope = dataclasses.replace(span.scope, attributes=dict(span.scope.attributes))
            scopes[id(span.scope)] = scope
        out.append(
            dataclasses.replace(
                span,
                attributes=dict(span.attributes),
                events=[dataclasses.replace(e, attributes=dict(e.attributes)) for e in span.events],
                links=[
                    dataclasses.replace(lk, attributes=dict(lk.attributes)) for lk in span.links
                ],
                resource=resource,
                scope=scope,
                warnings=list(span.warnings),
            )
        )
    return out


def uniquify_client_server_span_ids(spans: list[Span]) -> list[Span]:
    kinds_by_id: dict[bytes, set[SpanKind]] = {}
    for span in spans:
        kinds_by_id.setdefault(span.span_id, set()).add(span.kind)
    next_candidate = 1
    renamed: dict[bytes, bytes] = {}
    for span in spans:
        if span.kind is not SpanKind.SERVER or SpanKind.CLIENT not in kinds_by_id[span.span_id]:
            continue
        while next_candidate.to_bytes(8, "big") in kinds_by_id:
            next_candidate += 1
        if next_candidate >= 2**64:
            span.warnings.append(TOO_MANY_SPANS_WARNING)
            continue
        new_id = next_candidate.to_bytes(8, "big")
        next_candidate += 1
        renamed[span.span_id] = new_id
        span.parent_span_id, span.span_id = span.span_id, new_id
    for span in spans:
        new_parent = renamed.get(span.parent_span_id)
        if new_parent is not None and span.span_id != new_parent:
            span.parent_span_id = new_parent
    return spans


def sorted_attributes(attributes: Attributes) -> Attributes:
    """A copy sorted by key."""
    return dict(sorted(attributes.items()))


def sort_collections(spans: list[Span]) -> list[Span]:
    for resource in {id(s.resource): s.resource for s in spans}.values():
        resource.attributes = sorted_attributes(resource.attributes)
    for scope in {id(s.scope): s.scope for s in spans}.values():
        scope.attributes = sorted_attributes(scope.attributes)
    for span in spans:
        span.attributes = sorted_attributes(span.attributes)
        span.events.sort(key=lambda event: event.name)
        for event in span.events:
            event.attributes = sorted_attributes(event.attributes)
        for link in span.links:
            link.attributes = sorted_attributes(link.attributes)
    return spans


def _identity(span: Span) -> bytes:
    """Bytes equal for exact copies: resource and scope attributes, then the span itself."""
    origin = common_pb2.KeyValueList()
    attributes_to_pb(span.resource.attributes, origin.values)
    attributes_to_pb(span.scope.attributes, origin.values)
    head = origin.SerializeToString()
    body = span_to_pb(span).SerializeToString()
    tail = "\0".join(span.warnings).encode()
    return len(head).to_bytes(8, "big") + head + len(body).to_bytes(8, "big") + body + tail


def drop_duplicate_spans(spans: list[Span]) -> list[Span]:
    # Exact copies share their span id, so only spans whose id repeats need the (costly) full
    # comparison: a 10,000-span trace without duplicates encodes nothing.
    counts = Counter(span.span_id for span in spans)
    seen: set[bytes] = set()
    kept = []
    for span in spans:
        if counts[span.span_id] > 1:
            identity = _identity(span)
            if identity in seen:
                continue
            seen.add(identity)
        kept.append(span)
    return kept


def _dotted_ipv4(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    packed = int(value) & 0xFFFFFFFF
    return ".".join(str(b) for b in packed.to_bytes(4, "big"))


def normalize_ips(attributes: Attributes) -> None:
    for key in IP_KEYS & attributes.keys():
        dotted = _dotted_ipv4(attributes[key])
        if dotted is not None:
            attributes[key] = dotted


def normalize_ip_attributes(spans: list[Span]) -> list[Span]:
    for resource in {id(s.resource): s.resource for s in spans}.values():
        normalize_ips(resource.attributes)
    for span in spans:
        normalize_ips(span.attributes)
    return spans


def move_library_attributes(spans: list[Span]) -> list[Span]:
    for span in spans:
        for key in [k for k in span.attributes if k in LIBRARY_KEYS]:
            value = span.attributes[key]
            resource = span.resource.attributes
            if key in resource and resource[key] != value:
                span.warnings.append(
                    f"conflicting values between Span and Resource for attribute {key}"
                )
                continue
            resource[key] = value
            del span.attributes[key]
    return spans


def _valid_link(link: Link) -> bool:
    return any(link.trace_id)


def remove_empty_links(spans: list[Span]) -> list[Span]:
    for span in spans:
        valid = [link for link in span.links if _valid_link(link)]
        span.warnings.extend([INVALID_LINK_WARNING] * (len(span.links) - len(valid)))
        span.links = valid
    return spans


STANDARD_ADJUSTERS: tuple[Adjuster, ...] = (
    uniquify_client_server_span_ids,
    sort_collections,
    drop_duplicate_spans,
    normalize_ip_attributes,
    move_library_attributes,
    remove_empty_links,
)


def adjust(spans: Sequence[Span], adjusters: Sequence[Adjuster] = STANDARD_ADJUSTERS) -> list[Span]:
    """The trace with every adjuster applied, leaving the given spans and their parts untouched."""
    trace = copy_trace(spans)
    for adjuster in adjusters:
        trace = adjuster(trace)
    return trace
