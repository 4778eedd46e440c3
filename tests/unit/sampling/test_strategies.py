"""The strategy store against strategies files written to temporary directories: every rule of
Jaeger's file format, the exact JSON Jaeger answers with, URLs, and reloading."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import logging
import os
import socket
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import orjson
import pytest

from tracemesh.codecs.proto.jaeger_sampling_pb2 import PROBABILISTIC, RATE_LIMITING
from tracemesh.sampling.strategies import (
    JAEGER_DEFAULT_PROBABILITY,
    StrategyFileError,
    StrategyStore,
    parse_strategies,
)

T = TypeVar("T")

# Jaeger's own fixture `operation_strategies.json`, the richest example of the merging rules.
OPERATION_STRATEGIES = {
    "default_strategy": {
        "type": "probabilistic",
        "param": 0.5,
        "operation_strategies": [
            {"operation": "op0", "type": "probabilistic", "param": 0.2},
            {"operation": "op6", "type": "probabilistic", "param": 0},
            {"operation": "spam", "type": "ratelimiting", "param": 1},
            {"operation": "op7", "type": "probabilistic", "param": 1},
        ],
    },
    "service_strategies": [
        {
            "service": "foo",
            "type": "probabilistic",
            "param": 0.8,
            "operation_strategies": [
                {"operation": "op6", "type": "probabilistic", "param": 0.5},
                {"operation": "op1", "type": "probabilistic", "param": 0.2},
                {"operation": "op2", "type": "ratelimiting", "param": 10},
            ],
        },
        {
            "service": "bar",
            "type": "ratelimiting",
            "param": 5,
            "operation_strategies": [
                {"operation": "op3", "type": "probabilistic", "param": 0.3},
                {"operation": "op4", "type": "ratelimiting", "param": 100},
                {"operation": "op5", "type": "probabilistic", "param": 0.4},
            ],
        },
    ],
}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def write(path: Path, document: object) -> Path:
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def loaded(path: Path, **options: Any) -> StrategyStore:
    """A store started on `path` (no polling), its reload task already stopped."""
    store = StrategyStore(str(path), reload_interval=0, **options)
    run(store.start())
    return store


def probabilistic(rate: float) -> dict[str, object]:
    return {"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": rate}}


def op(name: str, rate: float) -> dict[str, object]:
    return {"operation": name, "probabilisticSampling": {"samplingRate": rate}}


# ---- defaults ----------------------------------------------------------------------------------


def test_without_a_file_every_service_gets_tracemeshs_default_of_one() -> None:
    store = StrategyStore(None)
    run(store.start())
    assert store.strategy_json("anything") == probabilistic(1)
    assert store.legacy_json("anything") == {
        "strategyType": 0,
        "probabilisticSampling": {"samplingRate": 1},
    }


def test_jaegers_own_default_probability_can_be_asked_for() -> None:
    store = StrategyStore(None, default_probability=JAEGER_DEFAULT_PROBABILITY)
    assert store.strategy_json("x") == probabilistic(0.001)


@pytest.mark.parametrize("probability", [-0.1, 1.5])
def test_a_default_probability_outside_zero_to_one_is_refused(probability: float) -> None:
    with pytest.raises(ValueError, match="within"):
        StrategyStore(None, default_probability=probability)


@pytest.mark.parametrize("document", ["null", "{}", '{"service_strategies": null}'])
def test_an_empty_document_means_the_defaults(tmp_path: Path, document: str) -> None:
    store = loaded(write(tmp_path / "s.json", document), default_probability=0.25)
    assert store.strategy_json("x") == probabilistic(0.25)


# ---- service strategies ------------------------------------------------------------------------


def test_service_strategies_and_the_default_for_unknown_services(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.json",
        {
            "default_strategy": {"type": "probabilistic", "param": 0.5},
            "service_strategies": [
                {"service": "foo", "type": "probabilistic", "param": 0.8},
                {"service": "bar", "type": "ratelimiting", "param": 5},
            ],
        },
    )
    store = loaded(path)
    assert store.strategy_json("foo") == probabilistic(0.8)
    assert store.strategy_json("bar") == {
        "strategyType": "RATE_LIMITING",
        "rateLimitingSampling": {"maxTracesPerSecond": 5},
    }
    assert store.strategy_json("someone-else") == probabilistic(0.5)
    assert store.strategy_proto("bar").strategyType == RATE_LIMITING
    assert store.strategy_proto("bar").rateLimitingSampling.maxTracesPerSecond == 5


def test_json_text_is_byte_for_byte_what_jaeger_answers(tmp_path: Path) -> None:
    """The two strings of Jaeger's handler test for a 42 traces/s strategy."""
    document = {"service_strategies": [{"service": "Y", "type": "ratelimiting", "param": 42}]}
    store = loaded(write(tmp_path / "s.json", document))
    assert orjson.dumps(store.strategy_json("Y")) == (
        b'{"strategyType":"RATE_LIMITING","rateLimitingSampling":{"maxTracesPerSecond":42}}'
    )
    assert orjson.dumps(store.legacy_json("Y")) == (
        b'{"strategyType":1,"rateLimitingSampling":{"maxTracesPerSecond":42}}'
    )
    assert orjson.dumps(store.strategy_json("other")) == (
        b'{"strategyType":"PROBABILISTIC","probabilisticSampling":{"samplingRate":1}}'
    )


