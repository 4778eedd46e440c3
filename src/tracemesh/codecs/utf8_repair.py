"""Protobuf bytes with strings that are not UTF-8, rewritten so the parser takes them.

protobuf refuses a whole message for one bad `string` field, and with it every span of a batch.
Run only after a parse failed, `repair` walks the wire bytes guided by the message's descriptor
and rewrites each bad string as Jaeger does: a span name becomes `INVALID_NAME`, an attribute
value becomes bytes, an attribute key gets a generated name (`invalid-utf8-key-N`), any other
string has its bad bytes replaced by U+FFFD. Each span then carries what was changed in it (and
in its resource or scope) as warnings, written in the way `Rules.warnings` says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from tracemesh.codecs import DecodeError
from tracemesh.codecs.protowire import encode_varint, length_delimited, read_varint

INVALID_NAME = "invalid-utf8-span-name"
KEY_PREFIX = "invalid-utf8-key-"


@dataclass(frozen=True, slots=True)
class Rules:
    """How one protocol's messages are repaired. Field names are descriptor full names."""

    span: str  # the message that carries warnings
    warnings: Callable[[list[str]], bytes]  # fields appended to a span to hold its warnings
    names: frozenset[str] = frozenset()  # replaced by INVALID_NAME
    keys: frozenset[str] = frozenset()  # replaced by a generated key
    # a string value -> (the bytes field to move it to, fields appended to its message)
    values: dict[str, tuple[int, bytes]] = field(default_factory=dict)


@dataclass(slots=True)
class Repair:
    data: bytes
    spans: int = 0  # spans that carry a repair warning
    _keys: int = 0

    def next_key(self) -> str:
        self._keys += 1
        return f"{KEY_PREFIX}{self._keys}"


def repair(data: bytes, descriptor: Any, rules: Rules) -> Repair:
    """The rewritten bytes and how many spans were changed; DecodeError for broken framing.
    `descriptor` is a message class's DESCRIPTOR (upb's or the pure-Python one)."""
    out = Repair(b"")
    try:
        out.data, _ = _walk(data, descriptor, rules, [], out, 0)
    except IndexError:
        raise DecodeError("truncated protobuf") from None
    return out


MAX_DEPTH = 64  # OTLP nests AnyValues; a deeper message is an attack, not a span


def _walk(
    data: bytes, desc: Descriptor, rules: Rules, inherited: list[str], out: Repair, depth: int
) -> tuple[bytes, list[str]]:
    if depth > MAX_DEPTH:
        raise DecodeError("protobuf nested too deeply")
    pos, end = 0, len(data)
    pieces: list[bytes] = []
    warnings: list[str] = []
    extra = b""
    later: list[tuple[int, int, bytes, Descriptor]] = []
    while pos < end:
        begin = pos
        tag, pos = read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            _, pos = read_varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == 2:
            length, pos = read_varint(data, pos)
            body = data[pos : pos + length]
            pos += length
            if pos > end:
                raise DecodeError("truncated protobuf")
            fd = desc.fields_by_number.get(number)
            if fd is not None and fd.type == FieldDescriptor.TYPE_STRING:
                repaired = _string(fd, number, body, rules, out)
                if repaired is not None:
                    pieces.append(repaired[0])
                    extra += repaired[1]
                    warnings.append(repaired[2])
                    continue
            elif fd is not None and fd.message_type is not None:
                if _carries(fd.message_type, rules.span):
                    # after this message's own fields: their warnings go down to its spans
                    later.append((len(pieces), number, body, fd.message_type))
                    pieces.append(b"")
                    continue
                inner, found = _walk(body, fd.message_type, rules, [], out, depth + 1)
                pieces.append(length_delimited(number, inner))
                if desc.full_name != rules.span and _carries(desc, rules.span):
                    found = [f"{fd.name}: {text}" for text in found]  # "resource: ..."
                warnings += found
                continue
        else:
            raise DecodeError(f"unsupported protobuf wire type {wire_type}")
        if pos > end:
            raise DecodeError("truncated protobuf")
        pieces.append(data[begin:pos])
    for index, number, body, inner_desc in later:
        inner, _ = _walk(body, inner_desc, rules, inherited + warnings, out, depth + 1)
        pieces[index] = length_delimited(number, inner)
    if desc.full_name == rules.span:
        everything = inherited + warnings
        if everything:
            out.spans += 1
            extra += rules.warnings(everything)
        return b"".join(pieces) + extra, []
    return b"".join(pieces) + extra, warnings


def _string(
    fd: FieldDescriptor, number: int, body: bytes, rules: Rules, out: Repair
) -> tuple[bytes, bytes, str] | None:
    """(the replacement field, fields to append to its message, the warning); None if valid."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return None
    name = fd.full_name
    if name in rules.values:
        moved, more = rules.values[name]
        return (
            length_delimited(moved, body),
            more,
            "an attribute value was not valid UTF-8; " + ("stored as bytes"),
        )
    if name in rules.keys:
        key = out.next_key()
        return (
            length_delimited(number, key.encode()),
            b"",
            f"an attribute key was not valid UTF-8; renamed {key!r}",
        )
    if name in rules.names:
        return (
            length_delimited(number, INVALID_NAME.encode()),
            b"",
            f"the span name was not valid UTF-8; replaced by {INVALID_NAME!r}",
        )
    fixed = body.decode("utf-8", "replace").encode()
    return (
        length_delimited(number, fixed),
        b"",
        f"{fd.name} was not valid UTF-8; bad bytes -> U+FFFD",
    )


@cache
def _carries(desc: Descriptor, span: str) -> bool:
    """Whether messages of this type are, or contain, spans (so warnings flow down to them)."""
    return _reaches(desc, span, frozenset())


def _reaches(desc: Descriptor, span: str, seen: frozenset[str]) -> bool:
    if desc.full_name == span:
        return True
    if desc.full_name in seen:
        return False
    seen = seen | {desc.full_name}
    return any(
        fd.message_type is not None and _reaches(fd.message_type, span, seen) for fd in desc.fields
    )


def varint_field(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)
