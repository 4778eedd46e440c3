"""The agent's sampling HTTP endpoints on port 5778, as jaeger-agent serves them.

`GET /sampling?service=S` answers the proto-JSON strategy, `GET /?service=S` the same object with
`strategyType` as a number (the Thrift-JSON that old clients parse), and
`GET /baggageRestrictions?service=S` an empty list (no baggage restrictions are configured).
`service` must appear exactly once, else 400 `'service' parameter must be provided once`, the
text Jaeger answers with; unknown services get the default strategy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tracemesh.runtime.metrics import Metrics
from tracemesh.sampling.strategies import StrategyStore

SERVICE_ONCE = "'service' parameter must be provided once\n"
JSON_TYPE = "application/json"


def build_app(store: StrategyStore, metrics: Metrics) -> Starlette:
    def endpoint(
        name: str, answer: Callable[[str], object]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            services = request.query_params.getlist("service")
            if len(services) != 1:
                return _done(metrics, name, PlainTextResponse(SERVICE_ONCE, status_code=400))
            try:
                body = orjson.dumps(answer(services[0]))
            except ValueError:  # a rate limit the legacy form cannot carry, as in Jaeger
                error = PlainTextResponse("cannot marshall to JSON\n", status_code=500)
                return _done(metrics, name, error)
            return _done(metrics, name, Response(body, media_type=JSON_TYPE))

        return handle

    routes = [
        Route("/sampling", endpoint("sampling", store.strategy_json), methods=["GET"]),
        Route("/", endpoint("legacy", store.legacy_json), methods=["GET"]),
        Route("/baggageRestrictions", endpoint("baggage", lambda _: []), methods=["GET"]),
    ]
    return Starlette(routes=routes)


def _done(metrics: Metrics, endpoint: str, response: Response) -> Response:
    metrics.sampling_requests.labels(endpoint, str(response.status_code)).inc()
    return response
