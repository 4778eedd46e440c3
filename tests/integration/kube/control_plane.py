"""A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver and
kube-controller-manager, built once from the Go module proxy (build.sh, cached under
~/.cache/tracemesh) and started from a fresh temporary directory with certificates of its own.

Nothing runs Pods here (no kubelet, no scheduler): the controller manager turns Deployments into
ReplicaSets and Pending Pods, runs the garbage collector and fills in ServiceAccounts, which is
what the operator's tests need. Every start waits for health with a deadline and says what
failed, with the tail of the process's log.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

HERE = Path(__file__).parent
BUILD_TIMEOUT = 3600.0
START_TIMEOUT = 60.0


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started; the message says what failed."""


def build() -> Path:
    """The folder of the four binaries, built on first use (about 10 minutes once)."""
    try:
        done = subprocess.run(
            [str(HERE / "build.sh")],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ControlPlaneError(f"build.sh took over {BUILD_TIMEOUT:.0f} s") from exc
    if done.returncode != 0:
        raise ControlPlaneError(f"build.sh failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class _Authority:
    """A CA that signs the API server's serving certificate and the clients' certificates."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-kubernetes-ca")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self, common_name: str, organization: str = "", server: bool = False
    ) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
        )
        if server:
            names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem(key)


class ControlPlane:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tracemesh-kube-"))
        self.bin = Path()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.url = ""
        self.kubeconfig = self.dir / "admin.kubeconfig"

    # -- files ---------------------------------------------------------------------------------

    def _write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path

    def write_kubeconfig(
        self,
        path: Path,
        *,
        cert: bytes = b"",
        key: bytes = b"",
        token: str = "",
        namespace: str = "default",
    ) -> Path:
        import base64

        user: dict[str, str] = {}
        if token:
            user["token"] = token
        else:
            user["client-certificate-data"] = base64.b64encode(cert).decode()
            user["client-key-data"] = base64.b64encode(key).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(self.ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": "test", "user": user}],
            "contexts": [
                {
                    "name": "test",
                    "context": {"cluster": "test", "user": "test", "namespace": namespace},
                }
            ],
        }
        path.write_text(json.dumps(config))
        return path

    # -- processes -----------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> None:
        with open(self.dir / f"{name}.log", "wb") as log:  # the process keeps its own copy
            self.procs[name] = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def _wait(self, name: str, ready: object, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited ({self.procs[name].returncode}):\n{self.log_tail(name)}"
                )
            try:
                if ready():  # type: ignore[operator]
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise ControlPlaneError(f"{name} not ready in time:\n{self.log_tail(name)}")

    def start(self) -> None:
        self.bin = build()
        authority = _Authority()
        self.ca_pem = authority.cert.public_bytes(serialization.Encoding.PEM)
        ca = self._write("ca.crt", self.ca_pem)
        serving = authority.issue("kube-apiserver", server=True)
        server_crt, server_key = (
            self._write("apiserver.crt", serving[0]),
            self._write("apiserver.key", serving[1]),
        )
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sa_private = self._write("sa.key", _pem(sa_key))
        sa_public = self._write(
            "sa.pub",
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        deadline = time.monotonic() + START_TIMEOUT
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn(
            "etcd",
            [
                str(self.bin / "etcd"),
                "--data-dir",
                str(self.dir / "etcd"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
        )
        self._wait(
            "etcd",
            lambda: b"true" in urllib.request.urlopen(f"{etcd_url}/health", timeout=2).read(),
            deadline,
        )
        self.url = f"https://127.0.0.1:{api_port}"
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={api_port}",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={server_crt}",
                f"--tls-private-key-file={server_key}",
                f"--client-ca-file={ca}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={self.url}",
                f"--service-account-key-file={sa_public}",
                f"--service-account-signing-key-file={sa_private}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
            ],
        )
        admin_cert, admin_key = authority.issue("admin", organization="system:masters")
        self.write_kubeconfig(self.kubeconfig, cert=admin_cert, key=admin_key)
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(
            self._write("admin.crt", admin_cert), self._write("admin.key", admin_key)
        )

        def api_ready() -> bool:
            with urllib.request.urlopen(f"{self.url}/readyz", context=context, timeout=2) as r:
                return bool(r.status == 200)

        self._wait("kube-apiserver", api_ready, deadline)
        cm_cert, cm_key = authority.issue("system:kube-controller-manager")
        cm_config = self.write_kubeconfig(self.dir / "cm.kubeconfig", cert=cm_cert, key=cm_key)
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin / "kube-controller-manager"),
                f"--kubeconfig={cm_config}",
                "--use-service-account-credentials=true",
                "--secure-port=0",
                "--leader-elect=false",
                f"--service-account-private-key-file={sa_private}",
                f"--root-ca-file={ca}",
                "--controllers=*",
                "--concurrent-gc-syncs=5",
            ],
        )
        # ready when it has made the default namespace's ServiceAccount
        self._wait(
            "kube-controller-manager",
            lambda: (
                self.kubectl(
                    "get", "serviceaccount", "default", "-n", "default", check=False
                ).returncode
                == 0
            ),
            deadline + 30,
        )

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients -------------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout}"
            )
        return done

    def get(self, *args: str) -> Any:
        """`kubectl get ... -o json`, decoded; None when the object does not exist."""
        done = self.kubectl("get", *args, "-o", "json", check=False)
        if done.returncode != 0:
            if "NotFound" in done.stderr or "not found" in done.stderr:
                return None
            raise AssertionError(f"kubectl get {' '.join(args)}: {done.stderr}")
        return json.loads(done.stdout)

    def token_kubeconfig(self, service_account: str, namespace: str) -> Path:
        """A kubeconfig that acts as a ServiceAccount (a token from the TokenRequest API), so
        tests run the operator with exactly the RBAC its manifests grant."""
        token = self.kubectl(
            "create", "token", service_account, "-n", namespace, "--duration=6h"
        ).stdout.strip()
        path = self.dir / f"{namespace}-{service_account}.kubeconfig"
        return self.write_kubeconfig(path, token=token, namespace=namespace)


_shared: ControlPlane | None = None
_failure: str = ""


def shared_control_plane() -> ControlPlane:
    """One control plane for the whole test session, started on first use."""
    global _shared, _failure
    if _failure:
        raise ControlPlaneError(_failure)
    if _shared is None:
        plane = ControlPlane()
        try:
            plane.start()
        except ControlPlaneError as exc:
            plane.stop()
            _failure = str(exc)
            raise
        _shared = plane
    return _shared


def stop_shared_control_plane() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None


def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` and its last answer."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what or check}; last: {last!r}")
