"""Throwaway content-credential keys for tests: a test CA (EC P-256) and a signing certificate it
issued (digitalSignature, emailProtection: what C2PA's certificate profile asks of a signer),
made fresh for each test run; written as the operator's files (``write``) or kept as PEM."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ThrowawayKeys:
    chain_pem: str  # the signing certificate, then the CA's
    key_pem: str
    ca_pem: str

    def write(self, folder: Path) -> dict[str, Path]:
        """The operator's files: ``cert_file`` (the chain), ``key_file``, ``trust_anchors_file``."""
        paths = {"cert_file": folder / "c2pa-chain.pem", "key_file": folder / "c2pa-key.pem"}
        paths["trust_anchors_file"] = folder / "c2pa-ca.pem"
        paths["cert_file"].write_text(self.chain_pem)
        paths["key_file"].write_text(self.key_pem)
        paths["trust_anchors_file"].write_text(self.ca_pem)
        return paths


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "translate_svc tests"),
        ]
    )


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_keys(signer: str = "translate-svc test signer") -> ThrowawayKeys:
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("translate_svc test CA"))
        .issuer_name(_name("translate_svc test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(signer))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def pem(cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return ThrowawayKeys(chain_pem=pem(leaf) + pem(ca), key_pem=key_pem, ca_pem=pem(ca))


def signing(settings: Any, folder: Path) -> ThrowawayKeys:
    """Fresh keys, written to ``folder`` and set as ``settings``' content credentials (its
    ``credentials.cert_file`` and ``key_file``): the server it starts signs its files with them."""
    keys = make_keys()
    files = keys.write(folder)
    settings.credentials.cert_file, settings.credentials.key_file = files["cert_file"], files["key_file"]
    return keys
