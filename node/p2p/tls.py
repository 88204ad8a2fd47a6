"""TLS 1.3 with mutual authentication between nodes, and the post-handshake peer checks.

Both sides present a certificate issued by one of the consortium's org CAs
(`network.pki` issues them; `node.p2p.certs` reads them) and require one from the other side; trust is the bundle of every org CA
certificate and nothing else (not the system store). A peer whose certificate does not
chain to a consortium CA fails the handshake itself. After it, `check_peer` reads the
node address the certificate binds (SAN URI `rxledger:node:0x…`) and refuses a peer whose
address is not on the allowlist, is our own, or (when we dialled) is not the one we meant
to reach; and, when the address is bound to an organisation (a validator by genesis or
by the vote that added it, an observer by its peer entry), a certificate that was not
issued by that organisation's CA, or that names another organisation: any consortium CA
can issue a certificate for any address, so the chain of trust alone would let one
organisation impersonate another's validator.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from node.p2p.certs import bound_address, organisation_of, write_private
from node.p2p.frames import P2PError


class PeerRefused(P2PError):
    """A peer completed the handshake but may not connect (allowlist, address, status)."""


class Allowlist(Protocol):
    """Who may connect, and which organisation's CA must have certified them."""

    def refusal(self, address: bytes) -> str | None:
        """Why `address` may not connect now, or None if it may."""
        ...

    def org_of(self, address: bytes) -> str | None:
        """The organisation `address` is bound to (its certificate's CA), or None: unbound."""
        ...


class SimpleAllowlist:
    """An allowlist from a predicate, binding no organisation (or those of `orgs`)."""

    def __init__(self, allow: Callable[[bytes], bool], orgs: Mapping[bytes, str] | None = None) -> None:
        self.allow = allow
        self.orgs = dict(orgs or {})

    def refusal(self, address: bytes) -> str | None:
        return None if self.allow(address) else f"address 0x{address.hex()} is not on the allowlist"

    def org_of(self, address: bytes) -> str | None:
        return self.orgs.get(address)


def as_allowlist(allow: Allowlist | Callable[[bytes], bool]) -> Allowlist:
    """`allow` as an `Allowlist` (a plain predicate binds no organisation)."""
    if hasattr(allow, "refusal") and hasattr(allow, "org_of"):
        return allow
    return SimpleAllowlist(allow)


@dataclass(frozen=True)
class OrgCAs:
    """The consortium's CA certificates by organisation (their subject's O), from the bundle."""

    by_org: Mapping[str, tuple[x509.Certificate, ...]]

    @classmethod
    def from_pems(cls, pems: Sequence[bytes]) -> OrgCAs:
        by_org: dict[str, list[x509.Certificate]] = {}
        for pem in pems:
            for cert in x509.load_pem_x509_certificates(pem):
                values = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
                org = str(values[0].value) if values else ""
                by_org.setdefault(org, []).append(cert)
        return cls({org: tuple(certs) for org, certs in by_org.items()})

    def issuer_org(self, leaf_der: bytes) -> str | None:
        """The organisation of the bundle CA that signed this certificate, or None."""
        leaf = x509.load_der_x509_certificate(leaf_der)
        for org, cas in self.by_org.items():
            for ca in cas:
                if ca.subject != leaf.issuer:
                    continue
                try:
                    leaf.verify_directly_issued_by(ca)
                except (ValueError, TypeError, InvalidSignature):
                    continue
                return org
        return None


@dataclass(frozen=True)
class TlsIdentity:
    """A node's TLS certificate and key (PEM) and the consortium's org CA certificates."""

    cert_pem: bytes
    key_pem: bytes
    ca_pems: tuple[bytes, ...]

    @classmethod
    def load(cls, cert_file: Path, key_file: Path, ca_files: Sequence[Path]) -> TlsIdentity:
        """Read the PEM files a node's config points at."""
        return cls(Path(cert_file).read_bytes(), Path(key_file).read_bytes(),
                   tuple(Path(p).read_bytes() for p in ca_files))


