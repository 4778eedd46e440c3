"""The span context that crosses a hop: ids, sampling state, trace state, baggage and request id.

Every header format reads into and writes from this one value, so a context read as B3 can be
written as W3C and Jaeger. It is frozen: a hop derives its own context with `child()`.

Ids are bytes, as in `tracemesh.model`: a trace id is 16 bytes, a span id 8. A 64-bit trace id
(16 hex digits in B3 or Jaeger) is kept zero-extended with `trace_id_64bit` set, so the formats
that can write it back as 16 hex digits do (W3C cannot, and always writes 32).

Three-valued sampling: `sampled` is True (accept), False (deny) or None (deferred: the receiver
decides; only B3 can say so on the wire). `debug` implies sampled, as B3, Jaeger and Envoy agree,
so a debug context always has `sampled=True`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from random import getrandbits
from types import MappingProxyType

from tracemesh.model.ids import SPAN_ID_SIZE, TRACE_ID_SIZE

_EMPTY: Mapping[str, str] = MappingProxyType({})
_ZERO_TRACE = bytes(TRACE_ID_SIZE)
_ZERO_SPAN = bytes(SPAN_ID_SIZE)


# Ids come from `random.getrandbits`, as OpenTelemetry's SDK makes them (RandomIdGenerator): they
# must be unique, not unguessable, and a system call per id (os.urandom) costs a proxy more than
# the rest of minting them. The random module reseeds itself in a forked child.


def new_trace_id() -> bytes:
    """A random, non-zero 128-bit trace id."""
    while True:
        value = getrandbits(128)
        if value:
            return value.to_bytes(TRACE_ID_SIZE, "big")


def new_span_id() -> bytes:
    """A random, non-zero 64-bit span id."""
    while True:
        value = getrandbits(64)
        if value:
            return value.to_bytes(SPAN_ID_SIZE, "big")


@dataclass(frozen=True, slots=True, repr=False)
class SpanContext:
    """One valid trace context. Construction checks the ids and raises ValueError when wrong.

    `span_id` is the span of the sender (the parent of whatever the receiver starts);
    `parent_span_id` is that span's own parent where the format carries it (B3, Jaeger).
    `trace_state` is a W3C `tracestate` value, already validated. `baggage` is frozen.
    """

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None = None
    sampled: bool | None = None
    debug: bool = False
    trace_id_64bit: bool = False
    random_trace_id: bool = False  # W3C Level 2 flag 0x02: kept unchanged while the trace lasts
    firehose: bool = False  # Jaeger flag 0x08: sampled but not indexed
    trace_state: str = ""
    baggage: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    request_id: str = ""

    def __post_init__(self) -> None:
        # Comparisons with zero ids rather than any(): this runs for every context of every
        # request through a proxy.
        trace_id, span_id, parent = self.trace_id, self.span_id, self.parent_span_id
        if len(trace_id) != TRACE_ID_SIZE or trace_id == _ZERO_TRACE:
            raise ValueError("trace_id must be 16 bytes, not all zero")
        if len(span_id) != SPAN_ID_SIZE or span_id == _ZERO_SPAN:
            raise ValueError("span_id must be 8 bytes, not all zero")
        if parent is not None:
            if len(parent) != SPAN_ID_SIZE:
                raise ValueError("parent_span_id must be 8 bytes")
            if parent == _ZERO_SPAN:
                object.__setattr__(self, "parent_span_id", None)  # zero parent means root
        if self.trace_id_64bit and trace_id[:8] != _ZERO_SPAN:
            raise ValueError("a 64-bit trace id must have a zero high half")
        if self.debug and self.sampled is not True:
            object.__setattr__(self, "sampled", True)
        if type(self.baggage) is not MappingProxyType:
            object.__setattr__(self, "baggage", MappingProxyType(dict(self.baggage)))

    @classmethod
    def new_root(
        cls,
        *,
        sampled: bool | None = None,
        debug: bool = False,
        baggage: Mapping[str, str] = _EMPTY,
        request_id: str = "",
        trace_id_64bit: bool = False,
    ) -> SpanContext:
        """Start a new trace: random ids (a zero high half when `trace_id_64bit`), no parent."""
        trace_id = bytes(8) + new_span_id() if trace_id_64bit else new_trace_id()
        span_id = new_span_id()
        return cls(
            trace_id, span_id, None, sampled, debug, trace_id_64bit, False, False, "", baggage,
            request_id,
        )  # fmt: skip

    def child(self, span_id: bytes | None = None) -> SpanContext:
        """The context of a span started under this one: a new span id, this span as parent."""
        return self.child_with(self.sampled, self.request_id, span_id)

    def child_with(
        self, sampled: bool | None, request_id: str, span_id: bytes | None = None
    ) -> SpanContext:
        """`child()` with its sampling decision and request id replaced, built in one go (a
        proxy does this for every request, and `replace` costs several times as much)."""
        return SpanContext(
            self.trace_id, span_id or new_span_id(), self.span_id, sampled, self.debug,
            self.trace_id_64bit, self.random_trace_id, self.firehose, self.trace_state,
            self.baggage, request_id,
        )  # fmt: skip

    def with_request(
        self, baggage: Mapping[str, str], request_id: str, debug: bool = False
    ) -> SpanContext:
        """This context with `baggage` and `request_id`, and debug when `debug` (else as is)."""
        return SpanContext(
            self.trace_id, self.span_id, self.parent_span_id, self.sampled, debug or self.debug,
            self.trace_id_64bit, self.random_trace_id, self.firehose, self.trace_state,
            baggage, request_id,
        )  # fmt: skip

    def with_baggage(self, baggage: Mapping[str, str]) -> SpanContext:
        return replace(self, baggage=baggage)

    def __repr__(self) -> str:
        parent = self.parent_span_id.hex() if self.parent_span_id is not None else None
        flags = [
            name
            for name, on in (
                ("debug", self.debug),
                ("64bit", self.trace_id_64bit),
                ("random", self.random_trace_id),
                ("firehose", self.firehose),
            )
            if on
        ]
        return (
            f"SpanContext({self.trace_id.hex()}:{self.span_id.hex()} parent={parent}"
            f" sampled={self.sampled} flags={flags} trace_state={self.trace_state!r}"
            f" baggage={dict(self.baggage)!r} request_id={self.request_id!r})"
        )

    @property
    def trace_id_hex(self) -> str:
        """16 hex digits for a 64-bit trace id, else 32: how B3 and Jaeger write it back."""
        return self.trace_id[8:].hex() if self.trace_id_64bit else self.trace_id.hex()

    @property
    def span_id_hex(self) -> str:
        return self.span_id.hex()


@dataclass(frozen=True, slots=True)
class SamplingFlags:
    """A sampling decision that arrived without ids (`b3: 0`, a lone `X-B3-Sampled`)."""

    sampled: bool | None = None
    debug: bool = False
