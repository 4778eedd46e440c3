"""The Jaeger (jaeger.thrift, agent.thrift) and Zipkin v1 (zipkincore.thrift) Thrift structs,
declared by hand the way the Apache Thrift compiler declares them, so that the fastbinary C
extension reads and writes them under TBinaryProtocolAccelerated and TCompactProtocolAccelerated,
and the functions that read and write them with the limits hostile input calls for.

Each class carries a `thrift_spec` tuple indexed by field id: `(id, TType, attribute, type
arguments, default)`. A struct's type arguments are `[class, spec]`; a list's are `(element TType,
element type arguments, immutable)`; a string's are `"UTF8"` (decoded to `str`) or `"BINARY"`
(kept as `bytes`). Every `__init__` takes each field by name, defaulting to None, as generated
code does; every field also defaults at class level, which lets `decode_struct` skip `__init__`.
Nothing here checks required fields: the codecs decide what a missing field means.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated
from thrift.protocol.TCompactProtocol import TCompactProtocolAccelerated
from thrift.Thrift import TException, TMessageType, TType
from thrift.transport.TTransport import CReadableTransport, TMemoryBuffer

SpecEntry = tuple[int, int, str, Any, Any] | None
Spec = tuple[SpecEntry, ...]


class ThriftStruct:
    """Generated-style `read`/`write`: fastbinary when the protocol has it, else pure Python."""

    thrift_spec: ClassVar[Spec] = ()

    def __init_subclass__(cls) -> None:
        # Every field also defaults at class level, so an instance fastbinary filled in without
        # running __init__ (see `_reader`) reads an absent field as its default, None.
        super().__init_subclass__()
        for entry in cls.thrift_spec:
            if entry is not None and not hasattr(cls, entry[2]):
                setattr(cls, entry[2], entry[4])

    def read(self, iprot: Any) -> None:
        fast = iprot._fast_decode
        if fast is not None and isinstance(iprot.trans, CReadableTransport):
            fast(self, iprot, [type(self), self.thrift_spec])
        else:
            iprot.readStruct(self, self.thrift_spec)

    def write(self, oprot: Any) -> None:
        fast = oprot._fast_encode
        if fast is not None:
            oprot.trans.write(fast(self, [type(self), self.thrift_spec]))
        else:
            oprot.writeStruct(self, self.thrift_spec)

    @classmethod
    def field_names(cls) -> list[str]:
        """Attribute names in field-id order."""
        return [entry[2] for entry in cls.thrift_spec if entry is not None]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ThriftStruct) or other.thrift_spec is not self.thrift_spec:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.field_names())

    __hash__ = None  # type: ignore[assignment]  # mutable, like generated structs

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.field_names())
        return f"{type(self).__name__}({shown})"


def _struct(cls: type[ThriftStruct]) -> list[Any]:
    return [cls, cls.thrift_spec]


def _list_of(cls: type[ThriftStruct]) -> tuple[int, list[Any], bool]:
    return (TType.STRUCT, _struct(cls), False)


_S, _I32, _I64 = TType.STRING, TType.I32, TType.I64


# ---- jaeger.thrift -----------------------------------------------------------------------------


class TagType:
    STRING = 0
    DOUBLE = 1
    BOOL = 2
    LONG = 3
    BINARY = 4


class SpanRefType:
    CHILD_OF = 0
    FOLLOWS_FROM = 1


class Tag(ThriftStruct):
    thrift_spec = (
        None,
        (1, _S, "key", "UTF8", None),
        (2, _I32, "vType", None, None),
        (3, _S, "vStr", "UTF8", None),
        (4, TType.DOUBLE, "vDouble", None, None),
        (5, TType.BOOL, "vBool", None, None),
        (6, _I64, "vLong", None, None),
        (7, _S, "vBinary", "BINARY", None),
    )

    def __init__(
        self,
        key: str | None = None,
        vType: int | None = None,
        vStr: str | None = None,
        vDouble: float | None = None,
        vBool: bool | None = None,
        vLong: int | None = None,
        vBinary: bytes | None = None,
    ) -> None:
        self.key = key
        self.vType = vType
        self.vStr = vStr
        self.vDouble = vDouble
        self.vBool = vBool
        self.vLong = vLong
        self.vBinary = vBinary


class Log(ThriftStruct):
    thrift_spec = (
        None,
        (1, _I64, "timestamp", None, None),
        (2, TType.LIST, "fields", _list_of(Tag), None),
    )

    def __init__(self, timestamp: int | None = None, fields: list[Tag] | None = None) -> None:
        self.timestamp = timestamp
        self.fields = fields


class SpanRef(ThriftStruct):
    thrift_spec = (
        None,
        (1, _I32, "refType", None, None),
        (2, _I64, "traceIdLow", None, None),
        (3, _I64, "traceIdHigh", None, None),
        (4, _I64, "spanId", None, None),
    )

    def __init__(
        self,
        refType: int | None = None,
        traceIdLow: int | None = None,
        traceIdHigh: int | None = None,
        spanId: int | None = None,
    ) -> None:
        self.refType = refType
        self.traceIdLow = traceIdLow
        self.traceIdHigh = traceIdHigh
        self.spanId = spanId


class Span(ThriftStruct):
    thrift_spec = (
        None,
        (1, _I64, "traceIdLow", None, None),
        (2, _I64, "traceIdHigh", None, None),
        (3, _I64, "spanId", None, None),
        (4, _I64, "parentSpanId", None, None),
        (5, _S, "operationName", "UTF8", None),
        (6, TType.LIST, "references", _list_of(SpanRef), None),
        (7, _I32, "flags", None, None),
        (8, _I64, "startTime", None, None),
        (9, _I64, "duration", None, None),
        (10, TType.LIST, "tags", _list_of(Tag), None),
        (11, TType.LIST, "logs", _list_of(Log), None),
    )

    def __init__(
        self,
        traceIdLow: int | None = None,
        traceIdHigh: int | None = None,
        spanId: int | None = None,
        parentSpanId: int | None = None,
        operationName: str | None = None,
        references: list[SpanRef] | None = None,
        flags: int | None = None,
        startTime: int | None = None,
        duration: int | None = None,
        tags: list[Tag] | None = None,
        logs: list[Log] | None = None,
    ) -> None:
        self.traceIdLow = traceIdLow
        self.traceIdHigh = traceIdHigh
        self.spanId = spanId
        self.parentSpanId = parentSpanId
        self.operationName = operationName
        self.references = references
        self.flags = flags
        self.startTime = startTime
        self.duration = duration
        self.tags = tags
        self.logs = logs


class Process(ThriftStruct):
    thrift_spec = (
        None,
        (1, _S, "serviceName", "UTF8", None),
        (2, TType.LIST, "tags", _list_of(Tag), None),
    )

    def __init__(self, serviceName: str | None = None, tags: list[Tag] | None = None) -> None:
        self.serviceName = serviceName
        self.tags = tags


class ClientStats(ThriftStruct):
    thrift_spec = (
        None,
        (1, _I64, "fullQueueDroppedSpans", None, None),
        (2, _I64, "tooLargeDroppedSpans", None, None),
        (3, _I64, "failedToEmitSpans", None, None),
    )

    def __init__(
        self,
        fullQueueDroppedSpans: int | None = None,
        tooLargeDroppedSpans: int | None = None,
        failedToEmitSpans: int | None = None,
    ) -> None:
        self.fullQueueDroppedSpans = fullQueueDroppedSpans
        self.tooLargeDroppedSpans = tooLargeDroppedSpans
        self.failedToEmitSpans = failedToEmitSpans


class Batch(ThriftStruct):
    thrift_spec = (
        None,
        (1, TType.STRUCT, "process", _struct(Process), None),
        (2, TType.LIST, "spans", _list_of(Span), None),
        (3, _I64, "seqNo", None, None),
        (4, TType.STRUCT, "stats", _struct(ClientStats), None),
    )

    def __init__(
        self,
        process: Process | None = None,
        spans: list[Span] | None = None,
        seqNo: int | None = None,
        stats: ClientStats | None = None,
    ) -> None:
        self.process = process
        self.spans = spans
        self.seqNo = seqNo
        self.stats = stats


# ---- zipkincore.thrift -------------------------------------------------------------------------


class AnnotationType:
    BOOL = 0
    BYTES = 1
    I16 = 2
    I32 = 3
    I64 = 4
    DOUBLE = 5
    STRING = 6


class Endpoint(ThriftStruct):
    thrift_spec = (
        None,
        (1, _I32, "ipv4", None, None),
        (2, TType.I16, "port", None, None),
        (3, _S, "service_name", "UTF8", None),
        (4, _S, "ipv6", "BINARY", None),
    )

    def __init__(
        self,
        ipv4: int | None = None,
        port: int | None = None,
        service_name: str | None = None,
        ipv6: bytes | None = None,
    ) -> None:
        self.ipv4 = ipv4
        self.port = port
        self.service_name = service_name
        self.ipv6 = ipv6


class Annotation(ThriftStruct):
    thrift_spec = (
        None,
        (1, _I64, "timestamp", None, None),
        (2, _S, "value", "UTF8", None),
        (3, TType.STRUCT, "host", _struct(Endpoint), None),
    )

    def __init__(
        self, timestamp: int | None = None, value: str | None = None, host: Endpoint | None = None
    ) -> None:
        self.timestamp = timestamp
        self.value = value
        self.host = host


class BinaryAnnotation(ThriftStruct):
    thrift_spec = (
        None,
        (1, _S, "key", "UTF8", None),
        (2, _S, "value", "BINARY", None),
        (3, _I32, "annotation_type", None, None),
        (4, TType.STRUCT, "host", _struct(Endpoint), None),
    )

    def __init__(
        self,
        key: str | None = None,
        value: bytes | None = None,
        annotation_type: int | None = None,
        host: Endpoint | None = None,
    ) -> None:
        self.key = key
        self.value = value
        self.annotation_type = annotation_type
        self.host = host


class ZipkinSpan(ThriftStruct):
    """zipkincore.thrift's `Span` (renamed here: jaeger.thrift has a `Span` too)."""

    thrift_spec = (
        None,
        (1, _I64, "trace_id", None, None),
        None,
        (3, _S, "name", "UTF8", None),
        (4, _I64, "id", None, None),
        (5, _I64, "parent_id", None, None),
        (6, TType.LIST, "annotations", _list_of(Annotation), None),
        None,
        (8, TType.LIST, "binary_annotations", _list_of(BinaryAnnotation), None),
        (9, TType.BOOL, "debug", None, False),
        (10, _I64, "timestamp", None, None),
        (11, _I64, "duration", None, None),
        (12, _I64, "trace_id_high", None, None),
    )

    def __init__(
        self,
        trace_id: int | None = None,
        name: str | None = None,
        id: int | None = None,
        parent_id: int | None = None,
        annotations: list[Annotation] | None = None,
        binary_annotations: list[BinaryAnnotation] | None = None,
        debug: bool | None = False,
        timestamp: int | None = None,
        duration: int | None = None,
        trace_id_high: int | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.name = name
        self.id = id
        self.parent_id = parent_id
        self.annotations = annotations
        self.binary_annotations = binary_annotations
        self.debug = debug
        self.timestamp = timestamp
        self.duration = duration
        self.trace_id_high = trace_id_high


# ---- agent.thrift: the argument structs of the two oneway methods ------------------------------

EMIT_BATCH = "emitBatch"
EMIT_ZIPKIN_BATCH = "emitZipkinBatch"


class EmitBatchArgs(ThriftStruct):
    """`Agent.emitBatch(1: jaeger.Batch batch)`."""

    thrift_spec = (None, (1, TType.STRUCT, "batch", _struct(Batch), None))

    def __init__(self, batch: Batch | None = None) -> None:
        self.batch = batch


class EmitZipkinBatchArgs(ThriftStruct):
    """`Agent.emitZipkinBatch(1: list<zipkincore.Span> spans)`."""

    thrift_spec = (None, (1, TType.LIST, "spans", _list_of(ZipkinSpan), None))

    def __init__(self, spans: list[ZipkinSpan] | None = None) -> None:
        self.spans = spans


# ---- reading and writing -----------------------------------------------------------------------

PROTOCOLS = ("compact", "binary")
_COMPACT_PROTOCOL_ID = 0x82
_BINARY_VERSION_BYTE = 0x80
# What can go wrong inside thrift's readers (pure Python or fastbinary) on bad input.
_WIRE_ERRORS = (
    TException,
    EOFError,
    ValueError,
    TypeError,
    OverflowError,
    IndexError,
    struct.error,
)

T = TypeVar("T", bound=ThriftStruct)


class ThriftError(ValueError):
    """Bytes that are not the expected Thrift message or struct; the codecs re-raise it as
    `tracemesh.codecs.DecodeError` (kept separate so this module stays free of the model)."""


def decode_struct(
    data: bytes,
    cls: type[T],
    protocol: str,
    offset: int = 0,
    repair: Callable[[ThriftStruct], None] | None = None,
) -> T:
    """The bare struct at `data[offset:]`; trailing bytes are ignored.

    Every string and container length is capped at the input's length: no element takes less
    than a byte, so a bigger count is a lie and is refused before anything is allocated.
    """
    if repair is not None:
        # thrift's C reader replaces bad UTF-8 silently: read every string as bytes, so that
        # `repair` sees what was broken (the accelerators take the valid input before this).
        struct_ = _read(data, offset, cls, protocol, lenient=True)
        repair(struct_)
        return struct_
    try:
        return _read(data, offset, cls, protocol, lenient=False)
    except UnicodeDecodeError:
        # One client string that is not UTF-8 should not cost the whole batch: read strings as
        # bytes and repair them with U+FFFD, as a Go receiver's JSON encoder would.
        struct_ = _read(data, offset, cls, protocol, lenient=True)
        repair_strings(struct_)
        return struct_


def decode_message(
    data: bytes,
    protocol: str,
    methods: dict[str, type[ThriftStruct]],
    repair: Callable[[ThriftStruct], None] | None = None,
) -> tuple[str, int, ThriftStruct]:
    """Read a message envelope (CALL or ONEWAY) and its argument struct: (name, seqid, args)."""
    _check_protocol_marker(data, protocol)
    trans = TMemoryBuffer(data)
    try:
        name, kind, seqid = _protocol(trans, protocol, len(data)).readMessageBegin()
    except _WIRE_ERRORS as exc:
        raise ThriftError(f"bad Thrift {protocol} message header: {_describe(exc)}") from None
    args_type = methods.get(name)
    if args_type is None:
        expected = " or ".join(sorted(methods))
        raise ThriftError(f"unknown method {name[:100]!r}; expected {expected}")
    if kind not in (TMessageType.CALL, TMessageType.ONEWAY):
        raise ThriftError(f"message type {kind} is not a call (expected ONEWAY or CALL)")
    return name, seqid, decode_struct(data, args_type, protocol, trans.cstringio_buf.tell(), repair)


def encode_struct(struct_: ThriftStruct, protocol: str) -> bytes:
    trans = TMemoryBuffer()
    struct_.write(_protocol(trans, protocol, 0))
    return bytes(trans.getvalue())


def encode_message(name: str, seqid: int, args: ThriftStruct, protocol: str) -> bytes:
    """A ONEWAY message: what a client's `Agent.emitBatch` call puts in a datagram."""
    trans = TMemoryBuffer()
    prot = _protocol(trans, protocol, 0)
    prot.writeMessageBegin(name, TMessageType.ONEWAY, seqid)
    args.write(prot)
    prot.writeMessageEnd()
    return bytes(trans.getvalue())


def repair_strings(value: ThriftStruct) -> bool:
    """Turn `bytes` left in UTF8 string fields (by a lenient read) into text, bad bytes into
    U+FFFD; True when there were bad bytes."""
    bad = False
    for entry in value.thrift_spec:
        if entry is None:
            continue
        _, ttype, name, args, _ = entry
        field = getattr(value, name)
        if field is None:
            continue
        if ttype == TType.STRING and args != "BINARY" and isinstance(field, bytes):
            try:
                setattr(value, name, field.decode("utf-8"))
            except UnicodeDecodeError:
                setattr(value, name, field.decode("utf-8", "replace"))
                bad = True
        elif ttype == TType.STRUCT:
            bad = repair_strings(field) or bad
        elif ttype == TType.LIST and args[0] == TType.STRUCT:
            for item in field:
                bad = repair_strings(item) or bad
    return bad


def _read(data: bytes, offset: int, cls: type[T], protocol: str, *, lenient: bool) -> T:
    trans = TMemoryBuffer(data, offset)
    prot = _protocol(trans, protocol, len(data))
    reader, spec = _reader_spec(cls, lenient)
    struct_ = reader()
    try:
        if prot._fast_decode is not None:
            prot._fast_decode(struct_, prot, [reader, spec])
        else:  # no C extension: thrift's pure-Python reader, same limits
            prot.readStruct(struct_, spec)
    except UnicodeDecodeError:
        raise
    except _WIRE_ERRORS as exc:
        raise ThriftError(f"bad Thrift {protocol} {cls.__name__}: {_describe(exc)}") from None
    return struct_


def _protocol(trans: Any, protocol: str, limit: int) -> Any:
    limits = {"string_length_limit": limit or None, "container_length_limit": limit or None}
    if protocol == "compact":
        return TCompactProtocolAccelerated(trans, **limits)
    if protocol == "binary":
        return TBinaryProtocolAccelerated(trans, **limits)
    raise ValueError(f"unknown Thrift protocol {protocol!r}; use one of {PROTOCOLS}")


def _check_protocol_marker(data: bytes, protocol: str) -> None:
    """Name the usual mistake, a datagram of the other protocol, before thrift trips over it."""
    if not data:
        raise ThriftError("empty message")
    first = data[0]
    if protocol == "compact" and first != _COMPACT_PROTOCOL_ID:
        binary = first == _BINARY_VERSION_BYTE
        hint = " (Thrift binary protocol? use the binary port)" if binary else ""
        raise ThriftError(f"not a Thrift compact message: first byte is 0x{first:02x}{hint}")
    if protocol == "binary" and first == _COMPACT_PROTOCOL_ID:
        raise ThriftError(
            "not a Thrift binary message: first byte is 0x82 (Thrift compact protocol? "
            "use the compact port)"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "truncated (input ended early)"
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(text)[:200]


# ---- reader classes: decoding without running __init__ -----------------------------------------

_readers: dict[type[ThriftStruct], type[ThriftStruct]] = {}
_reader_specs: dict[tuple[type[ThriftStruct], bool], Spec] = {}
_readers_work: bool | None = None


def _reader(cls: type[T]) -> type[T]:
    """A subclass whose __init__ is object's: fastbinary builds each nested struct with `cls()` and
    then sets the fields it read, so a Python __init__ that first sets every field to None costs
    about a quarter of the decode time of a span with ten tags, for nothing."""
    global _readers_work
    if _readers_work is None:
        _readers_work = True
        _readers_work = _probe_readers()
        if not _readers_work:
            _readers.clear()
            _reader_specs.clear()
    if not _readers_work:
        return cls
    reader = _readers.get(cls)
    if reader is None:
        attrs = {"__init__": object.__init__, "__qualname__": cls.__qualname__}
        reader = _readers[cls] = type(cls.__name__, (cls,), attrs)
    return reader  # type: ignore[return-value]


def _probe_readers() -> bool:
    """Whether this thrift builds nested structs without passing their fields to the class."""
    try:
        data = encode_struct(Log(timestamp=1, fields=[Tag(key="k", vStr="v")]), "binary")
        log = _read(data, 0, Log, "binary", lenient=False)
        return bool(log.fields and log.fields[0].vStr == "v" and log.fields[0].vLong is None)
    except Exception:
        return False


def _reader_spec(cls: type[T], lenient: bool) -> tuple[type[T], Spec]:
    """`cls`'s reader class and its spec, with reader classes nested (and, when lenient, every
    UTF8 string read as BINARY)."""
    spec = _reader_specs.get((cls, lenient))
    if spec is None:
        spec = tuple(_reader_entry(entry, lenient) for entry in cls.thrift_spec)
        _reader_specs[(cls, lenient)] = spec
    return _reader(cls), spec


def _reader_entry(entry: SpecEntry, lenient: bool) -> SpecEntry:
    if entry is None:
        return None
    fid, ttype, name, args, default = entry
    return (fid, ttype, name, _reader_args(ttype, args, lenient), default)


def _reader_args(ttype: int, args: Any, lenient: bool) -> Any:
    if ttype == TType.STRING:
        return "BINARY" if lenient else args
    if ttype == TType.STRUCT:
        return list(_reader_spec(args[0], lenient))
    if ttype == TType.LIST:
        return (args[0], _reader_args(args[0], args[1], lenient), args[2])
    return args
