"""Where receivers hand decoded spans: the pipeline in a collector, the forwarder in an agent."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from tracemesh.model.batch import SpanBatch


class BatchSink(Protocol):
    def submit(self, batch: SpanBatch, receiver: str, fmt: str) -> Awaitable[None] | None:
        """Take the batch now or raise without blocking: `QueueFullError` (retry later) or
        `PipelineClosedError` (shutting down), both from `tracemesh.collector.pipeline`. An
        awaitable returned means: acknowledge the client only once it completes (it raises
        `StorageError` when the batch could not be written)."""
