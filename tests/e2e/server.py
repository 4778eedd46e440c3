"""Start a real `tracemesh all-in-one` subprocess on free loopback ports and stop it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TCP_FLAGS = {
    "otlp_grpc": "--otlp.grpc-port",
    "otlp_http": "--otlp.http-port",
    "jaeger_grpc": "--collector.grpc-port",
    "jaeger_http": "--collector.http-port",
    "zipkin": "--zipkin.http-port",
    "sampling": "--sampling.http-port",
    "query": "--query.http-port",
    "admin": "--admin.http-port",
}
UDP_FLAGS = {
    "jaeger_compact": "--agent.jaeger-compact-port",
    "jaeger_binary": "--agent.jaeger-binary-port",
    "zipkin_compact": "--agent.zipkin-compact-port",
}


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def query(self) -> str:
        return f"http://127.0.0.1:{self.ports['query']}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.ports['admin']}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_http']}/v1/traces"

    @property
    def otlp_grpc(self) -> str:
        return f"127.0.0.1:{self.ports['otlp_grpc']}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start(
    tmp: Path, *args: str, command: str = "all-in-one", env: dict[str, str] | None = None
) -> Server:
    """Every port free and known; `args` add or override flags."""
    ports = {name: free_port() for name in TCP_FLAGS}
    ports |= {name: free_port(socket.SOCK_DGRAM) for name in UDP_FLAGS}
    log_path = tmp / f"tracemesh-{command}.log"
    flags = [str(x) for name, flag in (TCP_FLAGS | UDP_FLAGS).items() for x in (flag, ports[name])]
    cmd = [sys.executable, "-m", "tracemesh", command, *flags, *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
    server = Server(proc, ports, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tracemesh exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.admin + "/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"tracemesh did not become healthy:\n{server.log()}")
