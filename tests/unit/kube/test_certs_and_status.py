"""The webhook's certificates and a resource's status conditions."""

from __future__ import annotations

import datetime

from cryptography import x509

from tracemesh.kube import certs
from tracemesh.kube.jaeger_resource import read
from tracemesh.kube.status import build


def test_issue_covers_hosts_chains_to_its_ca_and_keeps_the_previous_ca() -> None:
    first = certs.issue(["svc.ns.svc", "127.0.0.1"], datetime.timedelta(days=30))
    assert not certs.due(first.cert, ["svc.ns.svc", "127.0.0.1"])
    assert certs.due(first.cert, ["other.ns.svc"])
    leaf = x509.load_pem_x509_certificate(first.cert)
    ca = x509.load_pem_x509_certificate(first.ca_cert)
    leaf.verify_directly_issued_by(ca)
    second = certs.issue(["svc.ns.svc"], datetime.timedelta(days=30), previous_ca=first.ca_bundle)
    assert second.ca_bundle == second.ca_cert + first.ca_cert  # new CA, then only the last one


def test_due_after_two_thirds_and_for_garbage() -> None:
    short = certs.issue(["a"], datetime.timedelta(seconds=3))
    start = x509.load_pem_x509_certificate(short.cert).not_valid_before_utc
    # not_valid_before is backdated 5 minutes, so two thirds of (3 s + 5 min) have passed
    assert certs.renew_at(short.cert) > start
    assert certs.due(short.cert, ["a"])
    assert certs.due(b"not a certificate", ["a"])


def test_status_conditions_keep_their_transition_time() -> None:
    inst = read({"metadata": {"name": "j", "namespace": "n", "generation": 2}}, "img")
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "j"},
        "spec": {"replicas": 1},
        "status": {"availableReplicas": 0},
    }
    first = build(inst, {}, workloads=[deployment])
    assert first["phase"] == "Running" and first["observedGeneration"] == 2
    conditions = {c["type"]: c for c in first["conditions"]}
    assert conditions["Available"]["status"] == "False"
    assert "j 0/1" in conditions["Available"]["message"]
    again = build(inst, first, workloads=[deployment])
    assert again["conditions"] == first["conditions"]
    bad = read({"metadata": {"name": "j"}, "spec": {"storage": {"type": "nope"}}}, "img")
    failed = build(bad, first)
    assert failed["phase"] == "Failed"
    assert {c["type"]: c for c in failed["conditions"]}["Reconciled"]["reason"] == "InvalidSpec"
