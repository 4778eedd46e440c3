"""A real Elasticsearch or OpenSearch node for tests: fetched with Maven, run on loopback.

The distribution is the project's `integ-test-zip` (no bundled JDK, core modules only), which
Elasticsearch and OpenSearch both publish as Maven artifacts. Maven downloads it once into
~/.cache/tracemesh/search-nodes; each start unpacks it into a fresh directory under /tmp, writes a
small config (single node, loopback, security off, 512 MB heap, disk watermarks off) and waits for
the cluster to turn yellow. The node refuses to run as root, so under root it runs as `nobody`.

`TRACEMESH_TEST_SEARCH_NODE` picks the node, e.g. `elasticsearch:8.17.0` (the default) or
`opensearch:2.19.1`; `elasticsearch:9.x` and `opensearch:3.x` need Java 21+, found automatically.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

DEFAULT_NODE = "elasticsearch:8.17.0"
CACHE = Path.home() / ".cache" / "tracemesh" / "search-nodes"
GROUPS = {
    "elasticsearch": "org.elasticsearch.distribution.integ-test-zip",
    "opensearch": "org.opensearch.distribution.integ-test-zip",
}
JAVA_HOMES = {  # newest first; a distribution's minimum Java decides among them
    25: "/usr/lib/jvm/temurin-25-jdk-amd64",
    17: "/usr/lib/jvm/java-17-openjdk-amd64",
}
START_TIMEOUT = 240.0
# A small heap; only the quick JIT tier: boots in about half the CPU time, and tests index little.
TEST_JAVA_OPTIONS = "-Xms512m -Xmx512m -XX:TieredStopAtLevel=1"


class NodeError(RuntimeError):
    """The node could not be fetched or started; the message says what failed."""


def node_spec() -> tuple[str, str]:
    spec = os.environ.get("TRACEMESH_TEST_SEARCH_NODE", DEFAULT_NODE)
    kind, _, version = spec.partition(":")
    if kind not in GROUPS or not version:
        raise NodeError(f"TRACEMESH_TEST_SEARCH_NODE={spec!r}: want elasticsearch:<v> or "
                        "opensearch:<v>")  # fmt: skip
    return kind, version


def fetch(kind: str, version: str) -> Path:
    """The distribution zip, downloaded by Maven on first use."""
    target = CACHE / f"{kind}-{version}.zip"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    mvn = shutil.which("mvn")
    if mvn is None:
        raise NodeError("Maven (mvn) is not installed: it fetches the test search node")
    artifact = f"{GROUPS[kind]}:{kind}:{version}:zip"
    command = [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={artifact}",
               f"-DoutputDirectory={CACHE}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0 or not target.exists():
        raise NodeError(f"{' '.join(command)} failed ({done.returncode}):\n"
                        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")  # fmt: skip
    return target


def java_home(kind: str, version: str) -> str:
    major = int(version.split(".")[0])
    needs = (
        21
        if (kind == "elasticsearch" and major >= 9) or (kind == "opensearch" and major >= 3)
        else 17
    )
    for release, home in sorted(JAVA_HOMES.items()):
        if release >= needs and Path(home, "bin", "java").exists():
            return home
    raise NodeError(f"{kind} {version} needs Java {needs}+; none of {list(JAVA_HOMES.values())}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SearchNode:
    """One node; `start()` and `stop()` may be called again (data survives a restart)."""

    def __init__(self, kind: str, version: str, java_options: str = TEST_JAVA_OPTIONS) -> None:
        self.kind, self.version = kind, version
        self.java_options = java_options
        self.port = free_port()
        self.transport_port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"tracemesh-{kind}-"))
        self.home = self.root / f"{kind}-{version}"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def install(self) -> None:
        with zipfile.ZipFile(fetch(self.kind, self.version)) as archive:
            archive.extractall(self.root)
        for path in self.home.joinpath("bin").iterdir():
            path.chmod(0o755)
        self.root.chmod(0o755)
        config = self.root / "config"
        shutil.copytree(self.home / "config", config)
        options = (self.home / "config" / "jvm.options").read_text().splitlines()
        dropped = ("Xlog", "HeapDump", "ErrorFile", "-Xms", "-Xmx")  # files in cwd, heap: ours
        kept = [line for line in options if not any(word in line for word in dropped)]
        (config / "jvm.options").write_text("\n".join(kept) + "\n")
        for name in ("data", "logs"):
            (self.root / name).mkdir()
        if os.geteuid() == 0:  # the node will not run as root: give its writable dirs to nobody
            nobody = pwd.getpwnam("nobody")
            for name in ("config", "data", "logs"):
                for directory, _, files in os.walk(self.root / name):
                    os.chown(directory, nobody.pw_uid, nobody.pw_gid)
                    for file in files:
                        os.chown(Path(directory, file), nobody.pw_uid, nobody.pw_gid)

    def settings(self) -> list[str]:
        values = {
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": self.port,
            "transport.port": self.transport_port,
            "path.data": self.root / "data",
            "path.logs": self.root / "logs",
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.destructive_requires_name": "false",  # tests delete their indices by pattern
            "cluster.max_shards_per_node": 5000,
        }
        if self.kind == "elasticsearch":
            values["xpack.security.enabled"] = "false"
        return [f"-E{key}={value}" for key, value in values.items()]

    def start(self) -> None:
        if not self.home.exists():
            self.install()
        prefix = "ES" if self.kind == "elasticsearch" else "OPENSEARCH"
        env = dict(os.environ)
        env[f"{prefix}_JAVA_HOME"] = java_home(self.kind, self.version)
        env[f"{prefix}_PATH_CONF"] = str(self.root / "config")
        env[f"{prefix}_JAVA_OPTS"] = self.java_options
        env.pop("JAVA_TOOL_OPTIONS", None)
        run_as: dict[str, object] = {}
        if os.geteuid() == 0:
            run_as = {"user": "nobody", "group": "nogroup", "extra_groups": []}
        began = time.monotonic()
        with (self.root / "node.out").open("ab") as out:
            self.process = subprocess.Popen(
                [str(self.home / "bin" / self.kind), *self.settings()],
                cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, **run_as,  # type: ignore[arg-type]
            )  # fmt: skip
        self.wait_ready(began + START_TIMEOUT)
        self.startup_seconds = time.monotonic() - began

    def wait_ready(self, deadline: float) -> None:
        url = f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=5s"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise NodeError(f"{self.kind} {self.version} exited with {self.process.returncode}"
                                f" while starting:\n{self.log_tail()}")  # fmt: skip
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    if json.load(response).get("status") in ("green", "yellow"):
                        return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.5)
        self.stop()
        raise NodeError(f"{self.kind} {self.version} not ready in {START_TIMEOUT}s:\n"
                        f"{self.log_tail()}")  # fmt: skip

    def log_tail(self, lines: int = 40) -> str:
        path = self.root / "node.out"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the whole process group (the launcher and the JVM it starts)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


_node: SearchNode | None = None
_failure: NodeError | None = None


def shared_node() -> SearchNode:
    """The session's node, started on first use; `stop_shared_node()` ends it. When it cannot
    be fetched or started, every later call fails at once with the same error."""
    global _node, _failure
    if _failure is not None:
        raise _failure
    if _node is None:
        kind, version = node_spec()
        node = SearchNode(kind, version)
        try:
            node.start()
        except NodeError as exc:
            node.remove()
            _failure = exc
            raise
        except BaseException:
            node.remove()
            raise
        _node = node
    return _node


def stop_shared_node() -> None:
    global _node
    if _node is not None:
        _node.remove()
        _node = None
