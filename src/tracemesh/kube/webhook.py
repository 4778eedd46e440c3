"""The mutating admission webhook's HTTP side: AdmissionReviews in, answers out, over HTTPS with a
certificate that can be swapped while serving. A body that is not an AdmissionReview gets a 400
with a one-line reason, never a stack trace."""

from __future__ import annotations

import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tracemesh.kube.injection import ReviewError
from tracemesh.kube.jaeger_resource import Json

PATH = "/mutate-v1-deployment"  # agents beside annotated Deployments
POD_PATH = "/inject-v1-pod"  # mesh sidecars in Pods, as Istio's injector
MAX_BODY = 8 << 20  # the API server sends objects of at most ~3 MiB


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reviews = Counter(
            "tracemesh_operator_admission_reviews",
            "AdmissionReviews answered, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.seconds = Histogram(
            "tracemesh_operator_admission_seconds",
            "Time to answer one AdmissionReview.",
            registry=registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 1),
        )


def _error(status: int, message: str) -> Response:
    return Response(orjson.dumps({"error": message}), status, media_type="application/json")


Reviewer = Callable[[Any], Json]  # a decoded AdmissionReview -> the answer (ReviewError: 400)


def build_app(reviewers: Mapping[str, Reviewer], metrics: WebhookMetrics) -> Starlette:
    """One route per path of `reviewers`. They answer from the operator's current view of the
    cluster, held in memory: no call to the API server during an admission."""

    def route(reviewer: Reviewer) -> Callable[[Request], Awaitable[Response]]:
        async def mutate(request: Request) -> Response:
            started = time.perf_counter()
            body = await request.body()
            if len(body) > MAX_BODY:
                metrics.reviews.labels("refused").inc()
                return _error(413, f"body of {len(body)} bytes is over {MAX_BODY}")
            try:
                answer = reviewer(orjson.loads(body))
            except orjson.JSONDecodeError as exc:
                metrics.reviews.labels("refused").inc()
                return _error(400, f"body is not JSON: {exc}")
            except ReviewError as exc:
                metrics.reviews.labels("refused").inc()
                return _error(400, str(exc))
            outcome = "patched" if "patch" in answer["response"] else "unchanged"
            metrics.reviews.labels(outcome).inc()
            metrics.seconds.observe(time.perf_counter() - started)
            return Response(orjson.dumps(answer), media_type="application/json")

        return mutate

    async def healthz(_: Request) -> Response:
        return Response(b"ok", media_type="text/plain")

    routes = [
        Route(path, route(reviewer), methods=["POST"]) for path, reviewer in reviewers.items()
    ]
    return Starlette(routes=[*routes, Route("/healthz", healthz)])


def server_context(cert: bytes, key: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_chain(context, cert, key)
    return context


def load_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """Put a new certificate and key into a serving context (takes effect on new handshakes)."""
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder, "tls.crt"), Path(folder, "tls.key")
        cert_file.write_bytes(cert)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key)
        context.load_cert_chain(cert_file, key_file)
