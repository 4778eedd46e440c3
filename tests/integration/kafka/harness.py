"""Real `tracemesh collector --storage kafka` and `tracemesh ingester` processes around a real
broker, a client that records which spans were acknowledged, and readers that count what an
ingester stored."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e.server import Server, start
from tests.servers.kafka import KafkaBroker
from tracemesh.codecs import otlp_proto
from tracemesh.model.span import Resource, Scope, Span, SpanKind

T0 = (time.time_ns() // 1000 - 60_000_000) * 1000  # a minute ago, whole microseconds
RESOURCE = Resource({"service.name": "shop", "host.name": "web-1"})
SCOPE = Scope("kafka-tests", "1.0")
_dirs = itertools.count()


def collector(tmp: Path, broker: KafkaBroker, topic: str, *args: str) -> Server:
    return start(_dir(tmp, "collector"), "--storage", "kafka",
                 "--kafka.producer.brokers", broker.bootstrap, "--kafka.producer.topic", topic,
                 *args, command="collector")  # fmt: skip


def ingester(tmp: Path, broker: KafkaBroker, topic: str, *args: str, group: str = "g") -> Server:
    return start(_dir(tmp, "ingester"), "--kafka.consumer.brokers", broker.bootstrap,
                 "--kafka.consumer.topic", topic, "--kafka.consumer.group-id", group,
                 "--memory.max-traces", "0", *args, command="ingester")  # fmt: skip


def _dir(tmp: Path, name: str) -> Path:
    path = tmp / f"{name}-{next(_dirs)}"
    path.mkdir()
    return path


def traces(prefix: int, count: int, spans_per_trace: int = 3) -> list[Span]:
    """`count` traces of a root and its children, ids unique per `prefix`; each span carries
    its own number so a read-back can be checked field by field."""
    out: list[Span] = []
    for t in range(count):
        trace_id = prefix.to_bytes(4, "big") + t.to_bytes(12, "big")
        for s in range(spans_per_trace):
            start = T0 + t * 1000 + s * 100
            out.append(Span(
                trace_id, (t * 100 + s + 1).to_bytes(8, "big"), f"op-{s}", start, start + 50_000,
                parent_span_id=b"" if s == 0 else (t * 100 + 1).to_bytes(8, "big"),
                kind=SpanKind.SERVER if s == 0 else SpanKind.CLIENT,
                attributes={"seq": t * 100 + s, "ok": s % 2 == 0, "ratio": s / 4, "k": "v"},
                resource=RESOURCE, scope=SCOPE,
            ))  # fmt: skip
    return out


def send(client: httpx.Client, srv: Server, spans: list[Span]) -> int:
    body = otlp_proto.request_from_spans(spans).SerializeToString()
    response = client.post(srv.otlp_http, content=body,
                           headers={"Content-Type": "application/x-protobuf"})  # fmt: skip
    return response.status_code


def send_all(srv: Server, spans: list[Span], per_request: int = 50) -> None:
    with httpx.Client(timeout=60) as client:
        for i in range(0, len(spans), per_request):
            status = send(client, srv, spans[i : i + per_request])
            assert status == 200, status


@dataclass
class Sender:
    """Sends batches in a thread until stopped; a batch counts as acknowledged only on HTTP 200.
    Refused or failed batches are sent again, as an OTLP exporter would."""

    srv: Server
    spans: list[Span]
    per_request: int = 20
    pause: float = 0.02
    acknowledged: list[Span] = field(default_factory=list)
    refusals: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sender:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            pending = [self.spans[i : i + self.per_request]
                       for i in range(0, len(self.spans), self.per_request)]  # fmt: skip
            while pending and not self._stop.is_set():
                try:
                    status = send(client, self.srv, pending[0])
                except httpx.TransportError:
                    status = 0
                if status == 200:
                    self.acknowledged.extend(pending.pop(0))
                else:
                    self.refusals += 1
                time.sleep(self.pause)

    def stop(self) -> list[Span]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(90)
        return self.acknowledged

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()


def metric(srv: Server, name: str) -> float:
    """The sum of a metric's samples over its labels (0 when absent)."""
    total = 0.0
    for line in httpx.get(srv.admin + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def stored(client: httpx.Client, srv: Server, trace_ids: set[bytes]) -> dict[bytes, list[dict]]:  # type: ignore[type-arg]
    """span id -> every copy of it an ingester's query API returns, for the given traces."""
    out: dict[bytes, list[dict]] = {}  # type: ignore[type-arg]
    for trace_id in trace_ids:
        response = client.get(f"{srv.query}/api/traces/{trace_id.hex()}")
        if response.status_code != 200:
            continue
        for trace in response.json()["data"]:
            for span in trace["spans"]:
                out.setdefault(bytes.fromhex(span["spanID"]), []).append(span)
    return out


def wait_stored(
    servers: list[Server], expected: list[Span], timeout: float = 60.0
) -> dict[bytes, list[dict]]:  # type: ignore[type-arg]
    """Until every expected span is readable from one of `servers`; their union then."""
    trace_ids = {span.trace_id for span in expected}
    want = {span.span_id for span in expected}
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=30) as client:
        while True:
            found: dict[bytes, list[dict]] = {}  # type: ignore[type-arg]
            for srv in servers:
                for span_id, copies in stored(client, srv, trace_ids).items():
                    found.setdefault(span_id, []).extend(copies)
            missing = want - found.keys()
            if not missing or time.monotonic() > deadline:
                assert not missing, f"{len(missing)} of {len(want)} acknowledged spans not stored"
                return found
            time.sleep(0.2)


def assert_exactly_as_sent(found: dict[bytes, list[dict]], sent: list[Span]) -> None:  # type: ignore[type-arg]
    """Each sent span is stored once (the query API drops exact duplicates) with its fields."""
    for span in sent:
        copies = found[span.span_id]
        assert len(copies) == 1, f"span {span.span_id.hex()} stored as {len(copies)} versions"
        got = copies[0]
        tags = {t["key"]: t["value"] for t in got["tags"]}
        assert got["operationName"] == span.name
        assert got["startTime"] == span.start_ns // 1000
        assert got["duration"] == (span.end_ns - span.start_ns) // 1000
        assert tags["seq"] == span.attributes["seq"] and tags["k"] == "v"
        assert tags["ok"] == span.attributes["ok"] and tags["ratio"] == span.attributes["ratio"]
        assert tags["span.kind"] == span.kind.jaeger_name
        parent = [r["spanID"] for r in got["references"] if r["refType"] == "CHILD_OF"]
        assert parent == ([span.parent_span_id.hex()] if span.parent_span_id else [])
