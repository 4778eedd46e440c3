"""A real Apache Kafka broker for the tests: installed from the Maven registry, run in KRaft mode.

`install()` resolves Kafka's server jars and their runtime dependencies with Maven (its default
configuration reaches the public registry) into ~/.cache/tracemesh/kafka/<version>/libs, once:
about 45 MB, ~30 s on a cold cache. `KafkaBroker` formats a log directory for one combined
broker+controller node, starts `java kafka.Kafka` on free loopback ports with a small heap, and
waits until a client can create a topic (~3-5 s). It can be stopped and started again on the
same ports and data (for broker-restart tests), or killed.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

KAFKA_VERSION = "4.1.0"
SCALA = "2.13"
LOG4J_VERSION = "2.24.3"  # the log4j2 Kafka 4.1 is built with; the binding makes its errors show
JAVAS = (
    "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
    "/usr/lib/jvm/temurin-25-jdk-amd64/bin/java",
)
CACHE = Path(os.environ.get("TRACEMESH_CACHE", Path.home() / ".cache" / "tracemesh"))

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tracemesh.tests</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


class KafkaUnavailableError(RuntimeError):
    """Kafka could not be installed or started; the message says which step failed and why."""


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    for candidate in ([f"{home}/bin/java"] if home else []) + list(JAVAS):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("java")
    if found is None:
        raise KafkaUnavailableError("no java found (JAVA_HOME, OpenJDK 17, Temurin 25 or PATH)")
    return found


def install() -> Path:
    """The directory of Kafka's jars, resolved with Maven on first use (under a file lock, so
    parallel test processes download once)."""
    home = CACHE / "kafka" / KAFKA_VERSION
    libs = home / "libs"
    if (libs / ".complete").exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (libs / ".complete").exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaUnavailableError("Maven (mvn) is not installed: cannot fetch Kafka's jars")
        with tempfile.TemporaryDirectory(dir=home) as tmp:
            (Path(tmp) / "pom.xml").write_text(POM)
            out = Path(tmp) / "libs"
            result = subprocess.run(
                [mvn, "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime",
                 f"-DoutputDirectory={out}"],
                cwd=tmp, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if result.returncode != 0:
                raise KafkaUnavailableError(
                    f"mvn could not resolve kafka_{SCALA}:{KAFKA_VERSION} "
                    f"(exit {result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
                )
            shutil.rmtree(libs, ignore_errors=True)
            out.rename(libs)
        (libs / ".complete").touch()
    return libs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KafkaBroker:
    """One KRaft node (broker and controller) on loopback, its data under `workdir`."""

    def __init__(self, workdir: Path, *, partitions: int = 2) -> None:
        self.libs = install()
        self.java = java()
        self.workdir = workdir
        self.port = free_port()
        self.controller_port = free_port()
        self.log_path = workdir / "kafka.log"
        self.proc: subprocess.Popen[bytes] | None = None
        data = workdir / "data"
        self.properties = workdir / "server.properties"
        self.properties.write_text(
            "\n".join(
                (
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={data}",
                    f"num.partitions={partitions}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "",
                )
            )
        )
        self._format()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _format(self) -> None:
        cluster_id = "-"
        while cluster_id.startswith("-"):  # as Kafka's Uuid.randomUuid: "-x" reads as a flag
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        result = subprocess.run(
            [self.java, "-Xmx128m", "-cp", f"{self.libs}/*", "kafka.tools.StorageTool",
             "format", "-t", cluster_id, "-c", str(self.properties)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if result.returncode != 0:
            raise KafkaUnavailableError(f"formatting KRaft storage failed:\n{result.stderr}")

    def start(self, timeout: float = 90.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.java, "-Xms128m", "-Xmx384m", "-XX:+UseSerialGC",
                 "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                 "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.properties)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        """Until a client can create (or find) a topic: metadata and the controller are up."""
        admin = self.admin()
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise KafkaUnavailableError(
                    f"kafka exited with {self.proc.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                self._create(admin, "tracemesh-ready", 1)
                return
            except KafkaException as exc:
                last = exc
                time.sleep(0.2)
        self.kill()
        raise KafkaUnavailableError(f"kafka not ready after {timeout}s ({last}):\n{self.log()}")

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})

    def create_topic(self, name: str, partitions: int = 2) -> None:
        self._create(self.admin(), name, partitions)

    @staticmethod
    def _create(admin: AdminClient, name: str, partitions: int) -> None:
        futures = admin.create_topics([NewTopic(name, partitions, 1)], request_timeout=10)
        try:
            futures[name].result(15)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise

    def stop(self, timeout: float = 30.0) -> None:
        """A clean shutdown (SIGTERM to the process group), SIGKILL if it hangs."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
