"""Start a grpc.aio server for raw-bytes handlers: the one place gRPC receivers bind a port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc


async def start_grpc_server(
    handlers: Sequence[Any], host: str, port: int, max_message_bytes: int
) -> tuple[Any, int]:
    """(the started server, its bound port). A busy port raises OSError."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        # gRPC sets SO_REUSEPORT by default, which lets a second server share a busy port
        # silently; we want "address in use" instead.
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers(tuple(handlers))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address}: {exc}") from None
    await server.start()
    return server, bound
