"""The generated PKI: a serving cert valid for every name clients use, an admin in system:masters."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from meridian.sim import pki

pytestmark = pytest.mark.unit


def test_certificates(tmp_path: Path) -> None:
    p = pki.generate(tmp_path, "10.96.0.1")
    ca = x509.load_pem_x509_certificate(p.ca.cert.read_bytes())
    server = x509.load_pem_x509_certificate(p.apiserver.cert.read_bytes())
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} <= set(
        sans.get_values_for_type(x509.DNSName)
    )
    ips = set(sans.get_values_for_type(x509.IPAddress))
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.96.0.1")} <= ips
    admin = x509.load_pem_x509_certificate(p.admin.cert.read_bytes())
    admin.verify_directly_issued_by(ca)
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    kcm = x509.load_pem_x509_certificate(p.controller_manager.cert.read_bytes())
    assert kcm.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-controller-manager"
    assert p.sa_private.stat().st_mode & 0o077 == 0
    assert b"PUBLIC KEY" in p.sa_public.read_bytes()
