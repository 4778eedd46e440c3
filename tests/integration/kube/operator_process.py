"""`tracemesh operator` as a test runs it: installed with `tracemesh manifests`, started as a
process acting as its own ServiceAccount (so the RBAC it is given is the RBAC it is tested with),
its webhook reached by the API server on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from tests.integration.kube.control_plane import ControlPlane, free_port

NAMESPACE = "tracemesh"


def manifests(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tracemesh", "manifests", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


class OperatorProcess:
    def __init__(
        self, plane: ControlPlane, *, watch: str = "", extra: tuple[str, ...] = ()
    ) -> None:
        self.plane = plane
        self.watch = watch
        self.extra = extra
        self.webhook_port = free_port()
        self.admin_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = plane.dir / f"operator-{self.webhook_port}.log"

    def install(self) -> None:
        if self.watch:
            for namespace in self.watch.split(","):
                self.plane.kubectl("create", "namespace", namespace, check=False)
        text = manifests(
            "--namespace",
            NAMESPACE,
            "--watch-namespace",
            self.watch,
            "--webhook-url",
            f"https://127.0.0.1:{self.webhook_port}",
        )
        self.plane.kubectl("apply", "-f", "-", stdin=text)

    def start(self, timeout: float = 30.0) -> None:
        self.install()
        config = self.plane.token_kubeconfig("tracemesh-operator", NAMESPACE)
        env = {**os.environ, "WATCH_NAMESPACE": self.watch, "POD_NAMESPACE": NAMESPACE}
        args = [
            sys.executable,
            "-m",
            "tracemesh",
            "operator",
            f"--kubeconfig={config}",
            "--host=127.0.0.1",
            f"--webhook.port={self.webhook_port}",
            "--webhook.host=127.0.0.1",
            f"--admin.http-port={self.admin_port}",
            "--resync-interval=20s",
            *self.extra,
        ]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited ({self.proc.returncode}):\n{self.tail()}")
            if self.healthy():
                return
            time.sleep(0.1)
        raise AssertionError(f"operator not healthy in {timeout} s:\n{self.tail()}")

    def healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.admin_port}/health"
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(answer.read().decode())

    def tail(self, size: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
