"""Retry decisions (conditions, attempt limits, the timeout budget, backoff), injected faults, and
the response flags, against the Istio and Envoy behaviour they copy."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracemesh.mesh.policy import (
    FAILURE_STATUS,
    MESH_DEFAULT_RETRIES,
    NO_FAULT,
    NO_RETRIES,
    FaultAction,
    ResponseFlag,
    RetryDecision,
    RetryPolicy,
    decide_fault,
    join_flags,
)
from tracemesh.mesh.routes import Abort, Delay, Destination, Fault, Retries, RetryOn, Route

UF, UC, UPE, UT = "UF", "UC", "UPE", "UT"
RETRY, DONE, EXHAUSTED = RetryDecision.RETRY, RetryDecision.DONE, RetryDecision.EXHAUSTED
TO_A = (Destination("a"),)


def policy(*on: RetryOn, codes: frozenset[int] = frozenset(), attempts: int = 2) -> RetryPolicy:
    return RetryPolicy(Retries(attempts, None, frozenset(on), codes))


def test_a_route_without_retries_gets_istios_default() -> None:
    default = RetryPolicy.for_route(Route(TO_A))
    assert default == RetryPolicy(MESH_DEFAULT_RETRIES, None)
    assert Retries(2, None, frozenset({RetryOn.CONNECT_FAILURE}), {503}) == MESH_DEFAULT_RETRIES
    assert default.should_retry(1, UF) is RETRY
    assert default.should_retry(1, 503) is RETRY
    assert default.should_retry(1, 500) is DONE
    assert default.should_retry(1, UC) is DONE
    assert default.should_retry(1, UT) is DONE


def test_attempts_zero_turns_retries_off() -> None:
    off = RetryPolicy.for_route(Route(TO_A, retries=Retries(0)))
    assert off.retriable(UF)
    assert off.should_retry(1, UF) is DONE  # no policy, so no URX either (Istio sends none)
    assert off.should_retry(1, 404) is DONE


def test_a_route_with_a_fault_has_no_retries_and_no_timeout() -> None:
    route = Route(TO_A, timeout=1.0, retries=Retries(5), fault=Fault(abort=Abort(500)))
    assert RetryPolicy.for_route(route) == RetryPolicy(NO_RETRIES, None)


def test_configured_retries_and_timeout_are_kept() -> None:
    retries = Retries(3, 0.2, frozenset({RetryOn.FIVE_XX}), frozenset())
    assert RetryPolicy.for_route(Route(TO_A, timeout=1.0, retries=retries)) == RetryPolicy(
        retries, 1.0
    )


@pytest.mark.parametrize(
    ("on", "outcome", "retriable"),
    [
        # 5xx: every 5xx, and every try that got no response (Envoy counts those as 5xx)
        (RetryOn.FIVE_XX, 500, True),
        (RetryOn.FIVE_XX, 503, True),
        (RetryOn.FIVE_XX, 599, True),
        (RetryOn.FIVE_XX, 404, False),
        (RetryOn.FIVE_XX, 200, False),
        (RetryOn.FIVE_XX, UF, True),
        (RetryOn.FIVE_XX, UC, True),
        (RetryOn.FIVE_XX, UPE, True),
        (RetryOn.FIVE_XX, UT, True),
        # gateway-error: 502, 503, 504 only, and no response at all
        (RetryOn.GATEWAY_ERROR, 502, True),
        (RetryOn.GATEWAY_ERROR, 503, True),
        (RetryOn.GATEWAY_ERROR, 504, True),
        (RetryOn.GATEWAY_ERROR, 500, False),
        (RetryOn.GATEWAY_ERROR, UF, True),
        (RetryOn.GATEWAY_ERROR, UT, True),
        # connect-failure: only that
        (RetryOn.CONNECT_FAILURE, UF, True),
        (RetryOn.CONNECT_FAILURE, UC, False),
        (RetryOn.CONNECT_FAILURE, UT, False),
        (RetryOn.CONNECT_FAILURE, 503, False),
        # reset: no response at all (disconnect, reset, per-try timeout)
        (RetryOn.RESET, UC, True),
        (RetryOn.RESET, UF, True),
        (RetryOn.RESET, UT, True),
        (RetryOn.RESET, 503, False),
    ],
)
def test_retry_conditions(on: RetryOn, outcome: int | str, retriable: bool) -> None:
    assert policy(on).should_retry(1, outcome) is (RETRY if retriable else DONE)


def test_status_codes_and_flags_that_are_never_retried() -> None:
    every = policy(*RetryOn, codes=frozenset({409}))
    assert every.should_retry(1, 409) is RETRY
    assert every.should_retry(1, 429) is DONE
    assert every.should_retry(1, "NR") is DONE  # not a failure of a try
    assert every.should_retry(1, "FI") is DONE
    assert every.should_retry(1, ResponseFlag.UPSTREAM_CONNECT_FAILURE) is RETRY


def test_attempts_count_retries_after_the_first_try() -> None:
    two = policy(RetryOn.FIVE_XX, attempts=2)
    assert [two.should_retry(n, 503) for n in (1, 2, 3, 4)] == [RETRY, RETRY, EXHAUSTED, EXHAUSTED]
    assert two.should_retry(3, 200) is DONE  # a success is never "exhausted"


def test_the_route_timeout_ends_retrying() -> None:
    budget = RetryPolicy(Retries(5, 0.3, frozenset({RetryOn.FIVE_XX})), timeout=1.0)
    assert budget.should_retry(1, UT, elapsed=0.3) is RETRY
    assert budget.should_retry(3, UT, elapsed=1.0) is DONE  # UT for the request, not URX


def test_try_timeout_is_the_per_try_timeout_cut_to_the_budget_left() -> None:
    both = RetryPolicy(Retries(3, 0.5), timeout=1.2)
    assert both.try_timeout(0.0) == 0.5
    assert both.try_timeout(0.5) == 0.5
    assert both.try_timeout(1.0) == pytest.approx(0.2)
    assert both.try_timeout(1.3) == pytest.approx(-0.1)  # spent: answer 504 UT
    assert RetryPolicy(Retries(3, 0.5)).try_timeout(99.0) == 0.5
    assert RetryPolicy(Retries(3), timeout=2.0).try_timeout(0.5) == 1.5
    assert RetryPolicy(Retries(3)).try_timeout(0.0) is None


@given(st.integers(1, 1000), st.floats(0, 1, exclude_max=True))
def test_backoff_is_fully_jittered_exponential_and_capped(retry: int, draw: float) -> None:
    wait = RetryPolicy.backoff(retry, lambda: draw)
    ceiling = min(0.025 * 2 ** min(retry - 1, 20), 0.25)
    assert 0 <= wait < ceiling or wait == ceiling == 0


def test_backoff_ceilings() -> None:
    assert [RetryPolicy.backoff(n, lambda: 0.999999) for n in (1, 2, 3, 4, 5, 9)] == pytest.approx(
        [0.025, 0.05, 0.1, 0.2, 0.25, 0.25], rel=1e-5
    )


# --- faults


def test_no_fault_and_certain_faults() -> None:
    assert decide_fault(None, random.random) is NO_FAULT
    assert NO_FAULT.flags == ()
    both = Fault(Delay(7.0), Abort(500))
    action = decide_fault(both, lambda: 0.999999)
    assert action == FaultAction(7.0, 500)
    assert action.flags == (ResponseFlag.DELAY_INJECTED, ResponseFlag.FAULT_INJECTED)
    never = Fault(Delay(7.0, 0.0), Abort(500, 0.0))
    assert decide_fault(never, lambda: 0.0) == NO_FAULT


def test_delay_and_abort_are_drawn_independently_at_their_percentages() -> None:
    fault = Fault(Delay(0.5, 30.0), Abort(503, 10.0))
    rand = random.Random(42).random
    actions = [decide_fault(fault, rand) for _ in range(20_000)]
    delayed = sum(a.delay == 0.5 for a in actions)
    aborted = sum(a.abort == 503 for a in actions)
    both = sum(a.delay and a.abort is not None for a in actions)
    assert abs(delayed - 6000) < 330  # ~5 standard deviations
    assert abs(aborted - 2000) < 220
    assert abs(both - 600) < 125  # 30% x 10%: independent draws
    assert {a.flags for a in actions} == {
        (),
        (ResponseFlag.DELAY_INJECTED,),
        (ResponseFlag.FAULT_INJECTED,),
        (ResponseFlag.DELAY_INJECTED, ResponseFlag.FAULT_INJECTED),
    }


# --- response flags


def test_response_flags_are_envoys_short_names() -> None:
    names = ["UH", "UF", "UC", "UPE", "UT", "NR", "URX", "FI", "DI"]
    assert [f.value for f in ResponseFlag] == names
    assert ResponseFlag.NO_ROUTE == "NR"  # plain strings where the server expects them


def test_flags_join_as_envoy_prints_them() -> None:
    assert join_flags([]) == "-"
    assert join_flags([ResponseFlag.UPSTREAM_CONNECT_FAILURE]) == "UF"
    failed = [ResponseFlag.UPSTREAM_CONNECT_FAILURE, ResponseFlag.RETRY_LIMIT_EXCEEDED]
    assert join_flags(failed) == "UF,URX"


def test_failure_statuses() -> None:
    assert FAILURE_STATUS[ResponseFlag.NO_ROUTE] == 404
    assert FAILURE_STATUS[ResponseFlag.UPSTREAM_TIMEOUT] == 504
    assert {FAILURE_STATUS[ResponseFlag(f)] for f in ("UH", "UF", "UC", "UPE")} == {503}
