"""Where a sidecar's per-request CPU goes, without sockets: the inbound handler's work per
request (extract, decide, inject, span, metrics) and the span encoding the reporter does later
(`encode_request`, and the generated-class `request_from_spans` it replaced, for comparison),
against the plain `StaticHandler`. Single-threaded CPU time, minimum of several runs, so it is
less at the mercy of a shared machine than the end-to-end `bench/proxy.py`.

Usage: python bench/sidecar_handler.py [--requests 5000] [--runs 7]
"""

from __future__ import annotations

import argparse
import time

from tracemesh.codecs.otlp_encode import encode_request
from tracemesh.codecs.otlp_proto import request_from_spans
from tracemesh.mesh.handler import BaseHandler, Exchange, Forward
from tracemesh.mesh.http1 import RequestHead, RequestParser
from tracemesh.mesh.proxy_metrics import ProxyMetrics
from tracemesh.mesh.sampler import Sampler
from tracemesh.mesh.sidecar import InboundHandler
from tracemesh.mesh.static import StaticHandler
from tracemesh.mesh.tracing import ProxyIdentity, Tracer, propagator_for
from tracemesh.model.span import Span

WITH_CONTEXT = (
    b"GET /x HTTP/1.1\r\nHost: bench\r\nuser-agent: wrk\r\naccept: */*\r\n"
    b"x-b3-traceid: 463ac35c9f6413ad48485a3953bb6124\r\nx-b3-spanid: a2fb4a1d1a96d312\r\n"
    b"x-b3-sampled: 1\r\nx-request-id: 3d2e6d1c-9f0b-9c1a-8a7e-2b4c6d8e0f12\r\n\r\n"
)
NO_CONTEXT = b"GET /x HTTP/1.1\r\nHost: bench\r\nuser-agent: wrk\r\n\r\n"


class Spans(list[Span]):
    def report(self, span: Span) -> None:
        self.append(span)


def exchange(raw: bytes) -> Exchange:
    head = RequestParser().feed(raw)[0]
    assert isinstance(head, RequestHead)
    return Exchange(head, ("127.0.0.1", 40000), time.time_ns(), time.monotonic())


def measure(handler: BaseHandler, raw: bytes, requests: int) -> float:
    """CPU µs per request for on_request + on_end."""
    exchanges = [exchange(raw) for _ in range(requests)]
    started = time.process_time()
    for ex in exchanges:
        forward = handler.on_request(ex)
        ex.forward = forward if isinstance(forward, Forward) else None
        ex.status, ex.end = 200, ex.start + 0.001
        handler.on_end(ex)
    return (time.process_time() - started) / requests * 1e6


def sidecar(sampling: float) -> tuple[InboundHandler, Spans]:
    identity = ProxyIdentity("bench", labels={"version": "v1"})
    spans = Spans()
    propagator = propagator_for(["b3", "w3c", "jaeger", "baggage"])
    tracer = Tracer(identity, propagator, Sampler(sampling), spans)
    return InboundHandler(tracer, ("127.0.0.1", 9000), 8080, ProxyMetrics(identity)), spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    encode: list[float] = []
    encode_direct: list[float] = []
    for _ in range(args.runs):
        rows.setdefault("static handler", []).append(
            measure(StaticHandler(("127.0.0.1", 9000)), WITH_CONTEXT, args.requests)
        )
        for label, sampling, raw in (
            ("sidecar inbound 0%, B3 context in", 0.0, WITH_CONTEXT),
            ("sidecar inbound 100%, B3 context in", 100.0, WITH_CONTEXT),
            ("sidecar inbound 100%, no context", 100.0, NO_CONTEXT),
        ):
            handler, spans = sidecar(sampling)
            rows.setdefault(label, []).append(measure(handler, raw, args.requests))
            if spans and label.endswith("no context"):
                started = time.process_time()
                for i in range(0, len(spans), 256):  # the reporter's batch size
                    request_from_spans(spans[i : i + 256]).SerializeToString()
                encode.append((time.process_time() - started) / len(spans) * 1e6)
                started = time.process_time()
                for i in range(0, len(spans), 256):
                    encode_request(spans[i : i + 256])
                encode_direct.append((time.process_time() - started) / len(spans) * 1e6)
    print(f"CPU µs per request, minimum of {args.runs} runs of {args.requests} requests\n")
    print("| handler | on_request + on_end |\n|---|---|")
    for label, values in rows.items():
        print(f"| {label} | {min(values):.1f} µs |")
    print(f"| span encoding (request_from_spans, 256 a batch) | {min(encode):.1f} µs per span |")
    print(f"| span encoding (encode_request, 256 a batch) | {min(encode_direct):.1f} µs per span |")


if __name__ == "__main__":
    main()
