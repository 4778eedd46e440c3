"""The size limits every baggage form shares, and the functions that apply them.

The numbers are the W3C baggage limits as written from 2020 to 2022 (180 members, 4096 bytes per
member, 8192 bytes in all); the current text only asks to propagate at least 64 members and 8192
bytes, which these satisfy. A member over a limit is dropped whole, never cut, as the spec says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

MAX_MEMBERS = 180
MAX_MEMBER_BYTES = 4096
MAX_BYTES = 8192


def utf8_size(key: str, value: str) -> int:
    """Bytes of `key=value` in UTF-8: how the merged baggage of a context is measured."""
    return len(key.encode("utf-8", "replace")) + 1 + len(value.encode("utf-8", "replace"))


def bounded(
    members: Iterable[tuple[str, str]],
    size: Callable[[str, str], int] = utf8_size,
    separator: int = 1,
) -> list[tuple[str, str]]:
    """The members, in order, that fit the limits; `size` measures one as it will be written.

    A member too large on its own, or one that would push the total past `MAX_BYTES`, is
    skipped and later smaller ones still get their chance; at most `MAX_MEMBERS` are kept.
    """
    kept: list[tuple[str, str]] = []
    total = 0
    for key, value in members:
        if len(kept) == MAX_MEMBERS:
            break
        if len(key) + len(value) >= MAX_MEMBER_BYTES:  # cheap bound before encoding anything
            continue
        cost = size(key, value)
        if cost > MAX_MEMBER_BYTES:
            continue
        extra = cost + (separator if kept else 0)
        if total + extra > MAX_BYTES:
            continue
        kept.append((key, value))
        total += extra
    return kept


def head(values: list[str], limit: int) -> str:
    """Header values joined by commas, cut after the last whole item within `limit` characters.

    Costs O(limit) however long the values are, so a 10 MB header is read no further than that.
    """
    pieces: list[str] = []
    used = 0
    for value in values:
        if used > limit:
            break
        piece = value[: limit + 1 - used]
        pieces.append(piece)
        used += len(piece) + 1
    text = ",".join(pieces)
    if len(text) <= limit:
        return text
    cut = text.rfind(",", 0, limit + 1)
    return text[:cut] if cut >= 0 else ""
