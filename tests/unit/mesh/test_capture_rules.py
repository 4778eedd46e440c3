"""The rules `tracemesh iptables` installs, the command's options and its errors, and what a
captured connection's first bytes and original destination decode to."""

from __future__ import annotations

import socket
import struct

import pytest

from tracemesh.cli import iptables_command
from tracemesh.cli.main import build_parser, main
from tracemesh.mesh import capture_rules
from tracemesh.mesh.capture import CaptureMode, Sniffed, sniff
from tracemesh.mesh.capture_rules import CaptureRules, render
from tracemesh.mesh.original_dst import decode, original_destination


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_default_rules_capture_everything_but_the_proxy_loopback_and_admin_ports() -> None:
    out = lines(render(CaptureRules()))
    assert out[0] == "*nat" and out[-1] == "COMMIT"
    assert "-A TRACEMESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in out
    assert "-A TRACEMESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006" in out
    for port in (15001, 15006, 15020, 15021):
        assert f"-A TRACEMESH_INBOUND -p tcp --dport {port} -j RETURN" in out
    assert out.index("-A TRACEMESH_INBOUND -p tcp -j TRACEMESH_IN_REDIRECT") > out.index(
        "-A TRACEMESH_INBOUND -p tcp --dport 15021 -j RETURN"
    )
    own = out.index("-A TRACEMESH_OUTPUT -m owner --uid-owner 1337 -j RETURN")
    local = out.index("-A TRACEMESH_OUTPUT -d 127.0.0.1/32 -j RETURN")
    assert own < local < out.index("-A TRACEMESH_OUTPUT -j TRACEMESH_REDIRECT") == len(out) - 4
    assert out[-3:-1] == ["-A PREROUTING -p tcp -j TRACEMESH_INBOUND",
                          "-A OUTPUT -p tcp -j TRACEMESH_OUTPUT"]  # fmt: skip


def test_excluded_ports_return_before_any_redirect_and_a_port_list_limits_inbound() -> None:
    rules = CaptureRules(proxy_uid=2000, proxy_gid=2001, include_inbound=(8080, 15020, 9090),
                         exclude_inbound=(9090,), exclude_outbound=(5432, 6379))  # fmt: skip
    out = lines(render(rules))
    assert "-A TRACEMESH_INBOUND -p tcp --dport 8080 -j TRACEMESH_IN_REDIRECT" in out
    assert not any("--dport 9090" in line or "--dport 15020" in line for line in out)
    assert not any(line.startswith("-A TRACEMESH_INBOUND -p tcp -j") for line in out)
    first_output = next(i for i, line in enumerate(out) if line.startswith("-A TRACEMESH_OUTPUT"))
    assert out[first_output : first_output + 2] == [
        "-A TRACEMESH_OUTPUT -p tcp --dport 5432 -j RETURN",
        "-A TRACEMESH_OUTPUT -p tcp --dport 6379 -j RETURN",
    ]
    assert "-A TRACEMESH_OUTPUT -m owner --uid-owner 2000 -j RETURN" in out
    assert "-A TRACEMESH_OUTPUT -m owner --gid-owner 2001 -j RETURN" in out


def test_inbound_only_and_ipv6() -> None:
    out = render(CaptureRules(capture_outbound=False, include_inbound=()), ipv6=True)
    assert "OUTPUT -p tcp" not in out and "-A TRACEMESH_OUTPUT" not in out
    assert "TRACEMESH_INBOUND -p tcp -j" not in out  # nothing included
    v6 = render(CaptureRules(), ipv6=True)
    assert "-d ::1/128 -j RETURN" in v6 and "127.0.0.1" not in v6


def test_hooks_are_removed_before_a_second_run() -> None:
    assert capture_rules.unhook_commands() == [
        ["-t", "nat", "-D", "PREROUTING", "-p", "tcp", "-j", "TRACEMESH_INBOUND"],
        ["-t", "nat", "-D", "OUTPUT", "-p", "tcp", "-j", "TRACEMESH_OUTPUT"],
    ]


