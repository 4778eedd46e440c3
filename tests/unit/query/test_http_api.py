"""The Jaeger HTTP API over a real MemoryStorage: routes, envelope, errors, UI serving, metrics."""

from __future__ import annotations

import base64
import pathlib

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
    trace_a,
    trace_b,
)
from tracemesh.model.ids import trace_id_to_hex
from tracemesh.model.span import Resource, Span
from tracemesh.runtime.metrics import Metrics

A_HEX = trace_id_to_hex(TRACE_A)
B_HEX = trace_id_to_hex(TRACE_B)  # 16 hex digits: a 64-bit id


@pytest.fixture(scope="module")
def client() -> AppClient:
    return client_for(memory_storage(trace_a(), trace_b()))


def envelope(data: object, total: int = 0, errors: object = None) -> dict[str, object]:
    return {"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors}


def assert_go_error(response: object, status: int, body: dict[str, object]) -> None:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "text/plain; charset=utf-8"  # type: ignore[attr-defined]
    assert response.content.endswith(b"\n")  # type: ignore[attr-defined]
    assert orjson.loads(response.content) == body  # type: ignore[attr-defined]


def test_services(client: AppClient) -> None:
    response = client.get("/api/services")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == envelope(["backend", "frontend"], total=2)


def test_legacy_operations(client: AppClient) -> None:
    names = ["GET /", "call backend", "checkout", "pay"]
    assert client.get("/api/services/frontend/operations").json() == envelope(names, total=4)
    assert client.get("/api/services/nobody/operations").json() == envelope([], total=0)


def test_operations(client: AppClient) -> None:
    response = client.get("/api/operations", params={"service": "frontend", "spanKind": "server"})
    data = [{"name": "GET /", "spanKind": "server"}, {"name": "checkout", "spanKind": "server"}]
    assert response.json() == envelope(data, total=2)
    all_kinds = client.get("/api/operations", params={"service": "backend"}).json()
    assert all_kinds["total"] == 2
    assert_go_error(
        client.get("/api/operations"),
        400,
        {
            "data": None,
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": [{"code": 400, "msg": "parameter 'service' is required"}],
        },
    )


def test_get_trace_golden(client: AppClient) -> None:
    start_us = START_NS // 1000
    body = client.get(f"/api/traces/{A_HEX}").json()
    assert body["total"] == 0 and body["errors"] is None
    (trace,) = body["data"]
    assert trace["traceID"] == A_HEX
    assert trace["processes"] == {
        "p1": {
            "serviceName": "frontend",
            "tags": [{"key": "host.name", "type": "string", "value": "web-1"}],
        },
        "p2": {"serviceName": "backend", "tags": []},
    }
    assert trace["warnings"] is None
    root, call, handle = trace["spans"]
    assert root == {
        "traceID": A_HEX,
        "spanID": "0000000000000001",
        "flags": 1,
        "operationName": "GET /",
        "references": [],
        "startTime": start_us,
        "duration": 9000,
        "tags": [
            {"key": "otel.scope.name", "type": "string", "value": "manual"},
            {"key": "otel.scope.version", "type": "string", "value": "1.0"},
            {"key": "http.status_code", "type": "int64", "value": 200},
            {"key": "span.kind", "type": "string", "value": "server"},
        ],
        "logs": [],
        "processID": "p1",
        "warnings": None,
    }
    assert call["references"] == [
        {"refType": "CHILD_OF", "traceID": A_HEX, "spanID": "0000000000000001"}
    ]
    assert "flags" not in call
    assert handle["processID"] == "p2"
    assert handle["tags"][-3:] == [
        {"key": "otel.status_code", "type": "string", "value": "ERROR"},
        {"key": "error", "type": "bool", "value": True},
        {"key": "otel.status_description", "type": "string", "value": "db down"},
    ]
    assert handle["logs"] == [
        {
            "timestamp": start_us + 3000,
            "fields": [
                {"key": "event", "type": "string", "value": "retry"},
                {"key": "attempt", "type": "int64", "value": 2},
            ],
        }
    ]


def test_get_trace_ids_forms(client: AppClient) -> None:
    short = client.get("/api/traces/b0").json()
    assert short["data"][0]["traceID"] == B_HEX
    base64_id = client.get("/api/traces/CvdlGRbNQ92ESOshHIAxnA==").json()
    assert base64_id["data"][0]["traceID"] == A_HEX


def test_trace_not_found_and_bad_id(client: AppClient) -> None:
    assert_go_error(
        client.get("/api/traces/ffff"),
        404,
        envelope(None, errors=[{"code": 404, "msg": "trace not found"}]),
    )
    response = client.get("/api/traces/not-an-id!")
    assert response.status_code == 400
    assert "hex" in orjson.loads(response.content)["errors"][0]["msg"]
    bad_start = client.get(f"/api/traces/{A_HEX}", params={"start": "x"})
    assert bad_start.status_code == 400


def test_zipkin_ids_split_unless_raw(client: AppClient) -> None:
    adjusted = client.get(f"/api/traces/{B_HEX}").json()["data"][0]["spans"]
    assert [s["spanID"] for s in adjusted] == [
        "0000000000000020",
        "0000000000000021",
        "0000000000000001",
    ]
    assert adjusted[2]["references"][0]["spanID"] == "0000000000000021"
    raw = client.get(f"/api/traces/{B_HEX}", params={"raw": "true"}).json()["data"][0]["spans"]
    assert [s["spanID"] for s in raw] == [
        "0000000000000020",
        "0000000000000021",
        "0000000000000021",
    ]


def test_pretty_print(client: AppClient) -> None:
    pretty = client.get("/api/services", params={"prettyPrint": "true"})
    assert pretty.text.startswith('{\n  "data": [\n')
    assert b"\n" not in client.get("/api/services", params={"prettyPrint": "false"}).content


def test_search(client: AppClient) -> None:
    body = client.get("/api/traces", params={"service": "backend", "limit": "20"}).json()
    assert body["errors"] is None and body["total"] == 0
    assert [t["traceID"] for t in body["data"]] == [B_HEX, A_HEX]  # newest first
    tagged = client.get("/api/traces", params={"service": "backend", "tags": '{"error":"true"}'})
    assert [t["traceID"] for t in tagged.json()["data"]] == [A_HEX]
    by_tag = client.get(
        "/api/traces", params=[("service", "frontend"), ("tag", "http.status_code:200")]
    )
    assert [t["traceID"] for t in by_tag.json()["data"]] == [A_HEX]
    slow = client.get("/api/traces", params={"service": "frontend", "minDuration": "8500us"})
    assert [t["traceID"] for t in slow.json()["data"]] == [A_HEX]
    none = client.get("/api/traces", params={"service": "frontend", "operation": "nothing"})
    assert none.json() == envelope([])
    old = client.get("/api/traces", params={"service": "frontend", "start": "1", "end": "2"})
    assert old.json()["data"] == []


def test_search_by_ids_reports_missing_ones(client: AppClient) -> None:
    response = client.get("/api/traces", params=[("traceID", A_HEX), ("traceID", "abc")])
    assert response.status_code == 200
    body = response.json()
    assert [t["traceID"] for t in body["data"]] == [A_HEX]
    assert body["errors"] == [{"msg": "trace not found", "traceID": "0000000000000abc"}]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"service": "s", "minDuration": "2s", "maxDuration": "1s"},
            "'maxDuration' should be greater than 'minDuration'",
        ),
        (
            {"service": "s", "start": "yes"},
            "unable to parse param 'start': strconv.ParseInt: parsing \"yes\": invalid syntax",
        ),
        (
            {"service": "s", "tag": "oops"},
            "malformed 'tag' parameter, expecting key:value, received: oops",
        ),
    ],
)
def test_search_errors(client: AppClient, params: dict[str, str], message: str) -> None:
    response = client.get("/api/traces", params=params)
    assert_go_error(response, 400, envelope(None, errors=[{"code": 400, "msg": message}]))


