"""A service dependency: `parent` called `child` `call_count` times in the window."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DependencyLink:
    parent: str
    child: str
    call_count: int
    source: str = ""
