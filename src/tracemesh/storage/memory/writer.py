"""The memory backend's writer: a batch is stored in one synchronous step."""

from __future__ import annotations

from tracemesh.model.batch import SpanBatch
from tracemesh.storage.memory.store import MemoryStore


class MemoryWriter:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def write(self, batch: SpanBatch) -> None:
        # No await inside: readers on the event loop see the whole batch or none of it.
        self._store.add(batch)