@pytest.mark.parametrize(("param", "limit"), [(3.9, 3), (0.5, 0), (-2.7, -2), (1e12, 2**31 - 1)])
def test_a_rate_limit_is_truncated_to_an_int32(tmp_path: Path, param: float, limit: int) -> None:
    document = {"service_strategies": [{"service": "s", "type": "ratelimiting", "param": param}]}
    store = loaded(write(tmp_path / "s.json", document))
    assert store.strategy_proto("s").rateLimitingSampling.maxTracesPerSecond == limit


@pytest.mark.parametrize("kind", ["blah", "", "Probabilistic", None])
def test_an_unknown_or_missing_type_means_the_default_probabilistic(
    tmp_path: Path, kind: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    entry: dict[str, object] = {"service": "s", "param": 0.7}
    if kind is not None:
        entry["type"] = kind
    store = loaded(
        write(tmp_path / "s.json", {"service_strategies": [entry]}), default_probability=0.3
    )
    assert store.strategy_json("s") == probabilistic(0.3)
    assert "unknown type" in caplog.text


def test_keys_match_as_go_json_matches_them(tmp_path: Path) -> None:
    document = (
        '{"Service_Strategies": [{"SERVICE": "s", "Type": "ratelimiting", "PARAM": 7, "x": 1}]}'
    )
    store = loaded(write(tmp_path / "s.json", document))
    assert store.strategy_proto("s").rateLimitingSampling.maxTracesPerSecond == 7


def test_a_later_entry_for_the_same_service_wins(tmp_path: Path) -> None:
    entries = [
        {"service": "s", "type": "probabilistic", "param": 0.1},
        {"service": "s", "type": "probabilistic", "param": 0.9},
    ]
    store = loaded(write(tmp_path / "s.json", {"service_strategies": entries}))
    assert store.strategy_json("s") == probabilistic(0.9)


# ---- operation strategies ----------------------------------------------------------------------


def test_jaegers_operation_strategies_fixture_exactly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    store = loaded(write(tmp_path / "s.json", OPERATION_STRATEGIES), default_probability=0.001)
    # own operations first, then the default's not named by the service; ratelimiting ones skipped
    assert store.strategy_json("foo") == {
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": 0.8},
        "operationSampling": {
            "defaultSamplingProbability": 0.8,
            "defaultLowerBoundTracesPerSecond": 0,
            "perOperationStrategies": [
                op("op6", 0.5),
                op("op1", 0.2),
                op("op0", 0.2),
                op("op7", 1),
            ],
            "defaultUpperBoundTracesPerSecond": 0,
        },
    }
    # a rate-limited service's operations default to the global default probability
    assert store.strategy_json("bar") == {
        "strategyType": "RATE_LIMITING",
        "rateLimitingSampling": {"maxTracesPerSecond": 5},
        "operationSampling": {
            "defaultSamplingProbability": 0.001,
            "defaultLowerBoundTracesPerSecond": 0,
            "perOperationStrategies": [
                op("op3", 0.3),
                op("op5", 0.4),
                op("op0", 0.2),
                op("op6", 0),
                op("op7", 1),
            ],
            "defaultUpperBoundTracesPerSecond": 0,
        },
    }
    assert store.legacy_json("unknown") == {
        "strategyType": 0,
        "probabilisticSampling": {"samplingRate": 0.5},
        "operationSampling": {
            "defaultSamplingProbability": 0.5,
            "defaultLowerBoundTracesPerSecond": 0,
            "perOperationStrategies": [op("op0", 0.2), op("op6", 0), op("op7", 1)],
            "defaultUpperBoundTracesPerSecond": 0,
        },
    }
    skipped = [
        r.getMessage() for r in caplog.records if "can only be probabilistic" in r.getMessage()
    ]
    assert len(skipped) == 3
    assert any("'op2'" in m and "0.8" in m for m in skipped)
    assert any("'op4'" in m and "0.001" in m for m in skipped)


def test_services_without_operations_inherit_the_defaults_with_their_own_probability(
    tmp_path: Path,
) -> None:
    """Jaeger's `service_no_per_operation.json` fixture and its two snapshots."""
    document = {
        "service_strategies": [
            {"service": "ServiceA", "type": "probabilistic", "param": 1.0},
            {"service": "ServiceB", "type": "ratelimiting", "param": 3},
        ],
        "default_strategy": {
            "type": "probabilistic",
            "param": 0.2,
            "operation_strategies": [
                {"operation": "/health", "type": "probabilistic", "param": 0.1}
            ],
        },
    }
    store = loaded(write(tmp_path / "s.json", document))
    per_op = {
        "defaultLowerBoundTracesPerSecond": 0,
        "perOperationStrategies": [op("/health", 0.1)],
        "defaultUpperBoundTracesPerSecond": 0,
    }
    assert store.strategy_json("ServiceA") == {
        **probabilistic(1),
        "operationSampling": {"defaultSamplingProbability": 1, **per_op},
    }
    assert store.strategy_json("ServiceB") == {
        "strategyType": "RATE_LIMITING",
        "rateLimitingSampling": {"maxTracesPerSecond": 3},
        "operationSampling": {"defaultSamplingProbability": 0.2, **per_op},
    }


def test_a_service_whose_operations_were_all_skipped_still_gets_the_defaults_merged(
    tmp_path: Path,
) -> None:
    document = {
        "default_strategy": {
            "type": "probabilistic",
            "param": 0.2,
            "operation_strategies": [{"operation": "a", "type": "probabilistic", "param": 0.1}],
        },
        "service_strategies": [
            {
                "service": "s",
                "type": "probabilistic",
                "param": 0.4,
                "operation_strategies": [{"operation": "b", "type": "ratelimiting", "param": 2}],
            }
        ],
    }
    store = loaded(write(tmp_path / "s.json", document))
    per_op = store.strategy_json("s")["operationSampling"]
    assert per_op == {
        "defaultSamplingProbability": 0.4,
        "defaultLowerBoundTracesPerSecond": 0,
        "perOperationStrategies": [op("a", 0.1)],
        "defaultUpperBoundTracesPerSecond": 0,
    }


def test_an_operation_of_unknown_type_gets_the_default_probability(tmp_path: Path) -> None:
    document = {
        "service_strategies": [
            {
                "service": "s",
                "type": "probabilistic",
                "param": 0.4,
                "operation_strategies": [{"operation": "o", "type": "nope", "param": 0.9}],
            }
        ]
    }
    store = loaded(write(tmp_path / "s.json", document), default_probability=0.01)
    per_op = store.strategy_proto("s").operationSampling
    assert [
        (o.operation, o.probabilisticSampling.samplingRate) for o in per_op.perOperationStrategies
    ] == [("o", 0.01)]
    assert per_op.defaultSamplingProbability == 0.4


def test_strategy_proto_is_a_copy(tmp_path: Path) -> None:
    store = loaded(write(tmp_path / "s.json", OPERATION_STRATEGIES))
    copy = store.strategy_proto("foo")
    copy.probabilisticSampling.samplingRate = 0.0
    copy.operationSampling.perOperationStrategies.pop()
    assert store.strategy_proto("foo").probabilisticSampling.samplingRate == 0.8
    assert len(store.strategy_proto("foo").operationSampling.perOperationStrategies) == 4
    assert store.strategy_proto("foo").strategyType == PROBABILISTIC


def test_a_rate_limit_too_large_for_the_legacy_form_is_an_error_there_only(tmp_path: Path) -> None:
    document = {"service_strategies": [{"service": "s", "type": "ratelimiting", "param": 40000}]}
    store = loaded(write(tmp_path / "s.json", document))
    assert store.strategy_json("s")["rateLimitingSampling"] == {"maxTracesPerSecond": 40000}
    with pytest.raises(ValueError, match="i16"):
        store.legacy_json("s")


# ---- broken files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('"nonsense"', "the document must be a JSON object, not a string"),
        ("{", "not valid JSON"),
        ('{"service_strategies": {}}', "service_strategies must be a JSON array"),
        ('{"service_strategies": [null]}', "service_strategies[0] must be a JSON object"),
        (
            '{"service_strategies": [{"service": 5}]}',
            "service_strategies[0].service must be a string",
        ),
        ('{"default_strategy": {"param": "0.5"}}', "default_strategy.param must be a number"),
        ('{"default_strategy": {"param": true}}', "default_strategy.param must be a number"),
        ('{"default_strategy": {"param": NaN}}', "not valid JSON"),
        ('{"default_strategy": {"param": 1e400}}', "out of range"),
        (
            '{"default_strategy": {"operation_strategies": [{"operation": "a", "type": 1}]}}',
            "default_strategy.operation_strategies[0].type must be a string",
        ),
    ],
)
def test_a_broken_file_at_start_is_a_clear_error(
    tmp_path: Path, document: str, message: str
) -> None:
    path = write(tmp_path / "s.json", document)
    store = StrategyStore(str(path))
    with pytest.raises(StrategyFileError) as error:
        run(store.start())
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_a_missing_file_at_start_is_a_clear_error(tmp_path: Path) -> None:
    store = StrategyStore(str(tmp_path / "nope.json"))
    with pytest.raises(StrategyFileError, match=r"cannot read .*nope\.json"):
        run(store.start())


