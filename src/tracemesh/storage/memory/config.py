"""Settings of the memory backend (`--memory.max-traces`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    # Jaeger's ring size: past it the oldest whole traces are evicted. 0 keeps everything (Jaeger
    # v1's meaning of 0), which is only sensible for tests and short demos.
    max_traces: int = 100_000

    def __post_init__(self) -> None:
        if self.max_traces < 0:
            raise ValueError(
                f"memory.max-traces must be 0 (unlimited) or more, got {self.max_traces}"
            )
