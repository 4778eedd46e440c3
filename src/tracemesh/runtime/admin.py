"""The admin port: `/health` (and `/`) in Jaeger's JSON shape, `/metrics` in Prometheus text."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HealthCheck = Callable[[], Awaitable[dict[str, bool]]]


class HasRegistry(Protocol):
    """What /metrics serves: any process's metrics object with its own registry."""

    @property
    def registry(self) -> CollectorRegistry: ...


def go_duration(seconds: float) -> str:
    """Go's time.Duration String(): `1h2m3.5s`, `4m0s`, `12.25s`."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def build_app(metrics: HasRegistry, check: HealthCheck) -> Starlette:
    """`check` reports each role's readiness; health is 200 only when every one is serving."""
    up_since = datetime.now(UTC)
    started = time.monotonic()

    async def health(_: Request) -> Response:
        roles = await check()
        ok = bool(roles) and all(roles.values())
        body = {
            "status": "Server available" if ok else "Server not available",
            "upSince": up_since.isoformat().replace("+00:00", "Z"),
            "uptime": go_duration(time.monotonic() - started),
            "roles": roles,
        }
        return Response(orjson.dumps(body), 200 if ok else 503, media_type="application/json")

    async def prometheus(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/", health),
            Route("/health", health),
            Route("/metrics", prometheus),
        ]
    )