def test_parse_strategies_is_usable_on_its_own() -> None:
    parsed = parse_strategies(b'{"default_strategy": {"type": "ratelimiting", "param": 2}}', 1.0)
    assert parsed.default.rateLimitingSampling.maxTracesPerSecond == 2
    assert parsed.services == {}


# ---- reloading ---------------------------------------------------------------------------------


def rewrite(path: Path, document: object) -> None:
    """Rewrite and push the mtime forward, so the change shows even on coarse-mtime filesystems."""
    before = path.stat().st_mtime_ns
    write(path, document)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def one_service(rate: float) -> dict[str, object]:
    return {"service_strategies": [{"service": "s", "type": "probabilistic", "param": rate}]}


def test_reload_picks_up_a_changed_file_and_keeps_the_last_good_on_a_broken_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "s.json", one_service(0.1))
    store = loaded(path)

    async def scenario() -> None:
        assert not await store.reload()  # unchanged
        rewrite(path, one_service(0.2))
        assert await store.reload()
        assert store.strategy_json("s") == probabilistic(0.2)

        rewrite(path, '{"service_strategies": [')
        assert not await store.reload()
        assert store.strategy_json("s") == probabilistic(0.2)
        assert "keeping the last good ones" in caplog.text
        caplog.clear()
        assert not await store.reload()  # the same broken file is not re-read or re-logged
        assert caplog.text == ""

        path.unlink()
        assert not await store.reload()
        assert store.strategy_json("s") == probabilistic(0.2)
        assert "cannot read" in caplog.text

        write(path, one_service(0.3))
        assert await store.reload()
        assert store.strategy_json("s") == probabilistic(0.3)

    run(scenario())


