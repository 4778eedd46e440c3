"""The nat rules that make a Pod's TCP go through its sidecar, rendered as `iptables-restore`
input: the semantics of Istio's init container (`istio-iptables`), with chains of our own names.

Inbound (PREROUTING -> TRACEMESH_INBOUND): every TCP port (`include_inbound = "*"`) or the listed
ones, except the excluded ports and the proxy's admin ports, is redirected to the inbound
capture port. Outbound (OUTPUT -> TRACEMESH_OUTPUT): everything is redirected to the outbound
capture port except traffic of the proxy's own uid/gid (its upstream calls), loopback traffic of
other users, 127.0.0.1 (or ::1), and the excluded outbound ports. The proxy calling its own Pod's
address over `lo` is sent to the inbound side, as Istio does, so a Pod calling itself is traced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tracemesh.runtime import ports

INBOUND, IN_REDIRECT = "TRACEMESH_INBOUND", "TRACEMESH_IN_REDIRECT"
OUTPUT, REDIRECT = "TRACEMESH_OUTPUT", "TRACEMESH_REDIRECT"
CHAINS = (INBOUND, IN_REDIRECT, OUTPUT, REDIRECT)
PROXY_UID = 1337  # Istio's istio-proxy user and group
ALL = "*"


@dataclass(frozen=True, slots=True)
class CaptureRules:
    """What to capture. Ports are TCP ports; `include_inbound` is "*" or a list of ports
    (empty: capture no inbound traffic)."""

    outbound_port: int = ports.SIDECAR_OUTBOUND
    inbound_port: int = ports.SIDECAR_INBOUND
    proxy_uid: int = PROXY_UID
    proxy_gid: int = PROXY_UID
    include_inbound: str | tuple[int, ...] = ALL
    exclude_inbound: tuple[int, ...] = ()
    exclude_outbound: tuple[int, ...] = ()
    admin_ports: tuple[int, ...] = (ports.SIDECAR_ADMIN, ports.GATEWAY_ADMIN)
    capture_outbound: bool = True


def parse_ports(text: str, *, allow_all: bool = False) -> str | tuple[int, ...]:
    """A comma-separated port list as Istio's annotations give it (`"8080, 9090"`), or `*` when
    `allow_all`; ValueError naming the bad item."""
    text = text.strip()
    if allow_all and text == ALL:
        return ALL
    found: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if not item.isdigit() or not 0 < int(item) < 65536:
            raise ValueError(f"{item!r} is not a TCP port (1-65535)")
        if int(item) not in found:
            found.append(int(item))
    return tuple(found)


def port_list(text: str) -> tuple[int, ...]:
    """`parse_ports` without `*`."""
    parsed = parse_ports(text)
    assert not isinstance(parsed, str)
    return parsed


def render(rules: CaptureRules, *, ipv6: bool = False) -> str:
    """The `iptables-restore --noflush` input (or `ip6tables-restore`'s with `ipv6`): the four
    chains declared (which empties them when they exist) and filled, then hooked into
    PREROUTING and OUTPUT. The caller removes earlier hooks first (`unhook_commands`)."""
    local = "::1/128" if ipv6 else "127.0.0.1/32"
    lines = ["*nat", *(f":{chain} - [0:0]" for chain in CHAINS)]
    add = lines.append
    add(f"-A {REDIRECT} -p tcp -j REDIRECT --to-ports {rules.outbound_port}")
    add(f"-A {IN_REDIRECT} -p tcp -j REDIRECT --to-ports {rules.inbound_port}")
    # inbound: the proxy's own ports always reach it unchanged
    skipped = _unique((rules.inbound_port, rules.outbound_port, *rules.admin_ports,
                       *rules.exclude_inbound))  # fmt: skip
    included = rules.include_inbound
    if isinstance(included, str):  # "*"
        for port in skipped:
            add(f"-A {INBOUND} -p tcp --dport {port} -j RETURN")
        add(f"-A {INBOUND} -p tcp -j {IN_REDIRECT}")
    else:
        for wanted in included:
            if wanted not in skipped:
                add(f"-A {INBOUND} -p tcp --dport {wanted} -j {IN_REDIRECT}")
    if rules.capture_outbound:
        for port in _unique(rules.exclude_outbound):
            add(f"-A {OUTPUT} -p tcp --dport {port} -j RETURN")
        for match in (f"--uid-owner {rules.proxy_uid}", f"--gid-owner {rules.proxy_gid}"):
            # the proxy calling its own Pod's address: through the inbound side
            add(f"-A {OUTPUT} -o lo ! -d {local} -m owner {match} -j {IN_REDIRECT}")
            # anyone else on loopback: left alone (an app calling itself)
            add(f"-A {OUTPUT} -o lo -m owner ! {match} -j RETURN")
            # the proxy's own upstream calls: never captured again
            add(f"-A {OUTPUT} -m owner {match} -j RETURN")
        add(f"-A {OUTPUT} -d {local} -j RETURN")
        add(f"-A {OUTPUT} -j {REDIRECT}")
    lines.extend(f"-A {hook}" for hook in hooks(rules))
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def hooks(rules: CaptureRules) -> list[str]:
    """The jumps from the built-in chains, as `CHAIN rule` (without -A/-D)."""
    found = [f"PREROUTING -p tcp -j {INBOUND}"]
    if rules.capture_outbound:
        found.append(f"OUTPUT -p tcp -j {OUTPUT}")
    return found


def unhook_commands() -> list[list[str]]:
    """`iptables` arguments that delete one earlier copy of each hook (fail when none is left):
    run each until it fails, so applying twice leaves one hook, not two."""
    every = hooks(CaptureRules(capture_outbound=True))  # whatever an earlier run installed
    return [["-t", "nat", "-D", *hook.split()] for hook in every]


def _unique(values: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(values))
