"""Throwaway TLS material for a test broker: a CA, a server certificate for 127.0.0.1, a client certificate.

The broker (Java) reads PKCS12 key and trust stores; librdkafka clients read the PEM files.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class TlsFiles:
    """Paths and passwords of the generated TLS material."""

    directory: Path
    ca_pem: Path
    server_keystore: Path
    truststore: Path
    client_cert_pem: Path
    client_key_pem: Path
    keystore_password: str
    truststore_password: str


def generate_tls_files(directory: Path, common_name: str = "chargewire test CA") -> TlsFiles:
    """Write a fresh CA, a broker keystore/truststore (PKCS12) and client PEM files into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue(_name(common_name), ca_key, ca_key.public_key(), _name(common_name), ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(
        _name("localhost"),
        ca_key,
        server_key.public_key(),
        ca_cert.subject,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alt_names=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _issue(
        _name("chargewire-client"),
        ca_key,
        client_key.public_key(),
        ca_cert.subject,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )

    files = TlsFiles(
        directory=directory,
        ca_pem=directory / "ca.pem",
        server_keystore=directory / "server.p12",
        truststore=directory / "truststore.p12",
        client_cert_pem=directory / "client.pem",
        client_key_pem=directory / "client.key",
        keystore_password=secrets.token_urlsafe(16),
        truststore_password=secrets.token_urlsafe(16),
    )
    files.ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"server", server_key, server_cert, [ca_cert], _pkcs12_encryption(files.keystore_password)
        )
    )
    files.truststore.write_bytes(
        pkcs12.serialize_java_truststore(
            [pkcs12.PKCS12Certificate(ca_cert, b"ca")], _pkcs12_encryption(files.truststore_password)
        )
    )
    files.client_cert_pem.write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    files.client_key_pem.write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    files.client_key_pem.chmod(0o600)
    return files


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pkcs12_encryption(password: str) -> serialization.KeySerializationEncryption:
    # Spelled out rather than BestAvailableEncryption so the format stays one that Java 17 reads.
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(10_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )


def _issue(
    subject: x509.Name,
    signing_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    alt_names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
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
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(signing_key, hashes.SHA256())
