"""The proxy's sampling decision: incoming decisions, request-id trace reasons, forcing, the
percentage over the request id's draw, and remote Jaeger strategies."""

from __future__ import annotations

import json

import pytest

from tracemesh.mesh.sampler import Decision, RateLimiter, Sampler, Strategy, parse_strategy
from tracemesh.propagation import Extraction, Propagator
from tracemesh.propagation.request_id import TraceReason

FRESH = "00000000-0000-4000-8000-000000000000"  # draw 0, no trace reason yet


def rid(draw_hex: str, reason: str = "4") -> str:
    return f"{draw_hex}-0000-{reason}000-8000-000000000000"


def extract(headers: dict[str, str]) -> Extraction:
    return Propagator().extract_request(headers)


def test_an_incoming_decision_is_kept_whatever_the_percentage() -> None:
    never, always = Sampler(0.0), Sampler(100.0)
    yes = extract({"x-b3-traceid": "a" * 32, "x-b3-spanid": "b" * 16, "x-b3-sampled": "1"})
    no = extract({"traceparent": f"00-{'a' * 32}-{'b' * 16}-00"})
    assert never.decide(yes, FRESH, "op") == Decision(True)
    assert always.decide(no, FRESH, "op") == Decision(False)
    assert never.decide(extract({"b3": "1"}), FRESH, "op").sampled  # sampling state only
    assert not always.decide(extract({"b3": "0"}), FRESH, "op").sampled
    debug = extract({"jaeger-debug-id": "find-me"})
    assert never.decide(debug, FRESH, "op") == Decision(True)


def test_a_deferred_context_is_decided_here() -> None:
    deferred = extract({"x-b3-traceid": "a" * 32, "x-b3-spanid": "b" * 16})
    assert deferred.context is not None and deferred.context.sampled is None
    assert Sampler(100.0).decide(deferred, FRESH, "op") == Decision(True, TraceReason.SAMPLED)
    assert Sampler(0.0).decide(deferred, FRESH, "op") == Decision(False)


def test_request_id_reasons_and_forcing() -> None:
    none = extract({})
    never = Sampler(0.0)
    for reason in ("9", "a", "b", "A"):
        assert never.decide(none, rid("00000000", reason), "op") == Decision(True)
    assert never.decide(none, rid("00000000", "4"), "op") == Decision(False)
    forced = never.decide(none, FRESH, "op", force=True)
    assert forced == Decision(True, TraceReason.SERVICE_FORCED)
    client = never.decide(none, FRESH, "op", client_force=True)
    assert client == Decision(True, TraceReason.CLIENT_FORCED)


@pytest.mark.parametrize(
    ("percentage", "draw", "sampled"),
    [
        (0.01, 0, True),  # 0.01% is draw 0 only
        (0.01, 1, False),
        (1.0, 99, True),  # Istio's default 1%: draws 0-99
        (1.0, 100, False),
        (100.0, 9999, True),
        (99.99, 9999, False),
        (0.0, 0, False),
    ],
)
def test_the_percentage_compares_the_request_id_draw(
    percentage: float, draw: int, sampled: bool
) -> None:
    request_id = rid(f"{draw + 10000 * 7:08x}")  # the draw is the first 8 hex digits mod 10000
    assert Sampler(percentage).decide(extract({}), request_id, "op").sampled is sampled


def test_a_request_id_without_hex_head_draws_randomly() -> None:
    assert Sampler(50.0, rand=lambda: 0.4999).decide(extract({}), "my-id", "op").sampled
    assert not Sampler(50.0, rand=lambda: 0.5).decide(extract({}), "my-id", "op").sampled


def test_remote_probability_replaces_the_percentage_per_operation() -> None:
    sampler = Sampler(100.0)
    sampler.strategy = Strategy(probability=0.0, operations={"hot": 1.0})
    assert not sampler.decide(extract({}), FRESH, "cold").sampled
    assert sampler.decide(extract({}), FRESH, "hot").sampled
    sampler.strategy = None
    assert sampler.decide(extract({}), FRESH, "cold").sampled


def test_remote_rate_limit_and_lower_bound() -> None:
    now = [0.0]
    sampler = Sampler(100.0, clock=lambda: now[0])
    sampler.strategy = Strategy(traces_per_second=2.0)
    results = [sampler.decide(extract({}), FRESH, "op").sampled for _ in range(5)]
    assert results == [True, True, False, False, False]
    now[0] += 0.5
    assert sampler.decide(extract({}), FRESH, "op").sampled
    sampler.strategy = Strategy(probability=0.0, lower_bound_per_second=1.0)
    assert [sampler.decide(extract({}), FRESH, "op").sampled for _ in range(3)] == [
        True, False, False,
    ]  # fmt: skip


def test_rate_limiter_refills_up_to_its_balance() -> None:
    now = [0.0]
    limiter = RateLimiter(0.5, clock=lambda: now[0])
    assert limiter.allow() and not limiter.allow()
    now[0] = 100.0
    assert limiter.allow() and not limiter.allow()  # max balance 1: no burst after idling


def test_parse_strategy_reads_jaegers_json_forms() -> None:
    probabilistic = {
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": 0.25},
    }
    assert parse_strategy(json.dumps(probabilistic).encode()) == Strategy(probability=0.25)
    legacy = {"strategyType": 1, "rateLimitingSampling": {"maxTracesPerSecond": 5}}
    assert parse_strategy(json.dumps(legacy).encode()) == Strategy(traces_per_second=5.0)
    per_op = {
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": 1},
        "operationSampling": {
            "defaultSamplingProbability": 0.5,
            "defaultLowerBoundTracesPerSecond": 0.1,
            "perOperationStrategies": [
                {"operation": "a", "probabilisticSampling": {"samplingRate": 2}},
                {"operation": "b", "probabilisticSampling": None},
                "junk",
            ],
            "defaultUpperBoundTracesPerSecond": 0,
        },
    }
    assert parse_strategy(json.dumps(per_op).encode()) == Strategy(
        probability=0.5, operations={"a": 1.0}, lower_bound_per_second=0.1
    )


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", b'{"strategyType": "PROBABILISTIC"}', b'{"probabilisticSampling":'
     b' {"samplingRate": "1"}}', b'{"strategyType": "RATE_LIMITING"}', b"[" * 100000],
)  # fmt: skip
def test_parse_strategy_refuses_what_is_not_a_strategy(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_strategy(data)


def test_sampling_is_a_percentage() -> None:
    with pytest.raises(ValueError, match="percentage"):
        Sampler(101.0)
