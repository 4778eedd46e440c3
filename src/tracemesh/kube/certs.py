"""The webhook's certificates: a CA of the operator's own and a serving certificate it signs, made
and renewed by the operator (no cert-manager needed). Both are renewed together once two thirds
of the serving certificate's life have passed; the API server keeps trusting the previous CA
until the next renewal, because the `caBundle` holds both."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Bundle:
    """PEM bytes: the CA, the serving certificate and its key, and the CA bundle to publish."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes
    ca_bundle: bytes  # this CA, then the previous one while clients may still hold its chain


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def issue(hosts: list[str], validity: datetime.timedelta, previous_ca: bytes = b"") -> Bundle:
    """A new CA and a serving certificate for `hosts` (DNS names or IP addresses)."""
    import ipaddress

    now = _now()
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tracemesh-operator-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + 2 * validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = _key()
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    old = first_certificate(previous_ca)
    return Bundle(
        ca_cert=ca_pem,
        ca_key=_pem_key(ca_key),
        cert=cert.public_bytes(serialization.Encoding.PEM),
        key=_pem_key(key),
        ca_bundle=ca_pem + old,
    )


def first_certificate(pem: bytes) -> bytes:
    """The first PEM certificate of a bundle (b"" if none)."""
    end = b"-----END CERTIFICATE-----"
    at = pem.find(end)
    return pem[: at + len(end)] + b"\n" if at >= 0 else b""


def renew_at(cert_pem: bytes) -> datetime.datetime:
    """When a serving certificate is due for renewal: two thirds into its life."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * 2 / 3


def due(cert_pem: bytes, hosts: list[str], validity: datetime.timedelta | None = None) -> bool:
    """True when the certificate is missing, unreadable, for other hosts, or past renewal:
    two thirds into its life, or into `validity` from its start if that is shorter (a new
    setting takes effect without waiting for the old certificate)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return True
    covered = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    covered |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    renew = renew_at(cert_pem)
    if validity is not None:
        renew = min(renew, cert.not_valid_before_utc + validity * 2 / 3)
    return not set(hosts) <= covered or _now() >= renew
