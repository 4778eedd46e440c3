"""Index names, as Jaeger names them: daily `[prefix-]jaeger-span-YYYY-MM-DD` (UTC date of the
span's start), or in rollover mode the `-write` alias for writes and `-read` for reads."""

from __future__ import annotations

import time

from tracemesh.storage.elasticsearch.config import ElasticConfig
from tracemesh.storage.elasticsearch.mappings import SERVICE, SPAN

DAY_NS = 86_400 * 1_000_000_000


def day(time_ns: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time_ns // 1_000_000_000))


class Indices:
    def __init__(self, config: ElasticConfig) -> None:
        self.config = config
        self.aliases = config.use_aliases
        self.span_base = config.prefixed(SPAN) + "-"
        self.service_base = config.prefixed(SERVICE) + "-"

    def write_span(self, start_ns: int) -> str:
        return self.span_base + ("write" if self.aliases else day(start_ns))

    def write_service(self, start_ns: int) -> str:
        return self.service_base + ("write" if self.aliases else day(start_ns))

    def read_spans(self, start_ns: int | None, end_ns: int | None) -> str:
        """Indices that may hold spans started in [start, end]; every one when a bound is open."""
        return self._read(self.span_base, start_ns, end_ns)

    def read_services(self) -> str:
        now = time.time_ns()
        return self._read(self.service_base, now - int(self.config.max_span_age * 1e9), now)

    def _read(self, base: str, start_ns: int | None, end_ns: int | None) -> str:
        if self.aliases:
            return base + "read"
        if start_ns is None or end_ns is None:
            return base + "*"
        first, last = start_ns // DAY_NS, max(end_ns, start_ns) // DAY_NS
        if last - first > 60:  # a long window: one pattern keeps the URL short
            return base + "*"
        return ",".join(base + day(d * DAY_NS) for d in range(last, first - 1, -1))
