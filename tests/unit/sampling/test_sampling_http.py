"""The agent's sampling endpoints (port 5778) on a real socket: exact answers and errors, and the
real `jaeger-client` remote sampler adopting the strategies it reads from them."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from jaeger_client import Config
from jaeger_client.sampler import (
    AdaptiveSampler,
    ProbabilisticSampler,
    RateLimitingSampler,
    RemoteControlledSampler,
)

from tests.unit.collector.jaeger_tracers import close_tracer
from tracemesh.runtime.http_server import HttpServer
from tracemesh.runtime.metrics import Metrics
from tracemesh.runtime.tasks import TaskOwner
from tracemesh.sampling.http import build_app
from tracemesh.sampling.strategies import StrategyStore

T = TypeVar("T")

STRATEGIES = {
    "default_strategy": {"type": "probabilistic", "param": 0.5},
    "service_strategies": [
        {"service": "shop", "type": "probabilistic", "param": 0.25},
        {"service": "billing", "type": "ratelimiting", "param": 7},
        {"service": "huge", "type": "ratelimiting", "param": 40000},
        {
            "service": "search",
            "type": "probabilistic",
            "param": 0.3,
            "operation_strategies": [
                {"operation": "GET /q", "type": "probabilistic", "param": 0.9}
            ],
        },
    ],
}


class SamplingServer:
    """The 5778 app served on loopback from an event loop in a background thread."""

    def __init__(self, path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.metrics = Metrics()
        self.store = StrategyStore(str(path), reload_interval=0)
        self.tasks = TaskOwner()
        self.http = self.call(self._start())
        self.port = self.http.port
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> HttpServer:
        await self.store.start()
        http = HttpServer("sampling", build_app(self.store, self.metrics), "127.0.0.1", 0)
        http.start(self.tasks)
        await http.wait_started()
        return http

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def requests(self, endpoint: str, status: str) -> float:
        labels = {"endpoint": endpoint, "status": status}
        return (
            self.metrics.registry.get_sample_value("tracemesh_sampling_requests_total", labels) or 0
        )

    def close(self) -> None:
        self.call(self.http.stop())
        self.call(self.store.stop())
        self.call(self.tasks.cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SamplingServer]:
    path = tmp_path / "strategies.json"
    path.write_text(json.dumps(STRATEGIES))
    s = SamplingServer(path)
    yield s
    s.close()


def test_sampling_answers_proto_json(server: SamplingServer) -> None:
    response = httpx.get(f"{server.url}/sampling", params={"service": "billing"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == (
        b'{"strategyType":"RATE_LIMITING","rateLimitingSampling":{"maxTracesPerSecond":7}}'
    )
    assert server.requests("sampling", "200") == 1


def test_the_root_path_answers_the_legacy_numeric_form(server: SamplingServer) -> None:
    response = httpx.get(f"{server.url}/", params={"service": "shop"})
    assert response.status_code == 200
    assert response.content == b'{"strategyType":0,"probabilisticSampling":{"samplingRate":0.25}}'


def test_unknown_and_empty_services_get_the_default(server: SamplingServer) -> None:
    for service in ["nobody", "", "<script>alert(1)</script>", "x" * 20_000]:
        response = httpx.get(f"{server.url}/sampling", params={"service": service})
        assert response.json() == {
            "strategyType": "PROBABILISTIC",
            "probabilisticSampling": {"samplingRate": 0.5},
        }


def test_baggage_restrictions_are_an_empty_list(server: SamplingServer) -> None:
    response = httpx.get(f"{server.url}/baggageRestrictions", params={"service": "shop"})
    assert (response.status_code, response.json()) == (200, [])
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("path", ["/sampling", "/", "/baggageRestrictions"])
@pytest.mark.parametrize("query", ["", "?service=a&service=b", "?services=a"])
def test_service_must_be_given_exactly_once(server: SamplingServer, path: str, query: str) -> None:
    response = httpx.get(f"{server.url}{path}{query}")
    assert response.status_code == 400
    assert response.text == "'service' parameter must be provided once\n"
    assert response.headers["content-type"].startswith("text/plain")


def test_a_rate_limit_the_legacy_form_cannot_carry_is_a_500(server: SamplingServer) -> None:
    legacy = httpx.get(f"{server.url}/", params={"service": "huge"})
    assert (legacy.status_code, legacy.text) == (500, "cannot marshall to JSON\n")
    proto = httpx.get(f"{server.url}/sampling", params={"service": "huge"})
    assert proto.json()["rateLimitingSampling"] == {"maxTracesPerSecond": 40000}
    assert server.requests("legacy", "500") == 1


def test_other_methods_and_paths_are_refused(server: SamplingServer) -> None:
    assert httpx.post(f"{server.url}/sampling?service=a").status_code == 405
    assert httpx.get(f"{server.url}/api/sampling?service=a").status_code == 404


# ---- the real jaeger-client --------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def remote_sampler(server: SamplingServer, service: str) -> tuple[Any, RemoteControlledSampler]:
    """A tracer whose sampler is jaeger-client's remote one (the default when no sampler type is
    configured; `"type": "remote"` itself is refused by jaeger-client's Config)."""
    config = Config(
        config={
            "local_agent": {
                "reporting_host": "127.0.0.1",
                "sampling_port": server.port,
                "reporting_port": 9,  # discard: no spans are reported here
            },
            "sampling_refresh_interval": 0.05,
            "logging": False,
            # Given an ip, jaeger-client skips its interface probing, which leaks sockets.
            "tags": {"ip": "127.0.0.1"},
        },
        service_name=service,
        validate=True,
    )
    tracer = config.new_tracer()
    sampler = tracer.sampler
    assert isinstance(sampler, RemoteControlledSampler)
    return tracer, sampler


def test_jaeger_client_adopts_our_probabilistic_rate(server: SamplingServer) -> None:
    tracer, sampler = remote_sampler(server, "shop")
    try:
        wait_for(lambda: isinstance(sampler.sampler, ProbabilisticSampler)
                 and sampler.sampler.rate == 0.25)  # fmt: skip
        assert server.requests("sampling", "200") >= 1
    finally:
        close_tracer(tracer)


def test_jaeger_client_adopts_our_rate_limit(server: SamplingServer) -> None:
    tracer, sampler = remote_sampler(server, "billing")
    try:
        wait_for(lambda: isinstance(sampler.sampler, RateLimitingSampler))
        assert isinstance(sampler.sampler, RateLimitingSampler)
        assert sampler.sampler.traces_per_second == 7
    finally:
        close_tracer(tracer)


def test_jaeger_client_adopts_our_per_operation_strategies(server: SamplingServer) -> None:
    tracer, sampler = remote_sampler(server, "search")
    try:
        wait_for(lambda: isinstance(sampler.sampler, AdaptiveSampler))
        adaptive = sampler.sampler
        assert isinstance(adaptive, AdaptiveSampler)
        assert adaptive.default_sampling_probability == 0.3
        assert adaptive.samplers["GET /q"].rate == 0.9
    finally:
        close_tracer(tracer)
