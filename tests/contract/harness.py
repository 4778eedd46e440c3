"""Synchronous access to a started backend for the contract tests (see conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from tracemesh.codecs.otlp_proto import batch_from_spans
from tracemesh.model.dependency import DependencyLink
from tracemesh.model.query import Operation, TraceQuery
from tracemesh.model.span import Span, SpanKind
from tracemesh.storage.api import Storage

T = TypeVar("T")


class Backend:
    """Synchronous calls into a started `Storage`, so tests read as plain steps."""

    def __init__(
        self,
        storage: Storage,
        loop: asyncio.AbstractEventLoop,
        reopen: Callable[[], Storage] | None = None,
    ) -> None:
        self.storage = storage
        self.loop = loop
        self._reopen = reopen

    def restart(self) -> None:
        """Close the backend and start a new instance on the same place, as a process restart."""
        assert self._reopen is not None, "this backend cannot be reopened"
        self.run(self.storage.close())
        self.storage = self._reopen()
        self.run(self.storage.start())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def write(self, spans: Sequence[Span]) -> None:
        """One write call; spans sharing a Resource object form one group, as a receiver makes."""
        self.run(self.storage.writer().write(batch_from_spans(spans)))

    def get_trace(self, trace_id: bytes) -> list[Span]:
        return self.run(self.storage.reader().get_trace(trace_id))

    def find(self, query: TraceQuery | None = None, **filters: Any) -> list[list[Span]]:
        return self.run(self.storage.reader().find_traces(query or TraceQuery(**filters)))

    def services(self) -> list[str]:
        return self.run(self.storage.reader().get_services())

    def operations(self, service: str, kind: SpanKind | None = None) -> list[Operation]:
        return self.run(self.storage.reader().get_operations(service, kind))

    def dependencies(self, end_ns: int, lookback_ns: int) -> list[DependencyLink]:
        return self.run(self.storage.dependency_reader().get_dependencies(end_ns, lookback_ns))
