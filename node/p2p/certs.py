"""What a node reads from the consortium's certificates, and how it writes a secret.

A node's TLS certificate is issued by its organisation's CA (`network.pki` makes them)
and binds the node's secp256k1 address in a subject alternative name URI
`rxledger:node:0x<address>`; its subject's organisation name is the node's organisation.
The p2p layer (`node.p2p.tls`) reads both from a peer's certificate after the handshake.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

ADDRESS_URI_PREFIX = "rxledger:node:0x"


def bound_address(cert_der: bytes) -> bytes | None:
    """The node address a certificate binds (from its SAN URI), or None."""
    cert = x509.load_der_x509_certificate(cert_der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(ADDRESS_URI_PREFIX):
            try:
                address = bytes.fromhex(uri[len(ADDRESS_URI_PREFIX):])
            except ValueError:
                return None
            return address if len(address) == 20 else None
    return None


def organisation_of(cert_der: bytes) -> str | None:
    """The organisation name of a certificate's subject, or None."""
    cert = x509.load_der_x509_certificate(cert_der)
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else None


def write_private(path: Path, data: bytes) -> None:
    """Write a secret with mode 0600 from the start (never world-readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