def test_classic_search_requires_a_service_as_jaeger_does() -> None:
    # Even a backend that can search across services gets Jaeger's 400 here; api_v3 allows it.
    for storage in (
        memory_storage(trace_a()),
        Declaring(memory_storage(trace_a()), search_without_service=False),
    ):
        assert_go_error(
            client_for(storage).get("/api/traces"),
            400,
            envelope(None, errors=[{"code": 400, "msg": "parameter 'service' is required"}]),
        )


def test_dependencies(client: AppClient) -> None:
    body = client.get("/api/dependencies", params={"lookback": str(7 * 24 * 3600 * 1000)}).json()
    assert body == envelope(
        [
            {"parent": "frontend", "child": "backend", "callCount": 2},
            {"parent": "frontend", "child": "frontend", "callCount": 2},
        ]
    )
    only = client.get("/api/dependencies", params={"service": "backend"}).json()["data"]
    assert only == [{"parent": "frontend", "child": "backend", "callCount": 2}]
    assert client.get("/api/dependencies", params={"endTs": "1"}).json()["data"] == []
    assert client.get("/api/dependencies", params={"lookback": "x"}).status_code == 400


OTLP_JSON = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "up"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "s"},
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "name": "uploaded",
                            "kind": 2,
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "attributes": [{"key": "n", "value": {"intValue": "9007199254740993"}}],
                        },
                        {
                            "traceId": "00000000000000000000000000000001",
                            "spanId": "0000000000000002",
                            "name": "second",
                            "startTimeUnixNano": "1000",
                            "endTimeUnixNano": "2000",
                        },
                    ],
                }
            ],
        }
    ]
}


