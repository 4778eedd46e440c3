"""Settings of the disk backend (`--disk.path`, `--disk.retention`, `--disk.max-bytes`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")


def parse_duration(text: str) -> int:
    """Go-style durations (`72h`, `1h30m`, `90s`, plus `d` for days) in nanoseconds; `0` is 0."""
    text = text.strip()
    if text == "0":
        return 0
    position, total = 0, 0.0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise ValueError(f"invalid duration {text!r}: use e.g. 72h, 30m, 1h30m or 7d")
        total += float(match.group(1)) * _UNITS_NS[match.group(2)]
        position = match.end()
    if not text:
        raise ValueError("empty duration: use e.g. 72h, 30m, 1h30m or 7d")
    return int(total)


@dataclass(frozen=True, slots=True)
class DiskConfig:
    path: str
    retention_ns: int = 72 * _UNITS_NS["h"]  # 0 keeps data regardless of age
    max_bytes: int = 0  # 0: no size limit
    # A log segment becomes an immutable block past this many spans or this age; blocks are the
    # unit of retention (a time partition) and of compression.
    seal_spans: int = 250_000
    seal_seconds: float = 300.0
    # False for processes that only read (`query`): they follow what the writer does.
    writable: bool = True

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("disk storage needs a directory: --disk.path DIR")
        if self.retention_ns < 0:
            raise ValueError(f"disk.retention must not be negative, got {self.retention_ns}")
        if self.max_bytes < 0:
            raise ValueError(f"disk.max-bytes must be 0 (no limit) or more, got {self.max_bytes}")
        if self.seal_spans < 1 or self.seal_seconds <= 0:
            raise ValueError("seal_spans and seal_seconds must be positive")
