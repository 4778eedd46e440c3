"""Span tags a protocol layer learns that a handler's span does not read from its `Exchange`:
gRPC's status from trailers, a stream reset mid-response. The HTTP/2 server sets them for the
duration of `Handler.on_end` (`extras_for`), and `ExtrasSink`, between the tracer and the
reporter, adds them to the span reported meanwhile. So handlers and `tracing.build_span` stay
protocol-blind; an HTTP/1.1 exchange sets nothing and its spans pass through untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from tracemesh.mesh.reporter import SpanSink
from tracemesh.model.span import Span, Status, StatusCode


@dataclass(frozen=True, slots=True)
class SpanExtras:
    tags: Mapping[str, str] = field(default_factory=dict)
    error: bool = False  # mark the span failed even if its HTTP status is not 5xx


_CURRENT: ContextVar[SpanExtras | None] = ContextVar("tracemesh_span_extras", default=None)


@contextmanager
def extras_for(extras: SpanExtras | None) -> Iterator[None]:
    """Spans reported inside the block get `extras`."""
    if extras is None:
        yield
        return
    token = _CURRENT.set(extras)
    try:
        yield
    finally:
        _CURRENT.reset(token)


class ExtrasSink:
    """A `SpanSink` adding the current extras to each span before passing it on."""

    def __init__(self, inner: SpanSink) -> None:
        self.inner = inner

    def report(self, span: Span) -> None:
        extras = _CURRENT.get()
        if extras is not None:
            span.attributes.update(extras.tags)
            if extras.error:
                span.status = Status(StatusCode.ERROR)
        self.inner.report(span)
