"""Traces the browser tests look at, sent to a real server over OTLP/HTTP protobuf.

Deterministic shapes, recent times (so the default 1-hour lookback finds them):
- `checkout` x2: frontend -> cart -> redis, frontend -> payment (an error, an event, a link to
  another trace); the second run is slower in payment and has one extra span, for compare;
- `small`: 24 short traces over four services for the result list, scatter plot and sorting;
- `large`: one trace of 10,000 spans and one of 40,000 (a wide, fairly deep tree).
"""

from __future__ import annotations

import random
import time
from typing import Any

import httpx

from tracemesh.codecs.otlp_proto import request_from_spans
from tracemesh.model.span import Event, Link, Resource, Span, SpanKind, Status, StatusCode

SERVICES = ("frontend", "cart", "payment", "redis")


def _resources() -> dict[str, Resource]:
    return {
        name: Resource(
            {"service.name": name, "host.name": f"{name}-host", "service.version": "1.4"}
        )
        for name in SERVICES
    }


def _id(rnd: random.Random, size: int) -> bytes:
    return rnd.randbytes(size)


def checkout(rnd: random.Random, start_ns: int, slow: bool, linked: bytes) -> list[Span]:
    res = _resources()
    trace_id = _id(rnd, 16)
    ms = 1_000_000
    root = Span(
        trace_id,
        _id(rnd, 8),
        "GET /checkout",
        start_ns,
        start_ns + (250 if slow else 120) * ms,
        kind=SpanKind.SERVER,
        resource=res["frontend"],
        attributes={"http.method": "GET", "http.status_code": 500, "http.route": "/checkout"},
        status=Status(StatusCode.ERROR, "payment failed"),
    )
    cart = Span(
        trace_id,
        _id(rnd, 8),
        "GetCart",
        start_ns + 5 * ms,
        start_ns + 40 * ms,
        parent_span_id=root.span_id,
        kind=SpanKind.CLIENT,
        resource=res["cart"],
        attributes={"cart.items": 3, "retry": False, "ratio": 0.5},
    )
    redis = Span(
        trace_id,
        _id(rnd, 8),
        "HGET",
        start_ns + 10 * ms,
        start_ns + 30 * ms,
        parent_span_id=cart.span_id,
        kind=SpanKind.CLIENT,
        resource=res["redis"],
        attributes={"db.system": "redis", "db.statement": "HGET cart:42"},
    )
    pay_end = start_ns + (240 if slow else 110) * ms
    payment = Span(
        trace_id,
        _id(rnd, 8),
        "Charge",
        start_ns + 45 * ms,
        pay_end,
        parent_span_id=root.span_id,
        kind=SpanKind.CLIENT,
        resource=res["payment"],
        attributes={"payment.amount": 42.5, "card.brand": "visa"},
        status=Status(StatusCode.ERROR, "card declined"),
        events=[
            Event(
                start_ns + 60 * ms,
                "exception",
                {"exception.type": "CardError", "exception.message": "declined"},
            )
        ],
        links=[Link(linked, _id(rnd, 8), attributes={"link.reason": "retry of"})],
    )
    spans = [root, cart, redis, payment]
    if slow:
        spans.append(
            Span(
                trace_id,
                _id(rnd, 8),
                "FraudCheck",
                start_ns + 50 * ms,
                start_ns + 200 * ms,
                parent_span_id=payment.span_id,
                kind=SpanKind.INTERNAL,
                resource=res["payment"],
            )
        )
    return spans


def small(rnd: random.Random, start_ns: int, index: int) -> list[Span]:
    res = _resources()
    trace_id = _id(rnd, 16)
    ms = 1_000_000
    duration = (index + 1) * 3 * ms
    root = Span(
        trace_id,
        _id(rnd, 8),
        f"GET /item/{index % 3}",
        start_ns,
        start_ns + duration,
        kind=SpanKind.SERVER,
        resource=res["frontend"],
        attributes={"http.status_code": 200, "customer": f"c{index}"},
    )
    spans = [root]
    for i in range(index % 4):
        service = SERVICES[1 + i % 3]
        spans.append(
            Span(
                trace_id,
                _id(rnd, 8),
                f"call-{i}",
                start_ns + ms,
                start_ns + duration // 2,
                parent_span_id=root.span_id,
                kind=SpanKind.CLIENT,
                resource=res[service],
            )
        )
    return spans