def test_transform(client: AppClient) -> None:
    body = client.post("/api/transform", content=orjson.dumps(OTLP_JSON)).json()
    assert body["errors"] is None
    first, second = body["data"]
    assert first["traceID"] == "5b8efff798038103d269b633813fc60c"
    assert first["spans"][0]["tags"] == [
        {"key": "otel.scope.name", "type": "string", "value": "s"},
        {"key": "n", "type": "int64", "value": "9007199254740993"},
        {"key": "span.kind", "type": "string", "value": "server"},
    ]
    assert first["processes"] == {"p1": {"serviceName": "up", "tags": []}}
    assert second["traceID"] == "0000000000000001"
    assert second["spans"][0]["startTime"] == 1 and second["spans"][0]["duration"] == 1
    bad = client.post("/api/transform", content=b"{not json")
    assert bad.status_code == 400
    assert orjson.loads(bad.content)["errors"][0]["msg"].startswith("cannot unmarshal OTLP : ")
    assert client.post("/api/transform", content=b"{}").json() == envelope([])


def test_disabled_features_and_unknown_paths(client: AppClient) -> None:
    latencies = client.get("/api/metrics/latencies", params={"service": "x", "quantile": "0.9"})
    assert latencies.status_code == 501
    assert "no metrics backend configured" in orjson.loads(latencies.content)["errors"][0]["msg"]
    assert client.post(f"/api/archive/{A_HEX}").status_code == 501
    unknown = client.get("/api/no-such-thing")
    assert unknown.status_code == 404
    assert orjson.loads(unknown.content)["errors"][0]["code"] == 404
    assert client.post("/api/services").status_code == 405


def test_storage_failure_is_a_500() -> None:
    down = client_for(Down(memory_storage()))
    for path in (
        "/api/services",
        f"/api/traces/{A_HEX}",
        "/api/traces?service=x",
        "/api/dependencies",
    ):
        assert_go_error(
            down.get(path),
            500,
            envelope(None, errors=[{"code": 500, "msg": "backend unreachable"}]),
        )


