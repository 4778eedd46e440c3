"""The demos `tracemesh demo <name>` runs: each one's mesh file, the traffic it sends through the
gateway once the mesh is up (every request labelled, with the trace id its entry app answered
in `x-trace-id`), and what to try by hand."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tracemesh.demos.app_kit import TRACE_ID_HEADER

HERE = Path(__file__).resolve().parent
Sent = list[tuple[str, str]]  # (label, trace id)


@dataclass(frozen=True, slots=True)
class Demo:
    name: str
    summary: str
    traffic: Callable[[str, int], Sent]  # (gateway URL, requests) -> what was sent
    try_it: tuple[str, ...]  # shell commands; {gateway} is the gateway's URL
    needs_sdk: bool = False  # its apps use the OpenTelemetry SDK

    @property
    def mesh_file(self) -> Path:
        return HERE / self.name / "mesh.yaml"


def get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """(status, x-trace-id, body) of a GET straight to `url` (never through a proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        url, headers={"user-agent": "tracemesh-demo", **(headers or {})}
    )
    try:
        with opener.open(request, timeout=30) as response:
            return (
                response.status,
                response.headers.get(TRACE_ID_HEADER, ""),
                response.read().decode(),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get(TRACE_ID_HEADER, ""), exc.read().decode(errors="replace")


def _send(gateway: str, requests: Sequence[tuple[str, str, Mapping[str, str]]]) -> Sent:
    sent = []
    for label, path, headers in requests:
        status, trace_id, body = get(gateway + path, headers)
        text = " ".join(body.split())[:70]
        print(f"  GET {path} {_show(headers)}-> {status} {text}", flush=True)
        sent.append((label, trace_id))
    return sent


def _show(headers: Mapping[str, str]) -> str:
    return "".join(f"[{k}: {v}] " for k, v in headers.items())


def hello_traffic(gateway: str, requests: int) -> Sent:
    netscape = "Mozilla/4.0 (Netscape)"
    return _send(gateway, [
        ("copying", "/sayHello2/Bender", {}),
        ("copying-jaeger-baggage", "/sayHello2/Bender", {"jaeger-baggage": "user-agent=Netscape"}),
        ("copying-w3c-baggage", "/sayHello2/Leela", {"baggage": "user-agent=Netscape"}),
        ("instrumented", "/sayHello/Fry", {}),
        ("instrumented-netscape", "/sayHello/Fry", {"user-agent": netscape}),
    ][: max(requests, 1)])  # fmt: skip


def profile_traffic(gateway: str, requests: int) -> Sent:
    return _send(gateway, [
        ("ok", "/profile/alice", {}),
        ("slow", "/profile/bob", {"x-demo-fault": "slow"}),
        ("failing", "/profile/carol", {"x-demo-fault": "fail"}),
    ][: max(requests, 1)])  # fmt: skip


def bookinfo_traffic(gateway: str, requests: int) -> Sent:
    return _send(gateway, [(f"productpage-{i}", "/productpage", {}) for i in range(requests)])


def timeapp_traffic(gateway: str, requests: int) -> Sent:
    return _send(
        gateway, [("hello-world", "/", {}), ("gettime", "/gettime", {})][: max(requests, 1)]
    )


DEMOS: dict[str, Demo] = {
    demo.name: demo
    for demo in (
        Demo(
            "hello",
            "Chapter 7's hello -> formatter v1/v2, header copying vs the OpenTelemetry SDK, "
            "routing on baggage",
            hello_traffic,
            (
                "curl {gateway}/sayHello2/Bender",
                "curl -H 'jaeger-baggage: user-agent=Netscape' {gateway}/sayHello2/Bender",
                "curl -A Netscape {gateway}/sayHello/Fry",
            ),
            needs_sdk=True,
        ),
        Demo(
            "profile",
            "frontend -> user-service -> profile-service, which can be slow or failing",
            profile_traffic,
            (
                "curl {gateway}/profile/alice",
                "curl -H 'x-demo-fault: slow' {gateway}/profile/bob",
                "curl -H 'x-demo-fault: fail' {gateway}/profile/carol",
            ),
        ),
        Demo(
            "bookinfo",
            "Istio's Bookinfo: productpage -> details, reviews v1/v2/v3 (40/30/30) -> ratings",
            bookinfo_traffic,
            ("curl {gateway}/productpage",),
        ),
        Demo(
            "timeapp",
            "hello world and /gettime: a gateway span, a sidecar span, an application span",
            timeapp_traffic,
            ("curl {gateway}/", "curl {gateway}/gettime"),
            needs_sdk=True,
        ),
    )
}
DEFAULT_REQUESTS = {"hello": 5, "profile": 3, "bookinfo": 10, "timeapp": 2}
