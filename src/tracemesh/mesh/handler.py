"""The contract between the proxy server and what decides (routing) and observes (tracing): a
`Handler` gets each request's `Exchange` and answers with a `Forward` or a `Respond`.

Sequence for one request (each callback runs on the event loop; keep it quick, never block):

    on_request(ex)                  -> Forward(host, port, ...) | Respond(status, ...)
    [on_failure(ex, flag)           -> Forward to try again | None]   upstream failed before a head
    [on_response(ex, head)          -> Forward to try again | None]   response head arrived
    on_end(ex)                      always exactly once, after the last byte (or the failure)

A retry (a `Forward` from on_failure/on_response) is honoured only while the request can be
replayed (it had no body) and nothing was sent to the client yet; otherwise the server goes on as
if None was returned. `on_response` may edit `head.headers` in place (names lower-case) to add or
change response headers. Exceptions from a handler are logged and answered with 500.

An HTTP/2 prior-knowledge connection (gRPC over h2c) is served by `h2_downstream`: each of its
streams is one exchange, with version `2.0` and its `:authority` as host. A retry there replays a
small request body (unlike HTTP/1.1, where only bodiless requests are replayed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tracemesh.mesh.http1 import RequestHead, ResponseHead


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the request to `host:port` (a name or an IP). Header names are lower-case."""

    host: str
    port: int
    set_headers: Sequence[tuple[bytes, bytes]] = ()  # replace every header of the same name
    remove_headers: Sequence[bytes] = ()
    authority: bytes | None = None  # new Host header value
    path: bytes | None = None  # new request target (origin-form)
    timeout: float | None = None  # request end -> response end for this try; None: the default
    delay: float = 0.0  # wait this long first (fault injection: flags the exchange DI)
    backoff: float = 0.0  # wait this long first too, unflagged (a retry's backoff)
    cluster: str = ""  # a name for the destination, for spans and logs


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer the client without an upstream (no route, injected abort, redirect...)."""

    status: int
    body: bytes = b""
    headers: Sequence[tuple[bytes, bytes]] = ()
    flag: str = "-"  # response_flags for the exchange, e.g. NR (no route), FI (fault injected)
    delay: float = 0.0  # answer after this long (an injected delay before an abort: flags DI)


# Envoy's response_flags this server sets itself.
NO_ROUTE = "NR"
UPSTREAM_CONNECT_FAILURE = "UF"
UPSTREAM_TIMEOUT = "UT"
UPSTREAM_CONNECTION_TERMINATION = "UC"
UPSTREAM_PROTOCOL_ERROR = "UPE"
DOWNSTREAM_CONNECTION_TERMINATION = "DC"
DOWNSTREAM_PROTOCOL_ERROR = "DPE"
STREAM_IDLE_TIMEOUT = "SI"
DELAY_INJECTED = "DI"


@dataclass(slots=True, eq=False)
class Exchange:
    """One request through the proxy: what arrived, where it went, what came back, and when.

    Times are `time.monotonic()` seconds except `start_ns` (wall clock, ns since the epoch, for
    span start times). Sizes count body bytes, as Envoy's request_size/response_size do.
    """

    request: RequestHead
    client: tuple[str, int]
    start_ns: int
    start: float
    forward: Forward | None = None
    upstream: tuple[str, int] | None = None  # the address the last try went to
    attempts: int = 0
    status: int = 0  # the status the client got (0: none, the connection was closed instead)
    flags: str = "-"
    request_bytes: int = 0
    response_bytes: int = 0
    upstream_start: float = 0.0  # the last try began (after any injected delay)
    response_start: float = 0.0  # the response head reached the proxy
    end: float = 0.0
    reused_connection: bool = False  # the last try went over a pooled keep-alive connection
    state: dict[str, Any] = field(default_factory=dict)  # the handler's own per-request data
    destination: tuple[str, int] | None = None  # where a captured connection was headed

    def add_flag(self, flag: str) -> None:
        self.flags = flag if self.flags == "-" else f"{self.flags},{flag}"

    @property
    def duration(self) -> float:
        return self.end - self.start


class Handler(Protocol):
    def on_request(self, exchange: Exchange) -> Forward | Respond: ...

    def on_failure(self, exchange: Exchange, flag: str) -> Forward | None: ...

    def on_response(self, exchange: Exchange, head: ResponseHead) -> Forward | None: ...

    def on_end(self, exchange: Exchange) -> None: ...


class BaseHandler:
    """Defaults for everything but the routing decision: no retries, nothing recorded."""

    def on_request(self, exchange: Exchange) -> Forward | Respond:
        raise NotImplementedError

    def on_failure(self, exchange: Exchange, flag: str) -> Forward | None:
        return None

    def on_response(self, exchange: Exchange, head: ResponseHead) -> Forward | None:
        return None

    def on_end(self, exchange: Exchange) -> None:
        return None
