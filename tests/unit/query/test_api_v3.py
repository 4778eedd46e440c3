"""api_v3 over HTTP against a real MemoryStorage: OTLP JSON results, summaries, errors."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from tests.unit.query.traces import (
    START_NS,
    TRACE_A,
    TRACE_B,
    AppClient,
    Declaring,
    Down,
    client_for,
    memory_storage,
    sid,
    trace_a,
    trace_b,
)
from tracemesh.model.span import Link
from tracemesh.query.service import SERVICE_REQUIRED


def iso(ns: int) -> str:
    when = dt.datetime.fromtimestamp(ns // 10**9, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9:09d}Z"


WINDOW = {
    "query.startTimeMin": iso(START_NS - 10**9),
    "query.startTimeMax": iso(START_NS + 3600 * 10**9),
}


@pytest.fixture(scope="module")
def client() -> AppClient:
    return client_for(memory_storage(trace_a(), trace_b()))


def assert_v3_error(response: object, status: int, message: str) -> None:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "text/plain; charset=utf-8"  # type: ignore[attr-defined]
    assert orjson.loads(response.content) == {"error": {"httpCode": status, "message": message}}  # type: ignore[attr-defined]


def test_services_and_operations(client: AppClient) -> None:
    assert client.get("/api/v3/services").json() == {"services": ["backend", "frontend"]}
    assert client.get("/api/v3/operations", params={"service": "backend"}).json() == {
        "operations": [
            {"name": "handle", "spanKind": "server"},
            {"name": "pay", "spanKind": "server"},
        ]
    }
    clients = client.get(
        "/api/v3/operations", params={"service": "frontend", "span_kind": "client"}
    )
    assert clients.json() == {
        "operations": [
            {"name": "call backend", "spanKind": "client"},
            {"name": "pay", "spanKind": "client"},
        ]
    }
    assert client.get("/api/v3/operations").json() == {"operations": []}
    empty = client_for(memory_storage())
    assert empty.get("/api/v3/services").json() == {"services": []}


def test_get_trace(client: AppClient) -> None:
    for trace_id in (TRACE_A.hex(), "CvdlGRbNQ92ESOshHIAxnA==", "CvdlGRbNQ92ESOshHIAxnA"):
        body = client.get(f"/api/v3/traces/{trace_id}").json()
        (resource_spans_front, resource_spans_back) = body["result"]["resourceSpans"]
        front_spans = resource_spans_front["scopeSpans"][0]["spans"]
        assert [s["name"] for s in front_spans] == ["GET /", "call backend"]
        root = front_spans[0]
        assert root["traceId"] == TRACE_A.hex()
        assert root["spanId"] == "0000000000000001"
        assert root["kind"] == 2
        assert root["startTimeUnixNano"] == str(START_NS)
        assert root["attributes"] == [{"key": "http.status_code", "value": {"intValue": "200"}}]
        handle = resource_spans_back["scopeSpans"][0]["spans"][0]
        assert handle["status"] == {"message": "db down", "code": 2}
    assert_v3_error(
        client.get("/api/v3/traces/00000000000000000000000000000fff"), 404, "No traces found"
    )
    bad = client.get("/api/v3/traces/zz")
    assert bad.status_code == 400
    assert orjson.loads(bad.content)["error"]["message"].startswith(
        "malformed parameter trace_id: "
    )


def test_get_trace_raw_keeps_shared_ids(client: AppClient) -> None:
    def span_ids(params: dict[str, str]) -> list[str]:
        body = client.get(f"/api/v3/traces/{TRACE_B.hex()}", params=params).json()
        return [
            span["spanId"]
            for rs in body["result"]["resourceSpans"]
            for ss in rs["scopeSpans"]
            for span in ss["spans"]
        ]

    assert sorted(span_ids({})) == ["0000000000000001", "0000000000000020", "0000000000000021"]
    assert sorted(span_ids({"rawTraces": "true"})) == [
        "0000000000000020",
        "0000000000000021",
        "0000000000000021",
    ]


def test_find_traces(client: AppClient) -> None:
    body = client.get("/api/v3/traces", params={**WINDOW, "query.serviceName": "backend"}).json()
    trace_ids = {
        span["traceId"]
        for rs in body["result"]["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    }
    assert trace_ids == {TRACE_A.hex(), TRACE_B.hex()}
    errors = {**WINDOW, "query.service_name": "backend", "query.attributes": '{"error":"true"}'}
    only_a = client.get("/api/v3/traces", params=errors).json()
    assert len(only_a["result"]["resourceSpans"]) == 2  # trace A: frontend and backend resources
    assert_v3_error(
        client.get("/api/v3/traces", params={**WINDOW, "query.serviceName": "nobody"}),
        404,
        "No traces found",
    )
    assert_v3_error(
        client.get("/api/v3/traces", params={"query.serviceName": "backend"}),
        400,
        "query.startTimeMin and query.startTimeMax are required",
    )


def test_find_traces_post(client: AppClient) -> None:
    query = {
        "serviceName": "frontend",
        "operationName": "checkout",
        "startTimeMin": WINDOW["query.startTimeMin"],
        "startTimeMax": WINDOW["query.startTimeMax"],
        "searchDepth": 10,
    }
    body = client.post("/api/v3/traces", content=orjson.dumps({"query": query})).json()
    spans = [
        s for rs in body["result"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]
    ]
    assert {s["traceId"] for s in spans} == {TRACE_B.hex()}
    bad = client.post("/api/v3/traces", content=b"[")
    assert bad.status_code == 400


def test_trace_summaries(client: AppClient) -> None:
    params = {**WINDOW, "query.serviceName": "backend", "query.searchDepth": "20"}
    body = client.get("/api/v3/trace-summaries", params=params).json()
    b_start = START_NS + 60_000_000_000
    assert body == {
        "summaries": [
            {
                "traceId": TRACE_B.hex(),
                "rootServiceName": "frontend",
                "rootOperationName": "checkout",
                "minStartTimeUnixNano": str(b_start),
                "maxEndTimeUnixNano": str(b_start + 5_000_000),
                "spanCount": 3,
                "services": [
                    {"name": "backend", "spanCount": 1},
                    {"name": "frontend", "spanCount": 2},
                ],
            },
            {
                "traceId": TRACE_A.hex(),
                "rootServiceName": "frontend",
                "rootOperationName": "GET /",
                "minStartTimeUnixNano": str(START_NS),
                "maxEndTimeUnixNano": str(START_NS + 9_000_000),
                "spanCount": 3,
                "errorSpanCount": 1,
                "services": [
                    {"name": "backend", "spanCount": 1, "errorSpanCount": 1},
                    {"name": "frontend", "spanCount": 2},
                ],
            },
        ]
    }
    nothing = client.get(
        "/api/v3/trace-summaries", params={**WINDOW, "query.serviceName": "nobody"}
    )
    assert nothing.status_code == 200
    assert nothing.json() == {}


def test_orphans_are_counted() -> None:
    orphan_trace = trace_a()[1:]  # the root is missing: "call backend" is an orphan
    client = client_for(memory_storage(orphan_trace))
    (summary,) = client.get("/api/v3/trace-summaries", params=WINDOW).json()["summaries"]
    assert summary["orphanSpanCount"] == 1
    assert "rootServiceName" not in summary  # no span without a parent


def test_dependencies(client: AppClient) -> None:
    params = {"startTime": iso(START_NS - 10**9), "end_time": iso(START_NS + 3600 * 10**9)}
    assert client.get("/api/v3/dependencies", params=params).json() == {
        "dependencies": [
            {"parent": "frontend", "child": "backend", "callCount": "2"},
            {"parent": "frontend", "child": "frontend", "callCount": "2"},
        ]
    }
    assert_v3_error(client.get("/api/v3/dependencies"), 400, "start_time is required")


def test_capabilities_and_failures() -> None:
    storage = memory_storage(trace_a())
    refusing = client_for(Declaring(storage, search_without_service=False))
    assert_v3_error(refusing.get("/api/v3/trace-summaries", params=WINDOW), 400, SERVICE_REQUIRED)
    down = client_for(Down(storage))
    assert_v3_error(down.get("/api/v3/services"), 500, "backend unreachable")
    assert_v3_error(down.get(f"/api/v3/traces/{TRACE_A.hex()}"), 500, "backend unreachable")


def test_adjuster_warnings_are_an_attribute() -> None:
    spans = trace_a()
    spans[0].links.append(Link(b"", sid(9)))  # an empty link: removed with a warning
    client = client_for(memory_storage(spans))
    body = client.get(f"/api/v3/traces/{TRACE_A.hex()}").json()
    root = body["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert "links" not in root
    assert root["attributes"][-1] == {
        "key": "@jaeger@warnings",
        "value": {"arrayValue": {"values": [{"stringValue": "Invalid span link removed"}]}},
    }
