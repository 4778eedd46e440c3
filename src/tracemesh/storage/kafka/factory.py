"""`KafkaStorage`: Kafka as a write-only span store, the buffer of the streaming deployment.

A collector with `--storage kafka` writes every span to a topic; `tracemesh ingester` reads the
topic and writes to a store that can be queried. Reading from Kafka is not possible: the readers
raise `StorageError`, and a process that would serve queries from it refuses to start.
"""

from __future__ import annotations

from typing import NoReturn

from tracemesh.model.dependency import DependencyLink
from tracemesh.model.query import Operation, TraceQuery
from tracemesh.model.span import Span, SpanKind
from tracemesh.storage.api import Capabilities, StorageError
from tracemesh.storage.kafka.config import KafkaProducerConfig
from tracemesh.storage.kafka.writer import KafkaWriter

CAPABILITIES = Capabilities(
    computes_dependencies=False,
    persistent=True,  # acknowledged by the brokers
    shared_between_processes=True,  # ingesters in other processes read it
)


def _write_only() -> NoReturn:
    raise StorageError("kafka storage is write-only: query the store an ingester writes to")


class WriteOnlyReader:
    async def get_trace(
        self, trace_id: bytes, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[Span]:
        _write_only()

    async def find_traces(self, query: TraceQuery) -> list[list[Span]]:
        _write_only()

    async def get_services(self) -> list[str]:
        _write_only()

    async def get_operations(
        self, service: str, span_kind: SpanKind | None = None
    ) -> list[Operation]:
        _write_only()

    async def get_dependencies(self, end_ns: int, lookback_ns: int) -> list[DependencyLink]:
        _write_only()


class KafkaStorage:
    name = "kafka"
    capabilities = CAPABILITIES
    # A client's batch is acknowledged only once Kafka acknowledged it (the pipeline's confirm).
    confirms_writes = True

    def __init__(self, config: KafkaProducerConfig | None = None) -> None:
        self.config = config or KafkaProducerConfig()
        self._writer = KafkaWriter(self.config)
        self._reader = WriteOnlyReader()

    async def start(self) -> None:
        self._writer.start()

    async def check(self) -> bool:
        return await self._writer.check()

    async def close(self) -> None:
        await self._writer.close()

    def writer(self) -> KafkaWriter:
        return self._writer

    def reader(self) -> WriteOnlyReader:
        return self._reader

    def dependency_reader(self) -> WriteOnlyReader:
        return self._reader
