"""What `tracemesh manifests` installs, checked by the API server; an operator restricted by
WATCH_NAMESPACE running with only the Roles its manifests grant; the webhook certificate
renewed and its CA bundle kept current while admissions go on."""

from __future__ import annotations

import base64
import hashlib
import ssl
from collections.abc import Iterator

import pytest
import yaml

from tests.integration.kube.control_plane import ControlPlane, eventually
from tests.integration.kube.operator_process import OperatorProcess, manifests
from tests.integration.kube.test_injection import INJECT, containers, deployment
from tests.integration.kube.test_operator import apply, running


@pytest.mark.parametrize("watch", ["", "team-a,team-b"])
def test_everything_manifests_prints_passes_a_server_dry_run(
    plane: ControlPlane, watch: str
) -> None:
    namespace = "dry-run-target"
    for name in [namespace, *filter(None, watch.split(","))]:
        plane.kubectl("create", "namespace", name, check=False)
    text = manifests(
        "--namespace",
        namespace,
        "--watch-namespace",
        watch,
        "--image",
        "registry.example/tracemesh:1.2.3",
    )
    kinds = [doc["kind"] for doc in yaml.safe_load_all(text)]
    assert {
        "CustomResourceDefinition",
        "Deployment",
        "Service",
        "ServiceAccount",
        "MutatingWebhookConfiguration",
    } <= set(kinds)
    # the certificate's Role in the operator's namespace, and one per watched namespace
    assert kinds.count("Role") == 1 + len(list(filter(None, watch.split(","))))
    done = plane.kubectl("apply", "--dry-run=server", "-f", "-", stdin=text)
    assert done.stdout.count("(server dry run)") == len(kinds)
    broken = text.replace("replicas: 1", "replicas: -1")
    refused = plane.kubectl("apply", "--dry-run=server", "-f", "-", stdin=broken, check=False)
    assert refused.returncode == 1 and "replicas" in refused.stderr


@pytest.fixture(scope="module")
def restricted(plane: ControlPlane) -> Iterator[OperatorProcess]:
    """An operator for two namespaces only, with a certificate renewed every few seconds."""
    process = OperatorProcess(
        plane,
        watch="team-a,team-b",
        extra=("--webhook.cert-validity=9s", "--webhook.cert-check-interval=1s"),
    )
    # a cluster-wide install before this one left its binding: take it away, as a user moving
    # to namespaced mode does, so the operator has exactly the namespaced rights
    plane.kubectl("delete", "clusterrolebinding", "tracemesh-operator", "--ignore-not-found")
    process.start()
    yield process
    process.stop()


def test_only_the_watched_namespaces_are_reconciled(
    plane: ControlPlane, restricted: OperatorProcess
) -> None:
    plane.kubectl("create", "namespace", "team-c", check=False)
    apply(plane, "team-a", "a", {})
    apply(plane, "team-b", "b", {})
    apply(plane, "team-c", "c", {})
    assert running(plane, "team-a", "a")["phase"] == "Running"
    assert running(plane, "team-b", "b")["phase"] == "Running"
    assert plane.get("deployment", "a", "-n", "team-a") and plane.get(
        "deployment", "b", "-n", "team-b"
    )
    assert restricted.healthy()
    # not watched: untouched, and the operator has no right to touch it either
    assert (plane.get("jaeger", "c", "-n", "team-c") or {}).get("status") is None
    assert plane.get("deployment", "c", "-n", "team-c") is None
    sa = "system:serviceaccount:tracemesh:tracemesh-operator"
    can = plane.kubectl(
        "auth", "can-i", "create", "deployments", "-n", "team-c", f"--as={sa}", check=False
    )
    assert can.stdout.strip() == "no"
    can = plane.kubectl(
        "auth", "can-i", "create", "deployments", "-n", "team-a", f"--as={sa}", check=False
    )
    assert can.stdout.strip() == "yes"
    assert "forbidden" not in restricted.tail().lower()


def _served_fingerprint(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    import socket

    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        cert = tls.getpeercert(binary_form=True)
    return hashlib.sha256(cert or b"").hexdigest()


def _ca_bundle(plane: ControlPlane) -> bytes:
    config = plane.get("mutatingwebhookconfiguration", "tracemesh-operator")
    return base64.b64decode(config["webhooks"][0]["clientConfig"].get("caBundle", ""))


def test_the_certificate_is_renewed_and_admissions_go_on(
    plane: ControlPlane, restricted: OperatorProcess
) -> None:
    apply(plane, "team-a", "tracing", {})
    running(plane, "team-a", "tracing")
    first_bundle = _ca_bundle(plane)
    first_cert = _served_fingerprint(restricted.webhook_port)
    assert first_bundle.count(b"BEGIN CERTIFICATE") >= 1
    # renewals come every ~6 s here; the two reads may straddle one, so wait for both to move
    new_cert = eventually(
        lambda: (
            (f := _served_fingerprint(restricted.webhook_port)) != first_cert
            and _ca_bundle(plane) != first_bundle
            and f
        ),
        timeout=30,
        what="a renewed serving certificate and CA bundle",
    )
    bundle = _ca_bundle(plane)
    assert bundle.count(b"BEGIN CERTIFICATE") == 2  # the new CA, and the previous one
    secret = plane.get("secret", "tracemesh-operator-webhook-cert", "-n", "tracemesh")
    assert base64.b64decode(secret["data"]["ca-bundle.crt"]) in (bundle, _ca_bundle(plane))
    assert new_cert
    # the API server trusts what is served now: an admission through it is patched
    for number in range(3):
        name = f"after-renewal-{number}"
        plane.kubectl("apply", "-f", "-", stdin=deployment(name, "team-a", {INJECT: "tracing"}))
        assert [c["name"] for c in containers(plane, "team-a", name)] == ["app", "jaeger-agent"]
    # someone re-applies the manifests without the bundle: the operator puts it back
    config = plane.get("mutatingwebhookconfiguration", "tracemesh-operator")
    plane.kubectl(
        "patch",
        "mutatingwebhookconfiguration",
        "tracemesh-operator",
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}]',
    )
    assert config["webhooks"][0]["clientConfig"]["caBundle"]
    eventually(lambda: _ca_bundle(plane), timeout=10, what="caBundle restored")