def large(rnd: random.Random, start_ns: int, count: int) -> list[Span]:
    """`count` spans: a root, then each new span under a random earlier one (depth grows slowly)."""
    res = list(_resources().values())
    trace_id = _id(rnd, 16)
    total_ns = 5_000_000_000
    root = Span(
        trace_id,
        _id(rnd, 8),
        "batch-job",
        start_ns,
        start_ns + total_ns,
        kind=SpanKind.SERVER,
        resource=res[0],
    )
    spans = [root]
    for i in range(1, count):
        parent = spans[rnd.randrange(max(1, i - 50), i)] if i > 50 else spans[rnd.randrange(i)]
        begin = parent.start_ns + rnd.randrange(max(1, (parent.end_ns - parent.start_ns) // 2))
        end = min(parent.end_ns, begin + rnd.randrange(1000, 50_000_000))
        spans.append(
            Span(
                trace_id,
                _id(rnd, 8),
                f"step-{i % 97}",
                begin,
                max(end, begin + 1000),
                parent_span_id=parent.span_id,
                kind=SpanKind.INTERNAL,
                resource=res[i % len(res)],
                attributes={"i": i},
                status=Status(StatusCode.ERROR) if i % 1000 == 0 else Status(),
            )
        )
    return spans


def post(otlp_http_url: str, spans: list[Span]) -> None:
    for first in range(0, len(spans), 5000):
        body = request_from_spans(spans[first : first + 5000]).SerializeToString()
        response = httpx.post(
            otlp_http_url,
            content=body,
            timeout=60,
            headers={"Content-Type": "application/x-protobuf"},
        )
        response.raise_for_status()


def seed(otlp_http_url: str) -> dict[str, Any]:
    """Sends every trace; returns their ids (hex) by role."""
    rnd = random.Random(7)
    now = time.time_ns() - 120 * 1_000_000_000  # two minutes ago, well inside any lookback
    other = small(rnd, now - 60 * 1_000_000_000, 99)
    fast = checkout(rnd, now, slow=False, linked=other[0].trace_id)
    slow = checkout(rnd, now + 1_000_000_000, slow=True, linked=other[0].trace_id)
    smalls = [small(rnd, now + i * 100_000_000, i) for i in range(24)]
    big = large(rnd, now + 2_000_000_000, 10_000)
    huge = large(rnd, now + 3_000_000_000, 40_000)
    for spans in (other, fast, slow, *smalls, big, huge):
        post(otlp_http_url, spans)
    return {
        "checkout_fast": fast[0].trace_id.hex(),
        "checkout_slow": slow[0].trace_id.hex(),
        "linked": other[0].trace_id.hex(),
        "small": [s[0].trace_id.hex() for s in smalls],
        "large_10k": big[0].trace_id.hex(),
        "large_40k": huge[0].trace_id.hex(),
    }


def main() -> None:
    """`python -m tests.e2e.ui_seed`: a seeded all-in-one serving the built UI, to look at by hand
    or to take screenshots of (`ui/e2e/screenshots.mjs`). Prints `{"url": ..., "seed": ...}` as
    one JSON line, then runs until its standard input closes."""
    import json
    import sys
    import tempfile
    from pathlib import Path

    from tests.e2e.server import ROOT, start

    with tempfile.TemporaryDirectory() as tmp:
        ui_dir = ROOT / "src" / "tracemesh" / "query" / "ui"
        server = start(Path(tmp), "--query.ui-dir", str(ui_dir))
        try:
            print(json.dumps({"url": server.query, "seed": seed(server.otlp_http)}), flush=True)
            sys.stdin.read()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