def test_latency_is_recorded() -> None:
    metrics = Metrics()
    client = client_for(memory_storage(trace_a()), metrics)
    client.get("/api/services")
    client.get("/api/traces/ffff")
    sample = metrics.registry.get_sample_value
    labels = {"endpoint": "/api/services", "status": "200"}
    assert sample("tracemesh_query_latency_seconds_count", labels) == 1
    missing = {"endpoint": "/api/traces/{traceID}", "status": "404"}
    assert sample("tracemesh_query_latency_seconds_count", missing) == 1


def test_base_path() -> None:
    client = client_for(memory_storage(trace_a()), base_path="/jaeger/")
    assert client.get("/jaeger/api/services").json()["data"] == ["backend", "frontend"]
    assert client.get("/jaeger/api/v3/services").json() == {"services": ["backend", "frontend"]}
    assert client.get("/api/services").status_code == 404
    assert "not built" in client.get("/jaeger/").text
    with pytest.raises(ValueError, match="must start with"):
        client_for(memory_storage(), base_path="jaeger")


INDEX = (
    b'<html><head><base href="/" data-inject-target="BASE_URL"/><script>'
    b"JAEGER_CONFIG = DEFAULT_CONFIG;JAEGER_VERSION = DEFAULT_VERSION;"
    b"JAEGER_BACKEND_CAPABILITIES = DEFAULT_BACKEND_CAPABILITIES;</script></head></html>"
)


def test_static_ui(tmp_path: pathlib.Path) -> None:
    (tmp_path / "index.html").write_bytes(INDEX)
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "app.js").write_text("console.log(1)")
    (tmp_path.parent / "secret.txt").write_text("no")
    client = client_for(memory_storage(), ui_dir=tmp_path)
    for path in ("/", "/search", "/trace/abc", "/index.html", "/%2e%2e/secret.txt"):
        page = client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert b'"archiveStorage":false' in page.content
        assert b'"searchWithoutServiceName":true' in page.content
        assert b"DEFAULT_BACKEND_CAPABILITIES" not in page.content
        assert b"DEFAULT_VERSION" not in page.content
        assert b"JAEGER_CONFIG = DEFAULT_CONFIG;" in page.content  # no UI config: UI defaults
    script = client.get("/static/app.js")
    assert script.text == "console.log(1)"
    assert "javascript" in script.headers["content-type"]
    assert "Cache-Control" not in script.headers  # not content-hashed: may change
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "index-Ab12.js").write_text("let a = 1")
    for _ in range(2):  # read once, then answered from memory with the same headers
        bundle = client.get("/assets/index-Ab12.js")
        assert bundle.text == "let a = 1"
        assert "javascript" in bundle.headers["content-type"]
        assert "immutable" in bundle.headers["cache-control"]
    assert client.get("/assets/missing.js").headers["content-type"].startswith("text/html")
    assert client.get("/api/nope").status_code == 404
    assert client.get("/api/services").json()["data"] == []
    based = client_for(memory_storage(), ui_dir=tmp_path, base_path="/jaeger")
    assert b'<base href="/jaeger/"' in based.get("/jaeger/search").content


def test_base64_trace_id_with_slash() -> None:
    trace_id = bytes.fromhex("fbff") * 8  # standard base64 of it contains "/"
    encoded = base64.b64encode(trace_id).decode()
    assert "/" in encoded
    span = Span(trace_id, b"\x01" * 8, "op", START_NS, START_NS + 1, resource=Resource())
    client = client_for(memory_storage([span]))
    assert client.get(f"/api/traces/{encoded}").json()["data"][0]["traceID"] == trace_id.hex()
    assert client.get(f"/api/v3/traces/{encoded}").status_code == 200


def test_ui_dir_without_index_falls_back_to_placeholder(tmp_path: pathlib.Path) -> None:
    page = client_for(memory_storage(), ui_dir=tmp_path).get("/search")
    assert page.status_code == 200
    assert "not built" in page.text
