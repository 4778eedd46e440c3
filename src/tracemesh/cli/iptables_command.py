"""`tracemesh iptables`: what an injected init container runs to send the Pod's TCP through its
sidecar (Istio's `istio-iptables`); the rules come from `mesh.capture_rules`."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from typing import Any

from tracemesh.mesh import capture_rules
from tracemesh.mesh.capture_rules import CaptureRules
from tracemesh.runtime import ports

SUMMARY = "redirect a Pod's TCP to its sidecar with iptables (the injected init container)"
DESCRIPTION = """\
Install nat rules in the current network namespace: inbound TCP goes to the sidecar's inbound
port, outbound TCP to its outbound port, except the proxy's own uid/gid, loopback, the admin
ports and the excluded ports. Needs CAP_NET_ADMIN and iptables-restore. Running it again
replaces the rules."""
EXAMPLES = """\
examples:
  tracemesh iptables --dry-run
  tracemesh iptables --proxy-uid 1337 --exclude-inbound-ports 9090 \\
      --exclude-outbound-ports 5432,6379
"""
TIMEOUT = 30.0


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser("iptables", help=SUMMARY, description=DESCRIPTION, epilog=EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    env = os.environ.get
    cmd.add_argument("--outbound-port", type=int, default=int(
        env("TRACEMESH_OUTBOUND_PORT", ports.SIDECAR_OUTBOUND)),
        help="the sidecar's outbound capture port (default %(default)s)")  # fmt: skip
    cmd.add_argument("--inbound-port", type=int, default=int(
        env("TRACEMESH_INBOUND_PORT", ports.SIDECAR_INBOUND)),
        help="the sidecar's inbound capture port (default %(default)s)")  # fmt: skip
    cmd.add_argument("--proxy-uid", type=int, default=capture_rules.PROXY_UID,
                     help="the uid the sidecar runs as; its traffic is never captured "
                     "(default %(default)s)")  # fmt: skip
    cmd.add_argument("--proxy-gid", type=int, default=None,
                     help="likewise for its gid (default: --proxy-uid)")  # fmt: skip
    cmd.add_argument("--include-inbound-ports", default="*",
                     help="'*' (every port) or a comma-separated list; empty: no inbound "
                     "capture (default %(default)s)")  # fmt: skip
    cmd.add_argument("--exclude-inbound-ports", default="",
                     help="ports that reach the app directly (the "
                     "traffic.sidecar.istio.io/excludeInboundPorts annotation)")  # fmt: skip
    cmd.add_argument("--exclude-outbound-ports", default="",
                     help="destination ports the app reaches directly "
                     "(traffic.sidecar.istio.io/excludeOutboundPorts)")  # fmt: skip
    cmd.add_argument("--admin-ports", default=f"{ports.SIDECAR_ADMIN},{ports.GATEWAY_ADMIN}",
                     help="the proxy's health and metrics ports, never captured "
                     "(default %(default)s)")  # fmt: skip
    cmd.add_argument("--no-outbound", action="store_true",
                     help="capture inbound traffic only")  # fmt: skip
    cmd.add_argument("--ipv6", choices=("auto", "on", "off"), default="off",
                     help="also install the rules with ip6tables: auto does when the "
                     "namespace has a global IPv6 address; off by default because the sidecar "
                     "listens on IPv4 only (default %(default)s)")  # fmt: skip
    cmd.add_argument("--dry-run", action="store_true",
                     help="print the iptables-restore input instead of applying it")  # fmt: skip


def rules_from(args: argparse.Namespace) -> CaptureRules:
    """The options as rules; ValueError naming a bad value."""
    include = capture_rules.parse_ports(args.include_inbound_ports, allow_all=True)
    for name in ("outbound_port", "inbound_port"):
        if not 0 < getattr(args, name) < 65536:
            raise ValueError(f"--{name.replace('_', '-')} must be a TCP port")
    return CaptureRules(
        outbound_port=args.outbound_port,
        inbound_port=args.inbound_port,
        proxy_uid=args.proxy_uid,
        proxy_gid=args.proxy_uid if args.proxy_gid is None else args.proxy_gid,
        include_inbound=include,
        exclude_inbound=capture_rules.port_list(args.exclude_inbound_ports),
        exclude_outbound=capture_rules.port_list(args.exclude_outbound_ports),
        admin_ports=capture_rules.port_list(args.admin_ports),
        capture_outbound=not args.no_outbound,
    )


def run(args: argparse.Namespace) -> int:
    try:
        rules = rules_from(args)
    except ValueError as exc:
        print(f"tracemesh iptables: {exc}", file=sys.stderr)
        return 2
    families = [False] + ([True] if _wants_ipv6(args.ipv6) else [])
    if args.dry_run:
        for ipv6 in families:
            print(f"# {'ip6tables' if ipv6 else 'iptables'}-restore --noflush")
            sys.stdout.write(capture_rules.render(rules, ipv6=ipv6))
        return 0
    try:
        for ipv6 in families:
            apply(rules, ipv6=ipv6)
    except ApplyError as exc:
        print(f"tracemesh iptables: {exc}", file=sys.stderr)
        return 1
    print(f"tracemesh iptables: inbound TCP -> :{rules.inbound_port}, outbound TCP -> "
          f":{rules.outbound_port} (not uid {rules.proxy_uid})"
          f"{' and IPv6' if len(families) > 1 else ''}")  # fmt: skip
    return 0


class ApplyError(Exception):
    """iptables is missing or refused the rules; the message says which and why."""


def apply(rules: CaptureRules, *, ipv6: bool = False) -> None:
    """Install `rules` in this network namespace, replacing an earlier run's."""
    tool = "ip6tables" if ipv6 else "iptables"
    binary, restore = shutil.which(tool), shutil.which(f"{tool}-restore")
    if binary is None or restore is None:
        raise ApplyError(f"{tool}-restore is not installed (the Debian package 'iptables' has "
                         f"it): cannot capture the Pod's traffic")  # fmt: skip
    for command in capture_rules.unhook_commands():
        for _ in range(16):  # each call removes one copy of the hook; fails when none is left
            if _call([binary, "-w", *command]).returncode != 0:
                break
    done = _call([restore, "-w", "--noflush"], capture_rules.render(rules, ipv6=ipv6))
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
        raise ApplyError(f"{tool}-restore refused the rules: {why} (does the process have "
                         f"CAP_NET_ADMIN, and the kernel the nat table?)")  # fmt: skip


def _call(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, input=stdin, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise ApplyError(f"{command[0]} did not finish within {TIMEOUT:.0f}s") from exc
    except OSError as exc:
        raise ApplyError(f"cannot run {command[0]}: {exc}") from exc


def _wants_ipv6(mode: str) -> bool:
    if mode != "auto":
        return mode == "on"
    try:  # a global (scope 00) address other than ::1 in this namespace
        with open("/proc/net/if_inet6") as lines:
            return any(line.split()[3] == "00" and line.split()[5] != "lo" for line in lines)
    except OSError:
        return False
