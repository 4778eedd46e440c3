"""Serve an ASGI app on a socket we bind ourselves, inside the process's one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

from tracemesh.runtime.lifecycle import Listener
from tracemesh.runtime.tasks import TaskOwner


def bind_tcp(host: str, port: int) -> socket.socket:
    """Bind now, so a busy port fails at startup with a clear error and port 0 gets a real port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The process installs its own SIGINT/SIGTERM handling and shuts every role down in order.
        yield


class HttpServer:
    """One listening HTTP server; `port` is the bound port (useful when 0 was asked). With `tls`
    it serves HTTPS; loading a new chain into that context serves it on the next handshake."""

    def __init__(
        self, name: str, app: ASGIApp, host: str, port: int, tls: ssl.SSLContext | None = None
    ) -> None:
        self.name = name
        self._sock = bind_tcp(host, port)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            http="httptools",
            lifespan="off",
            access_log=False,
            log_config=None,
            timeout_keep_alive=30,
            server_header=False,
        )
        if tls is not None:
            config.load()
            config.ssl = tls
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    def start(self, tasks: TaskOwner) -> None:
        self._task = tasks.spawn(f"http:{self.name}", self._server.serve(sockets=[self._sock]))

    @property
    def serving(self) -> bool:
        return self._server.started and not self._server.should_exit

    async def wait_started(self) -> None:
        while not self._server.started:
            if self._task is not None and self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._sock.close()


async def serve(
    name: str,
    app: ASGIApp,
    host: str,
    port: int,
    tasks: TaskOwner,
    path: str = "",
    *,
    tls: ssl.SSLContext | None = None,
) -> tuple[HttpServer, Listener]:
    """Start one server under `tasks` and wait until it listens: the server, and the `Listener`
    a process keeps for it (not intake: it takes no spans)."""
    server = HttpServer(name, app, host, port, tls=tls)
    server.start(tasks)
    await server.wait_started()
    scheme = "https" if tls is not None else "http"
    where = f"{scheme}://{host}:{server.port}{path}"
    return server, Listener(name, where, server.stop, lambda: server.serving, False)
