"""The canonical span: OTLP's shape (resource, scope, events, links, status) plus warnings.

Jaeger's references map onto it as OTLP's translator does: the parent is `parent_span_id`, every
other reference is a link whose `opentracing.ref_type` attribute says `child_of` or `follows_from`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum

from tracemesh.model.attributes import Attributes, AttrValue

REF_TYPE_KEY = "opentracing.ref_type"


class SpanKind(IntEnum):
    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5

    @property
    def jaeger_name(self) -> str:
        """Jaeger's lowercase `span.kind` value; unspecified has none."""
        return "" if self is SpanKind.UNSPECIFIED else self.name.lower()

    @classmethod
    def from_jaeger_name(cls, name: str) -> SpanKind:
        """`server` -> SERVER; empty or unknown -> UNSPECIFIED."""
        try:
            return cls[name.upper()] if name else cls.UNSPECIFIED
        except KeyError:
            return cls.UNSPECIFIED


class StatusCode(IntEnum):
    UNSET = 0
    OK = 1
    ERROR = 2


class RefType(Enum):
    CHILD_OF = "CHILD_OF"
    FOLLOWS_FROM = "FOLLOWS_FROM"


@dataclass(slots=True)
class Status:
    code: StatusCode = StatusCode.UNSET
    message: str = ""


@dataclass(slots=True)
class Event:
    """A timestamped annotation; Jaeger calls it a log and shows `name` as the field `event`."""

    time_ns: int
    name: str = ""
    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0


@dataclass(slots=True)
class Link:
    trace_id: bytes
    span_id: bytes
    trace_state: str = ""
    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0
    flags: int = 0

    @property
    def ref_type(self) -> RefType:
        """Jaeger's view of this link: FOLLOWS_FROM unless marked as an extra CHILD_OF."""
        if self.attributes.get(REF_TYPE_KEY) == "child_of":
            return RefType.CHILD_OF
        return RefType.FOLLOWS_FROM


@dataclass(slots=True)
class Resource:
    """The process that emitted spans: `service.name` plus process tags."""

    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0
    schema_url: str = ""

    @property
    def service_name(self) -> str:
        name = self.attributes.get("service.name")
        return name if isinstance(name, str) and name else "unknown_service"


@dataclass(slots=True)
class Scope:
    """The instrumentation library that made the span."""

    name: str = ""
    version: str = ""
    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0
    schema_url: str = ""


@dataclass(slots=True)
class Span:
    trace_id: bytes  # 16 bytes; a 64-bit id has a zero high half
    span_id: bytes  # 8 bytes
    name: str
    start_ns: int
    end_ns: int
    parent_span_id: bytes = b""  # empty for a root span
    kind: SpanKind = SpanKind.UNSPECIFIED
    attributes: Attributes = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    status: Status = field(default_factory=Status)
    trace_state: str = ""
    flags: int = 0  # OTLP span flags: low byte holds W3C trace flags (bit 0 = sampled)
    resource: Resource = field(default_factory=Resource)
    scope: Scope = field(default_factory=Scope)
    dropped_attributes_count: int = 0
    dropped_events_count: int = 0
    dropped_links_count: int = 0
    warnings: list[str] = field(default_factory=list)  # added by query-side adjusters, not stored

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def service_name(self) -> str:
        return self.resource.service_name

    @property
    def is_error(self) -> bool:
        """Error as Jaeger's search sees it: status ERROR or an `error` attribute that is true."""
        if self.status.code is StatusCode.ERROR:
            return True
        flag: AttrValue = self.attributes.get("error")
        return flag is True or flag == "true"


def references(span: Span) -> list[tuple[RefType, bytes, bytes]]:
    """Jaeger references: the parent as CHILD_OF first, then one per link."""
    refs: list[tuple[RefType, bytes, bytes]] = []
    if span.parent_span_id:
        refs.append((RefType.CHILD_OF, span.trace_id, span.parent_span_id))
    refs.extend((link.ref_type, link.trace_id, link.span_id) for link in span.links)
    return refs
