"""The simplest `Handler`: every request to one fixed upstream, or to a known service chosen by
the Host header. An unknown host gets 404 (`NR`), so the proxy is never an open relay.

Run it alone (this is what the benchmark and a quick manual test use):

    python -m tracemesh.mesh.static --listen 127.0.0.1:15001 --upstream 127.0.0.1:8080
    python -m tracemesh.mesh.static --listen 127.0.0.1:15001 --service api=127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Mapping

from tracemesh.mesh.handler import NO_ROUTE, BaseHandler, Exchange, Forward, Respond
from tracemesh.mesh.server import ProxyServer, ServerConfig

log = logging.getLogger("tracemesh.mesh.static")


class StaticHandler(BaseHandler):
    """`upstream` takes everything; otherwise `services` maps a Host (`name` or `name:port`,
    matched case-insensitively, the full authority first) to an address."""

    def __init__(
        self,
        upstream: tuple[str, int] | None = None,
        services: Mapping[str, tuple[str, int]] | None = None,
    ) -> None:
        if upstream is None and not services:
            raise ValueError("give an upstream or at least one service")
        self._default = Forward(*upstream) if upstream is not None else None
        self._routes = {
            name.lower().encode(): Forward(host, port, cluster=name)
            for name, (host, port) in (services or {}).items()
        }

    def on_request(self, exchange: Exchange) -> Forward | Respond:
        if self._default is not None:
            return self._default
        authority = exchange.request.host
        forward = self._routes.get(authority)
        if forward is None and b":" in authority:
            forward = self._routes.get(authority.rsplit(b":", 1)[0])
        if forward is None:
            return Respond(404, b"no route for this host\n", flag=NO_ROUTE)
        return forward


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def serve(listen: tuple[str, int], handler: StaticHandler, config: ServerConfig) -> None:
    server = ProxyServer(handler, config)
    await server.start(*listen)
    log.info("proxy listening on %s:%d", listen[0], server.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(timeout=5.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tracemesh.mesh.static",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 15001))
    parser.add_argument("--upstream", type=_address, help="send every request here")
    parser.add_argument("--service", action="append", default=[], metavar="HOST=ADDR:PORT",
                        help="route by Host header (repeatable)")  # fmt: skip
    args = parser.parse_args(argv)
    services = {}
    for item in args.service:
        name, _, address = item.partition("=")
        services[name] = _address(address)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    asyncio.run(serve(args.listen, StaticHandler(args.upstream, services), ServerConfig()))


if __name__ == "__main__":
    main()
