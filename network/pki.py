"""The consortium's PKI: one CA per organisation, one TLS certificate per node.

Made with `cryptography`. A node's certificate is issued by its organisation's CA and
binds the node's validator (or observer) address: the subject alternative name carries
the URI `rxledger:node:0x<address>` next to the loopback/DNS names. The TLS key itself is
ECDSA P-256 (TLS 1.3 has no secp256k1 signature scheme); the organisation CA's signature
is what ties it to the node's secp256k1 address.

A peer is accepted when its certificate chains to one of the consortium's org CAs
(checked by the TLS handshake) and the address it binds is on the node's allowlist
(checked by `node.p2p` after the handshake).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Reading a certificate is the node's (its p2p layer checks peers with it); re-exported here.
from node.p2p.certs import ADDRESS_URI_PREFIX, bound_address, organisation_of, write_private

__all__ = [
    "ADDRESS_URI_PREFIX", "Issued", "bound_address", "issue_node_cert", "make_org_ca",
    "organisation_of", "write_private",
]

VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class Issued:
    key_pem: bytes
    cert_pem: bytes


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_org_ca(org: str, *, now: datetime.datetime | None = None) -> Issued:
    """A self-signed CA for one organisation (may issue node certificates only)."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"{org} CA", org)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def issue_node_cert(ca: Issued, *, org: str, node_name: str, address: bytes,
                    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                    now: datetime.datetime | None = None) -> Issued:
    """A TLS certificate (client and server) for a node, binding its address."""
    now = now or datetime.datetime.now(datetime.UTC)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(ADDRESS_URI_PREFIX + address.hex())]
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(node_name, org)).issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))