def _context(identity: TlsIdentity, purpose: int) -> ssl.SSLContext:
    if not identity.ca_pems:
        raise P2PError("no consortium CA certificates: every peer would be refused")
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    # The client context checks hostnames by default; that must be off before the mode is
    # set (see client_context for why we do not check them).
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    # Only the consortium's CAs: never the system trust store.
    ctx.load_verify_locations(cadata=b"\n".join(identity.ca_pems).decode("ascii"))
    # load_cert_chain reads files only: write the key to a private temporary directory
    # (0700, the key file 0600) for the moment it takes.
    with tempfile.TemporaryDirectory(prefix="rxledger-tls-") as tmp:
        cert_file, key_file = Path(tmp) / "node.crt", Path(tmp) / "node.key"
        cert_file.write_bytes(identity.cert_pem)
        write_private(key_file, identity.key_pem)
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise P2PError(f"cannot load the node's TLS certificate and key: {exc}") from exc
    return ctx


def server_context(identity: TlsIdentity) -> ssl.SSLContext:
    """The listening side: TLS 1.3 only, a client certificate from a consortium CA required."""
    return _context(identity, ssl.PROTOCOL_TLS_SERVER)


def client_context(identity: TlsIdentity) -> ssl.SSLContext:
    """The dialling side: TLS 1.3 only, our certificate presented, the server's verified.

    Hostname checking is off on purpose. A peer's identity is the node address its
    certificate binds, not where it is reachable: after the handshake the dialler checks
    that the bound address is exactly the one of the peer it dialled (`check_peer`,
    `expected=`), which a CA-signed certificate for some other host name could not pass
    either, and which keeps working behind NAT, in containers and when a peer's IP
    changes without re-issuing its certificate.
    """
    return _context(identity, ssl.PROTOCOL_TLS_CLIENT)


@dataclass(frozen=True)
class PeerCertificate:
    """What we read from a peer's (already verified) certificate."""

    der: bytes
    address: bytes | None
    subject: str
    organisation: str | None

    @property
    def common_name(self) -> str | None:
        cert = x509.load_der_x509_certificate(self.der)
        values = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(values[0].value) if values else None


def read_peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> PeerCertificate | None:
    """The peer's certificate after a handshake, or None if it presented none."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        return PeerCertificate(der, bound_address(der), subject, organisation_of(der))
    except ValueError:
        return PeerCertificate(der, None, "(unreadable certificate)", None)


def check_peer(cert: PeerCertificate | None, allow: Allowlist | Callable[[bytes], bool], *, own: bytes,
               expected: bytes | None = None, cas: OrgCAs | None = None) -> bytes:
    """The peer's node address if it may connect; raises `PeerRefused` with the reason.

    With `cas` (the consortium's CAs by organisation), an address the allowlist binds to
    an organisation must present a certificate issued by that organisation's CA and
    naming that organisation.
    """
    allowlist = as_allowlist(allow)
    if cert is None:
        raise PeerRefused("the peer presented no certificate")
    address = cert.address
    if address is None:
        raise PeerRefused("the certificate binds no node address")
    if address == own:
        raise PeerRefused("the certificate binds our own address (connected to ourselves?)")
    if expected is not None and address != expected:
        raise PeerRefused(f"dialled 0x{expected.hex()} but the certificate binds 0x{address.hex()}")
    reason = allowlist.refusal(address)
    if reason is not None:
        raise PeerRefused(reason)
    check_organisation(cert, address, allowlist.org_of(address), cas)
    return address


def check_organisation(cert: PeerCertificate, address: bytes, org: str | None, cas: OrgCAs | None) -> None:
    """Raise `PeerRefused` unless `cert` comes from `org`'s CA and names `org` (None: unbound)."""
    if org is None or cas is None:
        return
    issuer = cas.issuer_org(cert.der)
    if issuer != org:
        by = f"the CA of {issuer}" if issuer is not None else "no CA of the bundle"
        raise PeerRefused(f"the certificate for 0x{address.hex()} was issued by {by}, but 0x{address.hex()} "
                          f"belongs to organisation {org}")
    if cert.organisation != org:
        raise PeerRefused(f"the certificate for 0x{address.hex()} names organisation {cert.organisation}, "
                          f"but 0x{address.hex()} belongs to organisation {org}")


def describe_ssl_error(exc: BaseException) -> str:
    """A short readable reason for a failed handshake or a broken TLS stream."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason:
            return reason.lower().replace("_", " ")
        return str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, (EOFError, ConnectionResetError, BrokenPipeError)):
        return "connection closed by the peer"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "Allowlist", "OrgCAs", "PeerCertificate", "PeerRefused", "SimpleAllowlist", "TlsIdentity", "as_allowlist",
    "check_organisation", "check_peer", "client_context",
    "describe_ssl_error", "read_peer_certificate", "server_context",
]
