"""The address a captured connection was sent to before iptables' REDIRECT changed it: the
kernel's `SO_ORIGINAL_DST` (IPv4) and `IP6T_SO_ORIGINAL_DST` (IPv6), read from conntrack."""

from __future__ import annotations

import socket
import struct
from typing import Protocol

from tracemesh.mesh.registry import Address

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
IP6T_SO_ORIGINAL_DST = 80  # linux/netfilter_ipv6/ip6_tables.h
_SOL_IPV6 = 41
_SOCKADDR_IN6 = 28


class SockOpts(Protocol):
    """What asyncio's and uvloop's transports expose of a socket."""

    @property
    def family(self) -> int: ...

    def getsockopt(self, level: int, option: int, buflen: int, /) -> bytes: ...


def decode(raw: bytes) -> Address | None:
    """A `sockaddr_in` or `sockaddr_in6` as (host, port); None when it is neither."""
    if len(raw) < 8:
        return None
    family = struct.unpack_from("=H", raw)[0]
    port = struct.unpack_from("!H", raw, 2)[0]
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    if family == socket.AF_INET6 and len(raw) >= 24:
        host = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        if host.startswith("::ffff:") and "." in host:  # an IPv4 peer on a dual-stack socket
            host = host[7:]
        return host, port
    return None


def original_destination(sock: SockOpts) -> Address | None:
    """Where the connection on `sock` was headed, or None when it was not redirected (no NAT
    entry: the kernel answers ENOENT) or the platform has no such option."""
    attempts = [(socket.SOL_IP, SO_ORIGINAL_DST, 16)]
    if sock.family == socket.AF_INET6:  # a v4-mapped peer answers the v4 query
        attempts.insert(0, (_SOL_IPV6, IP6T_SO_ORIGINAL_DST, _SOCKADDR_IN6))
    for level, option, size in attempts:
        try:
            found = decode(sock.getsockopt(level, option, size))
        except OSError:
            continue
        if found is not None:
            return found
    return None
