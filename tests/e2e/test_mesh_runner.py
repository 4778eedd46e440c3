"""`tracemesh mesh up|status|down` as a user runs them, real processes throughout: a bad file's
error, an app that never comes up, restarts after crashes, health in `status`, and stopping
(by `mesh down`, or after the runner is killed) that leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import ROOT, free_port

FLAKY = """\
# Crashes the first time it starts, then serves: the runner must restart it.
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flaky.started")
if not os.path.exists(marker):
    open(marker, "w").close()
    sys.exit("flaky: first start, crashing")
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"flaky ok\\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""

MESH = """\
services:
  - name: web
    # a shell that starts the server as its own child: stopping must reach the grandchild too
    command: [sh, -c, '"${PYTHON}" -m http.server "$PORT" --bind 127.0.0.1 & wait']
    port: 8000
    replicas: 2
    labels: {version: v1}
  - name: flaky
    command: ["${PYTHON}", flaky.py]
    port: 8001
gateway:
  routes:
    - {prefix: /flaky, service: flaky}
    - {prefix: /, service: web}
"""


SMALL = """\
services:
  - name: web
    command: [sh, -c, '"${PYTHON}" -m http.server "$PORT" --bind 127.0.0.1 & wait']
    port: 8000
"""


def tracemesh(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracemesh", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)  # fmt: skip


def ours(directory: Path) -> list[str]:
    """Processes started for a mesh in `directory`: apps run there, proxies name its files."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (cwd == str(directory) or str(directory) in cmdline):
            found.append(f"{entry.name}: {cmdline}")
    return found


def wait_until(predicate: Any, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or predicate}")


@pytest.fixture
def mesh_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "app"
    directory.mkdir()
    (directory / "mesh.yaml").write_text(MESH)
    (directory / "flaky.py").write_text(FLAKY)
    return directory


class Up:
    """`tracemesh mesh up` running in the background."""

    def __init__(self, mesh_dir: Path, *args: str) -> None:
        self.run_dir = mesh_dir.parent / "run"
        self.out = mesh_dir.parent / "up.out"
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tracemesh", "mesh", "up", "-f", str(mesh_dir / "mesh.yaml"),
                 "--run-dir", str(self.run_dir), "--gateway-port", "0", "--ui-port", "0",
                 "--restart-backoff", "0.1", *args],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        wait_until(lambda: "Ctrl-C" in self.text() or self.proc.poll() is not None, 90, "up")
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        done = tracemesh("mesh", "status", "--run-dir", str(self.run_dir), "--json")
        assert done.returncode in (0, 1), done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def up(mesh_dir: Path) -> Iterator[Up]:
    running = Up(mesh_dir)
    yield running
    running.kill()
    tracemesh("mesh", "down", "--run-dir", str(running.run_dir))


def by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in status["processes"]}


def test_up_status_restart_traffic_and_down_leaves_nothing(up: Up, mesh_dir: Path) -> None:
    status = up.status()
    procs = by_name(status)
    assert set(procs) == {"backend", "gateway", "web-v1-0", "web-v1-0.sidecar", "web-v1-1",
                          "web-v1-1.sidecar", "flaky-0", "flaky-0.sidecar"}  # fmt: skip
    assert all(p["healthy"] for p in procs.values()), procs
    assert procs["flaky-0"]["restarts"] == 1  # crashed on its first start, then came up
    assert "flaky: first start, crashing" in (up.run_dir / "logs" / "flaky-0.log").read_text()
    again = tracemesh("mesh", "up", "-f", str(mesh_dir / "mesh.yaml"), "--run-dir",
                      str(up.run_dir))  # fmt: skip
    assert again.returncode == 1 and "already running" in again.stderr, again.stderr
    table = up.text()
    assert "web-v1-1.sidecar" in table and status["ui"] in table and status["gateway"] in table

    # Traffic through the gateway reaches both services; the trace is in the runner's backend.
    assert httpx.get(status["gateway"] + "/flaky/x", timeout=10).text == "flaky ok\n"
    for _ in range(2):  # round robin over the two web replicas
        assert httpx.get(status["gateway"] + "/", timeout=10).status_code == 200

    def traced() -> set[str]:
        response = httpx.get(f"{status['ui']}/api/services", timeout=5)
        return set(response.json()["data"] or []) >= {"web.default", "flaky.default"}

    wait_until(traced, 15, "spans of both services in the backend")

    # Kill an app: the runner restarts it and it is healthy again.
    victim = procs["web-v1-0"]
    os.killpg(victim["pid"], signal.SIGKILL)

    def restarted() -> bool:
        now = by_name(up.status())["web-v1-0"]
        return bool(now["restarts"] == 1 and now["healthy"] and now["pid"] != victim["pid"])

    wait_until(restarted, 30, "web-v1-0 restarted")
    text = tracemesh("mesh", "status", "--run-dir", str(up.run_dir))
    assert text.returncode == 0 and "healthy" in text.stdout and "unhealthy" not in text.stdout

    down = tracemesh("mesh", "down", "--run-dir", str(up.run_dir))
    assert down.returncode == 0, down.stderr
    assert up.proc.wait(10) == 0, up.text()
    assert ours(mesh_dir) == []
    assert not (up.run_dir / "state.json").exists()
    gone = tracemesh("mesh", "status", "--run-dir", str(up.run_dir))
    assert gone.returncode == 1 and "no mesh is running" in gone.stderr


def test_killed_runner_takes_its_children_and_down_cleans_the_rest(mesh_dir: Path) -> None:
    (mesh_dir / "mesh.yaml").write_text(SMALL)
    running = Up(mesh_dir, "--collector", f"127.0.0.1:{free_port()}")  # no backend started
    try:
        assert "backend" not in by_name(running.status())
        assert ours(mesh_dir)
        running.kill()  # SIGKILL: no chance to stop anything
        status = tracemesh("mesh", "status", "--run-dir", str(running.run_dir))
        assert status.returncode == 3 and "is gone" in status.stderr
        down = tracemesh("mesh", "down", "--run-dir", str(running.run_dir))
        assert down.returncode == 0, down.stderr
        assert ours(mesh_dir) == []
    finally:
        running.kill()
        tracemesh("mesh", "down", "--run-dir", str(running.run_dir))


def test_sigint_stops_cleanly(mesh_dir: Path) -> None:
    (mesh_dir / "mesh.yaml").write_text(SMALL)
    running = Up(mesh_dir, "--collector", f"127.0.0.1:{free_port()}")
    try:
        running.proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert running.proc.wait(30) == 0
        assert "stopped" in running.text()
        assert ours(mesh_dir) == []
    finally:
        running.kill()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "services:\n  - name: web\n    command: [web]\n    port: http\n",
            "mesh.yaml:4:11: 'port' must be an integer, got a string 'http'",
        ),
        (
            "services:\n  - name: web\n    command: [web]\n    port: 80\n    replica: 2\n",
            "mesh.yaml:5:5: unknown key 'replica'; did you mean 'replicas'?",
        ),
        (
            "services:\n  - {name: web, command: [web], port: 80}\n"
            "gateway:\n  routes:\n    - {prefix: /, service: wbe}\n",
            "mesh.yaml:5:28: unknown service 'wbe'; did you mean 'web'?",
        ),
    ],
    ids=["port-type", "misspelt-key", "unknown-service"],
)
def test_bad_file_names_line_column_and_problem(tmp_path: Path, text: str, error: str) -> None:
    (tmp_path / "mesh.yaml").write_text(text)
    done = tracemesh("mesh", "up", "-f", str(tmp_path / "mesh.yaml"), "--run-dir",
                     str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 2
    assert f"error: {tmp_path}/{error}" in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()  # nothing started


def test_app_that_never_listens_fails_up_with_its_log_and_stops_the_rest(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text(textwrap.dedent("""\
        services:
          - name: broken
            command: ["${PYTHON}", -c, "import sys; sys.exit('broken: no database')"]
            port: 8080
        gateway:
          routes: [{prefix: /, service: broken}]
        """))  # fmt: skip
    done = tracemesh("mesh", "up", "-f", str(tmp_path / "mesh.yaml"), "--run-dir",
                     str(tmp_path / "run"), "--gateway-port", "0", "--collector",
                     f"127.0.0.1:{free_port()}", "--wait-timeout", "3",
                     "--restart-backoff", "0.1")  # fmt: skip
    assert done.returncode == 1
    assert "broken-0 did not become healthy (tcp " in done.stderr, done.stderr
    assert "broken: no database" in done.stderr  # the end of its log
    assert ours(tmp_path) == []
    assert not (tmp_path / "run" / "state.json").exists()


def test_missing_command_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text(
        "services:\n  - {name: ghost, command: [no-such-program-here], port: 80}\n"
    )
    done = tracemesh("mesh", "up", "-f", str(tmp_path / "mesh.yaml"), "--run-dir",
                     str(tmp_path / "run"), "--collector", f"127.0.0.1:{free_port()}")  # fmt: skip
    assert done.returncode == 1
    assert "ghost-0: cannot run 'no-such-program-here'" in done.stderr, done.stderr
    assert ours(tmp_path) == []
