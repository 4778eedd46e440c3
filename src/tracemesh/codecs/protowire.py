"""Protobuf wire format by hand, for the few places where a generated message costs too much:
finding span bytes inside a request, encoding `google.rpc.Status`, and search pre-filters."""

from __future__ import annotations

from collections.abc import Sequence

from tracemesh.codecs import DecodeError


def encode_varint(value: int) -> bytes:
    """Base-128 varint of a non-negative int (callers mask negative int64s to 64 bits)."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(field: int, data: bytes) -> bytes:
    return encode_varint(field << 3 | 2) + encode_varint(len(data)) + data


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it)."""
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    result, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = data[pos]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos + 1
        shift += 7


def fields(data: bytes, pos: int, end: int, wanted: int) -> list[tuple[int, int]]:
    """Byte ranges of the length-delimited fields numbered `wanted` within data[pos:end]."""
    found: list[tuple[int, int]] = []
    while pos < end:
        tag, pos = read_varint(data, pos)
        wire_type = tag & 7
        if wire_type == 2:
            length, pos = read_varint(data, pos)
            if tag >> 3 == wanted:
                found.append((pos, pos + length))
            pos += length
        elif wire_type == 0:
            _, pos = read_varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:  # groups: obsolete, never in OTLP
            raise DecodeError(f"unsupported protobuf wire type {wire_type}")
    return found


def encode_status(code: int, message: str, details: Sequence[tuple[str, bytes]] = ()) -> bytes:
    """A serialized `google.rpc.Status` (code, message, details as (type_url, value) Anys).

    Hand-encoded because the googleapis protos are not a runtime dependency and the message
    has three fields."""
    out = bytearray()
    if code:
        out += b"\x08" + encode_varint(code)
    if message:
        out += length_delimited(2, message.encode())
    for type_url, value in details:
        out += length_delimited(
            3, length_delimited(1, type_url.encode()) + length_delimited(2, value)
        )
    return bytes(out)
