"""Certificates and keys for the local control plane, generated fresh per workdir.

The API server runs with real TLS, client-certificate authentication and RBAC, like a production
cluster, so authorization bugs show up in tests instead of being hidden by an insecure port.
ECDSA P-256 keys keep generation instant.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
FRONT_PROXY_CN = "front-proxy-client"


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class PKI:
    """Every file the control plane components are started with."""

    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    front_proxy: KeyPair  # the API server's client cert towards aggregated API servers (Karmada's)
    sa_private: Path
    sa_public: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    b = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def _save(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, d: Path, stem: str) -> KeyPair:
    pair = KeyPair(cert=d / f"{stem}.crt", key=d / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair


def generate(d: Path, service_ip: str) -> PKI:
    """Write a CA, the API server's serving cert, client certs and the service-account key pair to d.

    service_ip is the first address of the service CIDR: in-cluster clients reach the API server
    through it as kubernetes.default.svc, so the serving cert must name it.
    """
    d.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name("meridian-sim-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca = _save(ca_cert, ca_key, d, "ca")

    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "::1", service_ip)]
    server = ExtendedKeyUsageOID.SERVER_AUTH
    client = ExtendedKeyUsageOID.CLIENT_AUTH
    apiserver = _save(*_leaf(ca_cert, ca_key, _name("kube-apiserver"), server, sans), d, "apiserver")
    admin = _save(*_leaf(ca_cert, ca_key, _name("meridian-admin", "system:masters"), client), d, "admin")
    kcm = _save(*_leaf(ca_cert, ca_key, _name("system:kube-controller-manager"), client), d, "controller-manager")
    sched = _save(*_leaf(ca_cert, ca_key, _name("system:kube-scheduler"), client), d, "scheduler")
    front = _save(*_leaf(ca_cert, ca_key, _name(FRONT_PROXY_CN), client), d, "front-proxy-client")

    sa_key = _key()
    sa_private = d / "sa.key"
    sa_public = d / "sa.pub"
    _write_key(sa_key, sa_private)
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return PKI(
        ca=ca,
        apiserver=apiserver,
        admin=admin,
        controller_manager=kcm,
        scheduler=sched,
        front_proxy=front,
        sa_private=sa_private,
        sa_public=sa_public,
    )


def issue(ca: KeyPair, d: Path, stem: str, cn: str, dns: list[str] | None = None, org: str | None = None) -> KeyPair:
    """A further certificate from the CA in ca: a serving one when dns names are given, else a client one.

    Karmada's webhook and aggregated API server serve under Service names the API server checks.
    """
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    if dns:
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        cert, key = _leaf(ca_cert, ca_key, _name(cn, org), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    else:
        cert, key = _leaf(ca_cert, ca_key, _name(cn, org), ExtendedKeyUsageOID.CLIENT_AUTH)
    d.mkdir(parents=True, exist_ok=True)
    return _save(cert, key, d, stem)
