"""`MemoryStorage`: the memory backend as a `Storage` — what it can do, its writer and readers."""

from __future__ import annotations

from tracemesh.storage.api import Capabilities
from tracemesh.storage.memory.config import MemoryConfig
from tracemesh.storage.memory.reader import MemoryDependencyReader, MemoryReader
from tracemesh.storage.memory.store import MemoryStore
from tracemesh.storage.memory.writer import MemoryWriter

CAPABILITIES = Capabilities(
    search_without_service=True,
    span_kind_in_operations=True,
    tag_regex=False,
    computes_dependencies=True,
    persistent=False,
    shared_between_processes=False,
)


class MemoryStorage:
    """Newest `max_traces` traces in this process's RAM; gone on restart, invisible to others."""

    name = "memory"
    capabilities = CAPABILITIES

    def __init__(self, config: MemoryConfig | None = None) -> None:
        self.config = config or MemoryConfig()
        self._store = MemoryStore(self.config.max_traces)
        self._writer = MemoryWriter(self._store)
        self._reader = MemoryReader(self._store)
        self._dependency_reader = MemoryDependencyReader(self._store)

    async def start(self) -> None:
        pass  # nothing to open

    async def check(self) -> bool:
        return True

    async def close(self) -> None:
        self._store.clear()  # hand the memory back; a closed backend holds nothing

    def writer(self) -> MemoryWriter:
        return self._writer

    def reader(self) -> MemoryReader:
        return self._reader

    def dependency_reader(self) -> MemoryDependencyReader:
        return self._dependency_reader

    def stats(self) -> tuple[int, int]:
        """(traces held, spans held), for the storage gauges."""
        return len(self._store.traces), self._store.span_count