@pytest.mark.parametrize(
    ("text", "wanted"),
    [("", ()), ("8080", (8080,)), (" 8080, 9090 ,8080,", (8080, 9090)), ("*", "*")],
)
def test_port_lists_as_the_annotations_write_them(text: str, wanted: object) -> None:
    assert capture_rules.parse_ports(text, allow_all=True) == wanted


@pytest.mark.parametrize("text", ["http", "0", "65536", "80-90", "*"])
def test_bad_port_lists_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="is not a TCP port"):
        capture_rules.port_list(text)


def test_the_command_maps_its_flags_and_prints_the_rules(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["iptables", "--proxy-uid", "1500", "--exclude-inbound-ports",
                                      "9090", "--exclude-outbound-ports", "5432,6379",
                                      "--include-inbound-ports", "*"])  # fmt: skip
    rules = iptables_command.rules_from(args)
    assert (rules.proxy_uid, rules.proxy_gid, rules.include_inbound) == (1500, 1500, "*")
    assert (rules.exclude_inbound, rules.exclude_outbound) == ((9090,), (5432, 6379))
    assert main(["iptables", "--dry-run", "--ipv6", "off", "--exclude-outbound-ports", "5432"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# iptables-restore --noflush\n*nat\n")
    assert "-A TRACEMESH_OUTPUT -p tcp --dport 5432 -j RETURN" in out
    assert "ip6tables" not in out
    assert main(["iptables", "--dry-run", "--exclude-inbound-ports", "ssh"]) == 2
    assert "'ssh' is not a TCP port" in capsys.readouterr().err


def test_a_missing_iptables_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["iptables", "--ipv6", "off"]) == 1
    err = capsys.readouterr().err
    assert "iptables-restore is not installed" in err and "'iptables'" in err


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (b"GET / HTTP/1.1\r\n", Sniffed.HTTP),
        (b"POST ", Sniffed.HTTP),
        (b"PRI * HTTP/2.0\r\n\r\nSM", Sniffed.HTTP),
        (b"", Sniffed.MORE),
        (b"GE", Sniffed.MORE),
        (b"PRI * HT", Sniffed.MORE),
        (b"GETX", Sniffed.TCP),
        (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", Sniffed.TCP),  # PostgreSQL's SSLRequest
        (b"PING\n", Sniffed.TCP),
        (b"get / HTTP/1.1", Sniffed.TCP),
    ],
)
def test_first_bytes_say_http_or_not(data: bytes, verdict: Sniffed) -> None:
    assert sniff(data) is verdict


def test_inbound_passthrough_goes_to_the_app_on_the_original_port() -> None:
    assert CaptureMode(app_host="127.0.0.1").passthrough(("10.0.0.3", 5432)) == ("127.0.0.1", 5432)
    assert CaptureMode().passthrough(("10.0.0.3", 5432)) == ("10.0.0.3", 5432)


def test_sockaddrs_decode() -> None:
    v4 = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 8080) + bytes([10, 96, 0, 20])
    assert decode(v4 + bytes(8)) == ("10.96.0.20", 8080)
    v6 = (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 443, 0)
          + socket.inet_pton(socket.AF_INET6, "fd00::7") + bytes(4))  # fmt: skip
    assert decode(v6) == ("fd00::7", 443)
    mapped = v6[:8] + socket.inet_pton(socket.AF_INET6, "::ffff:10.0.0.1") + bytes(4)
    assert decode(mapped) == ("10.0.0.1", 443)
    assert decode(b"") is None and decode(bytes(16)) is None


def test_a_connection_nothing_redirected_has_no_original_destination_or_its_own() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            found = original_destination(accepted)
            assert found in (None, accepted.getsockname())  # no NAT entry, or the tuple itself
