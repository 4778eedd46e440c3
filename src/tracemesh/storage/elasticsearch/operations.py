"""Index maintenance, as Jaeger's es-index-cleaner and es-rollover do it.

* `clean(days)`: deletes the daily indices (`jaeger-span-`, `-service-`, `-dependencies-`,
  `-sampling-`) whose date is before today minus `days` (UTC; `days=0` keeps nothing before
  tomorrow, as Jaeger's cleaner). With aliases (rollover mode) it goes by creation time instead
  and never deletes a write index.
* `rollover_init()`: puts the templates (with the read alias) and creates `jaeger-span-000001`
  and `jaeger-service-000001` behind the `-write` (is_write_index) and `-read` aliases.
* `rollover(conditions)`: rolls the write aliases over when the conditions hold (Jaeger's
  default `{"max_age": "2d"}`); the template adds each new index to the read alias.
* `lookback(seconds)`: takes indices created longer ago than `seconds` out of the read aliases
  (never the write index), so reads stop looking at them.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Any

from tracemesh.storage.elasticsearch.client import ElasticClient
from tracemesh.storage.elasticsearch.config import ElasticConfig
from tracemesh.storage.elasticsearch.indices import DAY_NS
from tracemesh.storage.elasticsearch.mappings import DEPENDENCIES, KINDS, SERVICE, SPAN, template

DAILY_KINDS = (*KINDS, "jaeger-sampling")
ROLLOVER_KINDS = (SPAN, SERVICE)
DEFAULT_CONDITIONS: dict[str, Any] = {"max_age": "2d"}


class IndexOperations:
    def __init__(self, config: ElasticConfig) -> None:
        self.config = config
        self.client = ElasticClient(config)

    async def close(self) -> None:
        await self.client.close()

    async def _indices(self) -> list[dict[str, Any]]:
        pattern = self.config.prefixed("jaeger-*")
        answer = await self.client.request(
            "GET", f"/_cat/indices/{pattern}",
            params={"format": "json", "h": "index,creation.date", "expand_wildcards": "open"},
        )  # fmt: skip
        return list(answer or [])

    async def clean(self, days: int, *, now_ns: int | None = None) -> list[str]:
        """Delete old indices; returns their names, sorted."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        before_ns = (now_ns // DAY_NS + 1) * DAY_NS - days * DAY_NS  # tomorrow 00:00 - days
        write = await self._write_indices() if self.config.use_aliases else set()
        names = {self.config.prefixed(kind) + "-": kind for kind in DAILY_KINDS}
        doomed: list[str] = []
        for row in await self._indices():
            name = str(row["index"])
            base = next((b for b in names if name.startswith(b)), None)
            if base is None or name in write:
                continue
            suffix = name[len(base) :]
            if self.config.use_aliases:
                if re.fullmatch(r"\d{6}", suffix) and int(row["creation.date"]) * 1_000_000 < (
                    before_ns
                ):
                    doomed.append(name)
                continue
            match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", suffix)
            if match is None:
                continue
            midnight = calendar.timegm(time.strptime(suffix, "%Y-%m-%d"))
            if midnight * 1_000_000_000 < before_ns:
                doomed.append(name)
        doomed.sort()
        for at in range(0, len(doomed), 50):  # a bounded URL per request
            await self.client.request("DELETE", "/" + ",".join(doomed[at : at + 50]))
        return doomed

    async def _write_indices(self) -> set[str]:
        out: set[str] = set()
        for kind in ROLLOVER_KINDS:
            alias = self.config.prefixed(kind) + "-write"
            answer = await self.client.request("GET", f"/_alias/{alias}", missing_ok=True) or {}
            for index, body in answer.items():
                if body.get("aliases", {}).get(alias, {}).get("is_write_index", True):
                    out.add(index)
        return out

    async def rollover_init(self) -> list[str]:
        """Templates, first indices and aliases; returns the indices created (none if they
        exist already)."""
        dialect = await self.client.dialect()
        config = self.config
        for kind in KINDS:
            path, body = template(kind, config, dialect.mapping_version)
            if kind != DEPENDENCIES:
                body.get("template", body)["aliases"] = {config.prefixed(kind) + "-read": {}}
            await self.client.request("PUT", path, body)
        created: list[str] = []
        for kind in ROLLOVER_KINDS:
            write = config.prefixed(kind) + "-write"
            if await self.client.request("GET", f"/_alias/{write}", missing_ok=True) is not None:
                continue
            first = config.prefixed(kind) + "-000001"
            body = {"aliases": {write: {"is_write_index": True},
                                config.prefixed(kind) + "-read": {}}}  # fmt: skip
            await self.client.request("PUT", f"/{first}", body)
            created.append(first)
        return created

    async def rollover(self, conditions: dict[str, Any] | None = None) -> dict[str, bool]:
        """Roll each write alias over when `conditions` hold; returns which rolled."""
        rolled: dict[str, bool] = {}
        for kind in ROLLOVER_KINDS:
            write = self.config.prefixed(kind) + "-write"
            body = {"conditions": DEFAULT_CONDITIONS if conditions is None else conditions}
            answer = await self.client.request("POST", f"/{write}/_rollover", body)
            rolled[kind] = bool(answer.get("rolled_over"))
        return rolled

    async def lookback(self, seconds: float, *, now_ns: int | None = None) -> list[str]:
        """Take indices older than `seconds` out of the read aliases; returns them."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        cutoff_ms = (now_ns - int(seconds * 1e9)) // 1_000_000
        write = await self._write_indices()
        created = {str(r["index"]): int(r["creation.date"]) for r in await self._indices()}
        actions: list[dict[str, Any]] = []
        removed: list[str] = []
        for kind in ROLLOVER_KINDS:
            read = self.config.prefixed(kind) + "-read"
            answer = await self.client.request("GET", f"/_alias/{read}", missing_ok=True) or {}
            for index in sorted(answer):
                if index not in write and created.get(index, cutoff_ms) < cutoff_ms:
                    actions.append({"remove": {"index": index, "alias": read}})
                    removed.append(index)
        if actions:
            await self.client.request("POST", "/_aliases", {"actions": actions})
        return removed
