"""Every demo, run as a user runs it (`tracemesh demo <name> --once`, a real subprocess that starts
real apps and sidecars), reporting to a real `tracemesh all-in-one`; each trace's shape is read
back through the Jaeger query API: span count, parent/child structure, services, span names, and
which version served the request."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import ROOT, Server

Trace = dict[str, Any]
Span = dict[str, Any]

# Spans the gateway reports per request: a SERVER and a CLIENT span, as Istio 1.28 and later.
# The hello and timeapp demos turn the CLIENT span off (`upstream_span: false`): the book's
# four-span hello trace and timeapp's three-span trace have one gateway span.
GATEWAY_SPANS = 2
ONE_GATEWAY_SPAN = 1
GATEWAY = "ingress-gateway.default"


def run_demo(server: Server, tmp_path: Path, name: str, *args: str) -> dict[str, str]:
    """`tracemesh demo <name> --once`, spans to `server`: {label: trace id}."""
    cmd = [sys.executable, "-m", "tracemesh", "demo", name, "--once", "--json",
           "--collector", server.otlp_grpc, "--gateway-port", "0",
           "--run-dir", str(tmp_path / "run"), *args]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    sent: dict[str, str] = json.loads(
        next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{"))
    )
    assert all(len(t) == 32 for t in sent.values()), done.stdout + done.stderr
    assert "stopped" in done.stdout
    # Every span was sent before the demo exited; give the backend's pipeline a moment to store
    # them all, so that a trace with spans too many is seen as such.
    time.sleep(1.0)
    return sent


def fetch(server: Server, trace_id: str, ready: Callable[[Trace], bool], timeout: float = 15.0
          ) -> Trace:  # fmt: skip
    deadline = time.monotonic() + timeout
    last: Trace | None = None
    while time.monotonic() < deadline:
        response = httpx.get(f"{server.query}/api/traces/{trace_id}", timeout=10)
        if response.status_code == 200:
            last = response.json()["data"][0]
            if ready(last):
                return last
        time.sleep(0.1)
    raise AssertionError(f"trace {trace_id} not complete: {last}")


def count(n: int) -> Callable[[Trace], bool]:
    return lambda trace: len(trace["spans"]) >= n


def service(trace: Trace, span: Span) -> str:
    return str(trace["processes"][span["processID"]]["serviceName"])


def tags(span: Span) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}


def kind(span: Span) -> str:
    return str(tags(span).get("span.kind", "internal"))


def parent(span: Span) -> str | None:
    refs = [r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"]
    return refs[0] if refs else None


def one(trace: Trace, svc: str, span_kind: str) -> Span:
    found = [s for s in trace["spans"] if service(trace, s) == svc and kind(s) == span_kind]
    assert len(found) == 1, (svc, span_kind, [(service(trace, s), kind(s)) for s in trace["spans"]])
    return found[0]


def gateway_leaf(trace: Trace, gateway_spans: int) -> Span:
    """The gateway span the next hop hangs under (its last, when it reports several)."""
    spans = [s for s in trace["spans"] if service(trace, s) == GATEWAY]
    assert len(spans) == gateway_spans
    roots = [s for s in spans if parent(s) is None]
    assert len(roots) == 1
    ids = {s["spanID"] for s in spans}
    leaves = [s for s in spans if not any(parent(o) == s["spanID"] for o in spans)]
    assert len(leaves) == 1 and all(parent(s) in ids for s in spans if s is not roots[0])
    return leaves[0]


def assert_chain(
    trace: Trace, hops: list[tuple[str, str]], gateway_spans: int = GATEWAY_SPANS
) -> list[Span]:
    """Exactly the gateway spans plus `hops` (service, kind), each the child of the one before."""
    assert len(trace["spans"]) == gateway_spans + len(hops), [
        (service(trace, s), kind(s), s["operationName"]) for s in trace["spans"]
    ]
    assert len({s["traceID"] for s in trace["spans"]}) == 1
    chain = [gateway_leaf(trace, gateway_spans), *(one(trace, svc, k) for svc, k in hops)]
    for outer, inner in itertools.pairwise(chain):
        assert parent(inner) == outer["spanID"], (outer["operationName"], inner["operationName"])
    return chain[1:]


@pytest.fixture(scope="module")
def hello(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return run_demo(server, tmp_path_factory.mktemp("hello"), "hello")


COPYING = [("hello.default", "server"), ("hello.default", "client"),
           ("formatter.default", "server")]  # fmt: skip
INSTRUMENTED = [("hello.default", "server"), ("hello", "server"), ("hello", "client"),
                ("hello.default", "client"), ("formatter.default", "server")]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "hops", "version"),
    [
        ("copying", COPYING, "v1"),
        ("copying-jaeger-baggage", COPYING, "v2"),
        ("copying-w3c-baggage", COPYING, "v2"),
        ("instrumented", INSTRUMENTED, "v1"),
        ("instrumented-netscape", INSTRUMENTED, "v2"),
    ],
)
def test_hello_trace_shape_and_baggage_routing(
    server: Server, hello: dict[str, str], label: str, hops: list[tuple[str, str]], version: str
) -> None:
    trace = fetch(server, hello[label], count(ONE_GATEWAY_SPAN + len(hops)))
    chain = assert_chain(trace, hops, ONE_GATEWAY_SPAN)
    hello_in, formatter_in = chain[0], chain[-1]
    assert hello_in["operationName"] == "hello:8080/sayHello*"
    assert chain[-2]["operationName"] == formatter_in["operationName"] == "formatter:8080/*"
    # formatter v2 exactly when the request's user-agent baggage says Netscape
    assert tags(formatter_in)["istio.canonical_revision"] == version
    assert tags(chain[-2])["upstream_cluster"] == f"outbound|8080|{version}|formatter"
    if hops is INSTRUMENTED:
        app_server, app_client = chain[1], chain[2]
        assert app_server["operationName"] == "GET /sayHello/{name}"
        assert app_client["operationName"] == "GET /formatGreeting"
        process = {
            t["key"]: t["value"] for t in trace["processes"][app_server["processID"]]["tags"]
        }
        assert process["service.version"] == "v1"  # OTEL_RESOURCE_ATTRIBUTES from the runner
        assert process["service.instance.id"] == "hello-v1-0"
        for inner, outer in ((app_server, hello_in), (app_client, app_server)):
            assert inner["startTime"] >= outer["startTime"]
            assert inner["startTime"] + inner["duration"] <= outer["startTime"] + outer["duration"]


def test_timeapp_gateway_sidecar_and_application_spans(server: Server, tmp_path: Path) -> None:
    sent = run_demo(server, tmp_path, "timeapp")
    trace = fetch(server, sent["gettime"], count(ONE_GATEWAY_SPAN + 2))
    assert len(trace["spans"]) == 3  # gateway, sidecar, application code
    hops = [("timeapp.default", "server"), ("timeapp", "internal")]
    sidecar, app = assert_chain(trace, hops, ONE_GATEWAY_SPAN)
    assert sidecar["operationName"] == "timeapp:8080/*"
    assert app["operationName"] == "gettime"
    assert [kind(s) for s in trace["spans"] if service(trace, s) == GATEWAY] == ["client"]
    # `/` has no application span: the gateway's and the sidecar's only.
    plain = fetch(server, sent["hello-world"], count(ONE_GATEWAY_SPAN + 1))
    assert_chain(plain, [("timeapp.default", "server")], ONE_GATEWAY_SPAN)


PROFILE_HOPS = [
    ("frontend.default", "server"), ("frontend.default", "client"),
    ("user-service.default", "server"), ("user-service.default", "client"),
    ("profile-service.default", "server"),
]  # fmt: skip


def test_profile_trace_points_at_the_slow_or_failing_service(
    server: Server, tmp_path: Path
) -> None:
    sent = run_demo(server, tmp_path, "profile")
    traces = {label: fetch(server, sent[label], count(GATEWAY_SPANS + 5)) for label in sent}
    ok, slow, failing = (assert_chain(traces[k], PROFILE_HOPS) for k in ("ok", "slow", "failing"))
    assert [tags(s)["http.status_code"] for s in ok] == ["200"] * 5
    assert not any("error" in tags(s) for s in traces["ok"]["spans"])
    # slow: profile-service takes the 1.2 s, and that is most of the whole request
    gateway = gateway_leaf(traces["slow"], GATEWAY_SPANS)
    assert slow[-1]["duration"] >= 1.1e6
    assert slow[-1]["duration"] >= 0.8 * gateway["duration"]
    assert ok[-1]["duration"] < 0.5e6
    # failing: the error starts at profile-service and travels up
    codes = [tags(s)["http.status_code"] for s in failing]
    assert codes == ["502", "502", "502", "500", "500"]  # the client span sees the 500 too
    assert all(tags(s).get("error") in (True, "true") for s in failing)


def test_bookinfo_weighted_reviews_and_ratings_only_for_v2_v3(
    server: Server, tmp_path: Path
) -> None:
    sent = run_demo(server, tmp_path, "bookinfo", "--requests", "30")
    seen: dict[str, int] = {}
    for trace_id in sent.values():

        def complete(trace: Trace) -> bool:
            reviews = [s for s in trace["spans"] if service(trace, s) == "reviews.default"
                       and kind(s) == "server"]  # fmt: skip
            if not reviews:
                return False
            wanted = 6 if tags(reviews[0])["istio.canonical_revision"] == "v1" else 8
            return len(trace["spans"]) >= wanted - 1 + GATEWAY_SPANS

        trace = fetch(server, trace_id, complete)
        reviews_in = one(trace, "reviews.default", "server")
        version = tags(reviews_in)["istio.canonical_revision"]
        seen[version] = seen.get(version, 0) + 1
        product_in = one(trace, "productpage.default", "server")
        assert parent(product_in) == gateway_leaf(trace, GATEWAY_SPANS)["spanID"]
        assert product_in["operationName"] == "productpage:9080/productpage*"
        calls = [s for s in trace["spans"] if parent(s) == product_in["spanID"]]
        assert sorted(s["operationName"] for s in calls) == ["details:9080/*", "reviews:9080/*"]
        assert all(kind(s) == "client" for s in calls)
        details_in = one(trace, "details.default", "server")
        assert parent(details_in) in {s["spanID"] for s in calls}
        assert parent(reviews_in) in {s["spanID"] for s in calls}
        ratings = [s for s in trace["spans"] if service(trace, s) == "ratings.default"]
        if version == "v1":
            assert len(trace["spans"]) == GATEWAY_SPANS + 5 and not ratings
        else:
            assert len(trace["spans"]) == GATEWAY_SPANS + 7
            ratings_out = one(trace, "reviews.default", "client")
            assert parent(ratings_out) == reviews_in["spanID"]
            assert parent(one(trace, "ratings.default", "server")) == ratings_out["spanID"]
    assert set(seen) == {"v1", "v2", "v3"}, seen  # 40/30/30: all three in 30 requests
    assert sum(seen.values()) == 30