def test_the_polling_task_reloads_on_its_own(tmp_path: Path) -> None:
    path = write(tmp_path / "s.json", one_service(0.1))

    async def scenario() -> None:
        store = StrategyStore(str(path), reload_interval=0.02)
        await store.start()
        try:
            rewrite(path, one_service(0.6))
            async with asyncio.timeout(5):
                while store.strategy_json("s") != probabilistic(0.6):
                    await asyncio.sleep(0.01)
            rewrite(path, "broken")
            await asyncio.sleep(0.1)
            assert store.strategy_json("s") == probabilistic(0.6)
            tasks = {t.get_name() for t in asyncio.all_tasks()}
            assert "sampling:reload-strategies" in tasks
        finally:
            await store.stop()
        assert "sampling:reload-strategies" not in {t.get_name() for t in asyncio.all_tasks()}

    run(scenario())


# ---- strategies from a URL ---------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    responses: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        status, body = self.responses.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[tuple[str, dict[str, tuple[int, bytes]]]]:
    responses: ClassVar[dict[str, tuple[int, bytes]]] = {}
    handler = type("Handler", (_Handler,), {"responses": responses})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", responses
    server.shutdown()
    server.server_close()
    thread.join()


def test_strategies_from_a_url_are_reloaded_and_503_keeps_what_is_there(
    web: tuple[str, dict[str, tuple[int, bytes]]],
) -> None:
    base, responses = web
    responses["/s.json"] = (200, json.dumps(one_service(0.4)).encode())
    responses["/down"] = (503, b"try later")
    store = StrategyStore(base + "/s.json", reload_interval=0)

    async def scenario() -> None:
        await store.start()
        assert store.strategy_json("s") == probabilistic(0.4)
        responses["/s.json"] = (200, json.dumps(one_service(0.7)).encode())
        assert await store.reload()
        assert store.strategy_json("s") == probabilistic(0.7)
        responses["/s.json"] = (500, b"oops")
        assert not await store.reload()
        assert store.strategy_json("s") == probabilistic(0.7)

        unavailable = StrategyStore(base + "/down", default_probability=0.5, reload_interval=0)
        await unavailable.start()  # 503 at start: the defaults, no error
        assert unavailable.strategy_json("s") == probabilistic(0.5)

        with pytest.raises(StrategyFileError, match="HTTP 404"):
            await StrategyStore(base + "/missing", reload_interval=0).start()

    run(scenario())


def test_an_unreachable_url_at_start_is_a_clear_error() -> None:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StrategyFileError, match="cannot download"):
        run(StrategyStore(f"http://127.0.0.1:{port}/s.json", reload_interval=0).start())
