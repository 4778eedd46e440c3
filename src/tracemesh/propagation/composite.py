"""The `Propagator`: reads every configured header format, writes the configured ones, strips all.

Read precedence is the order of `read`, by default W3C `traceparent`, then B3 (`b3`, then
`X-B3-*`), then Jaeger `uber-trace-id`; the first format holding a valid context wins. Why W3C
first: when tracemesh's own proxies wrote the headers, every format carries the same context and
the order does not matter. It matters when they disagree, and that happens when an application
copies inbound headers to its outbound call (as Istio asks apps to) while an SDK in it rewrites
one format for a span of its own. Today that SDK is OpenTelemetry, which writes `traceparent`; the
copied B3 headers still point at the sidecar's span, so W3C holds the fresher parent. Linkerd
makes the same choice (it uses only W3C when both are present); Envoy reads B3 first only
because its Zipkin tracer is B3-native and W3C is its fallback (`USE_B3_WITH_W3C_PROPAGATION`).
Jaeger comes last: Envoy's Zipkin tracer ignores `uber-trace-id` and jaeger-client is retired.
Pass `read=("b3", "w3c", "jaeger")` for Envoy's order.

The winner is then completed from the other formats that carry the same trace and span id, for
what it cannot say itself: B3's and Jaeger's parent, debug flag and memory of a 64-bit trace id,
W3C's `tracestate` and random-trace-id flag, Jaeger's firehose flag, and B3's deferred sampling
(which W3C and Jaeger must write as "not sampled"). So a context written in all formats reads
back whole whatever the order. A `jaeger-debug-id` forces debug.

Without any valid context, a B3 sampling-only header (`b3: 0`, a lone `X-B3-Sampled`) and
`jaeger-debug-id` still decide the new trace's sampling: `extract_request` returns them with the
baggage and request id, and `Extraction.start()` continues the trace or starts a new one.
Invalid headers are ignored as each spec says.

Baggage from every form in `read_baggage` is merged, the earlier form winning a key (by default
W3C `baggage`, then Jaeger `uberctx-*` and `jaeger-baggage`, then `baggage-*`; see `baggage`).

Writing (`inject`) owns the trace-context headers of every format it knows: it writes those in
`write` and deletes the others, so a stale header can never point a reader at an old parent
(Envoy forwarding an incoming `b3` untouched is such a bug, envoy#47515). It writes the baggage
in each form of `write_baggage`, and `x-request-id` when the context has one.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from tracemesh.propagation import b3, baggage, jaeger, request_id, w3c
from tracemesh.propagation.baggage import BaggageForm
from tracemesh.propagation.carrier import HEADERS, TEXT, Edits, Getter, Selection, Setter
from tracemesh.propagation.context import SamplingFlags, SpanContext

_E = TypeVar("_E", bound=StrEnum)


class Format(StrEnum):
    W3C = "w3c"  # traceparent + tracestate
    B3 = "b3"  # X-B3-* (reading B3 reads the single `b3` header too)
    B3_SINGLE = "b3-single"  # b3
    JAEGER = "jaeger"  # uber-trace-id (reading it also reads jaeger-debug-id)


DEFAULT_READ: tuple[Format, ...] = (Format.W3C, Format.B3, Format.JAEGER)
DEFAULT_WRITE: tuple[Format, ...] = (Format.B3, Format.W3C, Format.JAEGER)
DEFAULT_WRITE_BAGGAGE: tuple[BaggageForm, ...] = (BaggageForm.W3C, BaggageForm.JAEGER)

CONTEXT_HEADERS: tuple[str, ...] = (*w3c.HEADER_NAMES, *b3.HEADER_NAMES, jaeger.UBER_TRACE_ID)
"""The trace-context headers `inject` owns."""
BAGGAGE_HEADERS: tuple[str, ...] = (baggage.BAGGAGE, jaeger.JAEGER_BAGGAGE)
BAGGAGE_PREFIXES: tuple[str, ...] = (jaeger.BAGGAGE_PREFIX, baggage.PREFIX, "ot-baggage-")
FOREIGN_HEADERS: tuple[str, ...] = (
    "ot-tracer-traceid",
    "ot-tracer-spanid",
    "ot-tracer-sampled",
    "x-ot-span-context",
    "grpc-trace-bin",
    "x-cloud-trace-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "x-datadog-origin",
    "x-datadog-tags",
    "sw8",
    "sw8-correlation",
    "sw8-x",
)
"""Tracing headers of formats tracemesh does not read (Istio's list of headers to copy)."""

_EMPTY: Mapping[str, str] = MappingProxyType({})

_SELECTION = Selection(
    (*CONTEXT_HEADERS, *BAGGAGE_HEADERS, jaeger.DEBUG_ID, request_id.REQUEST_ID),
    (jaeger.BAGGAGE_PREFIX, baggage.PREFIX),
)
"""Every header `extract_request` may read, whatever the configured formats."""
_BAGGAGE_STARTS = (baggage.BAGGAGE, jaeger.JAEGER_BAGGAGE, jaeger.BAGGAGE_PREFIX)
"""What the names of the selected baggage headers start with (`baggage-*` included)."""
_DEBUG = "debug"
_FORMAT_OF = {
    **{name: Format.W3C for name in w3c.HEADER_NAMES},
    **{name: Format.B3 for name in b3.HEADER_NAMES},
    jaeger.UBER_TRACE_ID: Format.JAEGER,
    jaeger.DEBUG_ID: _DEBUG,
}
_ALL: frozenset[str] = frozenset((*Format, _DEBUG))


def _formats_present(selected: Mapping[str, list[str]]) -> set[str]:
    """The formats (and the debug id) with a header among `selected`: the others read nothing
    and can be skipped."""
    return {_FORMAT_OF[name] for name in selected if name in _FORMAT_OF}


_Writer = Callable[[SpanContext, Any, Setter[Any]], None]
_WRITERS: tuple[tuple[Format, tuple[str, ...], _Writer], ...] = (
    (Format.W3C, w3c.HEADER_NAMES, w3c.inject),
    (Format.B3, b3.MULTI_HEADER_NAMES, b3.inject_multi),
    (Format.B3_SINGLE, (b3.B3,), b3.inject_single),
    (Format.JAEGER, (jaeger.UBER_TRACE_ID,), jaeger.inject),
)
"""Each format `inject` knows, the headers it owns, and its writer, in the order written."""


@dataclass(frozen=True, slots=True)
class Extraction:
    """What one request carries: the parent context if any, and what a new trace inherits."""

    context: SpanContext | None = None
    sampled: bool | None = None
    debug: bool = False
    debug_id: str = ""  # jaeger-debug-id, for the hop to tag its span with
    baggage: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    request_id: str = ""

    def start(self) -> SpanContext:
        """The context of the span this hop starts: a child of the context, or a new root."""
        if self.context is not None:
            return self.context.child()
        return SpanContext.new_root(
            sampled=self.sampled, debug=self.debug, baggage=self.baggage, request_id=self.request_id
        )

    def start_with(self, sampled: bool | None, request_id: str) -> SpanContext:
        """`start()` with the hop's own sampling decision and request id, built in one go."""
        if self.context is not None:
            return self.context.child_with(sampled, request_id)
        return SpanContext.new_root(
            sampled=sampled, debug=self.debug, baggage=self.baggage, request_id=request_id
        )


class _Changes(dict[str, str | None]):
    """A `Setter` that writes into itself. It takes names as given: every writer here passes
    lowercase names (constants, and baggage keys it lowercased itself)."""

    def set(self, carrier: object, name: str, value: str) -> None:
        self[name] = value

    def delete(self, carrier: object, name: str) -> None:
        self[name] = None


def _choices(kind: type[_E], names: Iterable[str | _E], what: str) -> tuple[_E, ...]:
    """Configured names as members of `kind`, in order, each once; an unknown name is an error."""
    out: list[_E] = []
    for name in names:
        try:
            member = kind(name)
        except ValueError:
            known = ", ".join(m.value for m in kind)
            raise ValueError(f"unknown {what} {name!r}; known: {known}") from None
        if member not in out:
            out.append(member)
    return tuple(out)


def _complete(winner: SpanContext, found: Sequence[tuple[Format, SpanContext]]) -> SpanContext:
    """Fill in what the winning format cannot say from formats with the same trace and span id.

    B3 and Jaeger carry the parent and debug, and remember a 64-bit trace id; W3C carries
    `tracestate` and the random-trace-id flag; Jaeger the firehose flag. Only B3 can defer a
    sampling decision, so an agreeing B3 context without one turns the "not sampled" that W3C and
    Jaeger must write for a deferred context back into deferred.
    """
    fields: dict[str, Any] = {}
    for fmt, other in found:
        if other is winner or (other.trace_id, other.span_id) != (winner.trace_id, winner.span_id):
            continue
        if winner.parent_span_id is None and other.parent_span_id is not None:
            fields.setdefault("parent_span_id", other.parent_span_id)
        if not winner.trace_state and other.trace_state:
            fields.setdefault("trace_state", other.trace_state)
        for flag in ("debug", "trace_id_64bit", "random_trace_id", "firehose"):
            if getattr(other, flag) and not getattr(winner, flag):
                fields[flag] = True
        if fmt is Format.B3 and other.sampled is None and winner.sampled is False:
            fields["sampled"] = None
    if fields.get("debug"):
        fields.pop("sampled", None)
    return replace(winner, **fields) if fields else winner


class Propagator:
    """Reads and writes trace context, baggage and request id in the configured formats.

    `read` and `read_baggage` are in precedence order. `request_ids` turns reading and writing
    `x-request-id` on; `generate_request_id` makes `extract_request` create a UUID4 when the
    incoming one is missing or insane (Envoy's `generate_request_id`).
    """

    def __init__(
        self,
        read: Iterable[str | Format] = DEFAULT_READ,
        write: Iterable[str | Format] = DEFAULT_WRITE,
        read_baggage: Iterable[str | BaggageForm] = baggage.DEFAULT_READ,
        write_baggage: Iterable[str | BaggageForm] = DEFAULT_WRITE_BAGGAGE,
        *,
        request_ids: bool = True,
        generate_request_id: bool = True,
    ) -> None:
        self.read = _choices(Format, read, "propagation format")
        self.write = _choices(Format, write, "propagation format")
        self.read_baggage = _choices(BaggageForm, read_baggage, "baggage form")
        self.write_baggage = _choices(BaggageForm, write_baggage, "baggage form")
        self.request_ids = request_ids
        self.generate_request_id = generate_request_id
        self._read_order = tuple(
            dict.fromkeys(Format.B3 if f is Format.B3_SINGLE else f for f in self.read)
        )
        self._inject_steps = tuple(
            (writer if fmt in self.write else None, names) for fmt, names, writer in _WRITERS
        )

    def extract(self, carrier: Any, getter: Getter[Any] | None = None) -> SpanContext | None:
        """The incoming context with its baggage and request id; None when there is no valid one.

        None means: start a new trace (see `extract_request` for the sampling hints to use).
        """
        return self.extract_request(carrier, getter).context

    def extract_request(self, carrier: Any, getter: Getter[Any] | None = None) -> Extraction:
        """Everything the request carries, for continuing its trace or starting a new one."""
        get: Getter[Any]
        present: Container[str] = _ALL  # which headers to look for; all unless known
        any_baggage = True
        if getter is None:
            carrier, get = _SELECTION.select(carrier), TEXT
            if not carrier:  # no tracing header at all: the common case at the edge
                return Extraction(request_id=self._new_request_id())
            present = _formats_present(carrier)
            any_baggage = any(name.startswith(_BAGGAGE_STARTS) for name in carrier)
        else:
            get = getter
        contexts: list[tuple[Format, SpanContext]] = []
        hint: SamplingFlags | None = None
        for fmt in self._read_order:
            if fmt not in present:
                continue
            found: SpanContext | SamplingFlags | None = None
            if fmt is Format.W3C:
                found = w3c.extract(carrier, get)
            elif fmt is Format.B3:
                found = b3.extract(carrier, get)
            elif fmt is Format.JAEGER:
                found = jaeger.extract(carrier, get)
            if isinstance(found, SpanContext):
                contexts.append((fmt, found))
            elif isinstance(found, SamplingFlags) and hint is None:
                hint = found
        debug_id = None
        if Format.JAEGER in self.read and _DEBUG in present:
            debug_id = jaeger.extract_debug_id(carrier, get)
        bag = _EMPTY
        if any_baggage:
            bag = MappingProxyType(baggage.extract(carrier, get, self.read_baggage))
        rid = ""
        if self.request_ids:
            rid = request_id.extract(carrier, get) or self._new_request_id()
        context = None
        if contexts:
            winner = contexts[0][1] if len(contexts) == 1 else _complete(contexts[0][1], contexts)
            context = winner.with_request(bag, rid, debug=bool(debug_id))
        return Extraction(
            context=context,
            sampled=True if debug_id else (hint.sampled if hint else None),
            debug=bool(debug_id) or (hint.debug if hint else False),
            debug_id=debug_id or "",
            baggage=bag,
            request_id=rid,
        )

    def _new_request_id(self) -> str:
        if self.request_ids and self.generate_request_id:
            return request_id.new_request_id()
        return ""

    def inject(self, ctx: SpanContext, carrier: Any, setter: Setter[Any] | None = None) -> None:
        """Write the context in every `write` format, its baggage and its request id."""
        edits = Edits()
        edits.changes = self.changes(ctx)
        edits.apply(carrier, setter)

    def changes(self, ctx: SpanContext) -> dict[str, str | None]:
        """What `inject` writes: lowercase header name -> value, or None to remove the header."""
        edits = _Changes()
        for writer, names in self._inject_steps:
            if writer is not None:
                writer(ctx, None, edits)
            else:
                for name in names:
                    edits[name] = None
        if self.write_baggage:
            baggage.inject(ctx.baggage, None, edits, self.write_baggage)
        if self.request_ids and ctx.request_id:
            edits[request_id.REQUEST_ID] = ctx.request_id
        return edits

    def strip(
        self,
        carrier: Any,
        getter: Getter[Any] | None = None,
        setter: Setter[Any] | None = None,
        *,
        request_ids: bool = True,
    ) -> None:
        """Remove every tracing header: context, baggage, debug id, foreign formats, request id.

        For a gateway that distrusts what arrives from outside; `request_ids=False` keeps
        `x-request-id` (Envoy's `preserve_external_request_id`).
        """
        exact = {*CONTEXT_HEADERS, *BAGGAGE_HEADERS, jaeger.DEBUG_ID, *FOREIGN_HEADERS}
        if request_ids:
            exact.add(request_id.REQUEST_ID)
        edits = Edits()
        for name in {key.lower() for key in (getter or HEADERS).keys(carrier)}:
            if name in exact or name.startswith(BAGGAGE_PREFIXES):
                edits.delete(carrier, name)
        edits.apply(carrier, setter)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fixed header names `inject` may write (prefixed baggage headers aside)."""
        names: list[str] = []
        for fmt in self.write:
            if fmt is Format.W3C:
                names.extend(w3c.HEADER_NAMES)
            elif fmt is Format.B3:
                names.extend(b3.MULTI_HEADER_NAMES)
            elif fmt is Format.B3_SINGLE:
                names.append(b3.B3)
            elif fmt is Format.JAEGER:
                names.append(jaeger.UBER_TRACE_ID)
        if BaggageForm.W3C in self.write_baggage:
            names.append(baggage.BAGGAGE)
        if self.request_ids:
            names.append(request_id.REQUEST_ID)
        return tuple(names)
