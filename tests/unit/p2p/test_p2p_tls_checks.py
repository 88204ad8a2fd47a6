"""node.p2p.tls without sockets: the contexts' settings and the post-handshake peer checks."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from network.pki import issue_node_cert, make_org_ca
from node.p2p import P2PError, PeerRefused, TlsIdentity
from node.p2p.tls import (
    PeerCertificate,
    check_peer,
    client_context,
    describe_ssl_error,
    read_peer_certificate,
    server_context,
)

ME, PEER, OTHER = bytes([1]) * 20, bytes([2]) * 20, bytes([3]) * 20


@pytest.fixture(scope="module")
def identity() -> TlsIdentity:
    ca = make_org_ca("hospital-a")
    issued = issue_node_cert(ca, org="hospital-a", node_name="alpha", address=ME)
    return TlsIdentity(issued.cert_pem, issued.key_pem, (ca.cert_pem,))


def peer_cert(address: bytes | None) -> PeerCertificate:
    ca = make_org_ca("hospital-b")
    issued = issue_node_cert(ca, org="hospital-b", node_name="beta", address=address or b"\x00" * 20)
    der = x509.load_pem_x509_certificate(issued.cert_pem).public_bytes(Encoding.DER)
    class FakeSSL:
        def getpeercert(self, binary_form: bool) -> bytes:
            return der
    cert = read_peer_certificate(FakeSSL())  # type: ignore[arg-type]
    assert cert is not None
    return cert if address is not None else PeerCertificate(der, None, cert.subject, cert.organisation)


@pytest.mark.parametrize("make", [server_context, client_context])
def test_contexts_are_tls13_only_with_mutual_authentication(identity: TlsIdentity, make) -> None:
    ctx = make(identity)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is False  # the address binding is checked instead (see tls.py)
    assert len(ctx.get_ca_certs()) == 1  # the consortium's CAs only, never the system store


def test_a_context_needs_consortium_cas_and_a_matching_key(identity: TlsIdentity) -> None:
    with pytest.raises(P2PError, match="no consortium CA"):
        server_context(TlsIdentity(identity.cert_pem, identity.key_pem, ()))
    other = issue_node_cert(make_org_ca("x"), org="x", node_name="y", address=OTHER)
    with pytest.raises(P2PError, match="cannot load the node's TLS certificate and key"):
        client_context(TlsIdentity(identity.cert_pem, other.key_pem, identity.ca_pems))


def test_identity_loads_from_files(tmp_path: Path, identity: TlsIdentity) -> None:
    (tmp_path / "node.crt").write_bytes(identity.cert_pem)
    (tmp_path / "node.key").write_bytes(identity.key_pem)
    (tmp_path / "ca.crt").write_bytes(identity.ca_pems[0])
    loaded = TlsIdentity.load(tmp_path / "node.crt", tmp_path / "node.key", [tmp_path / "ca.crt"])
    assert loaded == identity


def test_peer_certificate_fields() -> None:
    cert = peer_cert(PEER)
    assert cert.address == PEER
    assert cert.organisation == "hospital-b"
    assert cert.subject == "CN=beta,O=hospital-b"
    assert cert.common_name == "beta"
    assert read_peer_certificate(None) is None


def test_check_peer() -> None:
    cert = peer_cert(PEER)
    assert check_peer(cert, lambda a: True, own=ME) == PEER
    assert check_peer(cert, {PEER}.__contains__, own=ME, expected=PEER) == PEER
    cases = [
        (None, {}, "presented no certificate"),
        (peer_cert(None), {}, "binds no node address"),
        (cert, {"own": PEER}, "our own address"),
        (cert, {"expected": OTHER}, f"dialled 0x{OTHER.hex()} but the certificate binds 0x{PEER.hex()}"),
    ]
    for candidate, kwargs, message in cases:
        with pytest.raises(PeerRefused, match=message):
            check_peer(candidate, lambda a: True, **{"own": ME, **kwargs})  # type: ignore[arg-type]
    with pytest.raises(PeerRefused, match=f"address 0x{PEER.hex()} is not on the allowlist"):
        check_peer(cert, {OTHER}.__contains__, own=ME)


def test_describe_ssl_error() -> None:
    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] ...")
    verify.verify_message = "unable to get local issuer certificate"
    assert describe_ssl_error(verify) == "certificate verify failed: unable to get local issuer certificate"
    alert = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] ...")
    alert.reason = "TLSV1_ALERT_UNKNOWN_CA"
    assert describe_ssl_error(alert) == "tlsv1 alert unknown ca"
    assert describe_ssl_error(TimeoutError()) == "timed out"
    assert describe_ssl_error(ConnectionResetError(104, "reset")) == "connection closed by the peer"
    assert describe_ssl_error(ConnectionRefusedError(111, "no")) == "connection refused"
    assert describe_ssl_error(OSError(113, "No route to host")) == "OSError: [Errno 113] No route to host"


def test_a_concatenated_ca_bundle_trusts_every_org(tmp_path: Path, identity: TlsIdentity) -> None:
    other = make_org_ca("pharmacy")
    (tmp_path / "ca-bundle.pem").write_bytes(identity.ca_pems[0] + other.cert_pem)
    (tmp_path / "tls.pem").write_bytes(identity.cert_pem)
    (tmp_path / "tls.key").write_bytes(identity.key_pem)
    loaded = TlsIdentity.load(tmp_path / "tls.pem", tmp_path / "tls.key", [tmp_path / "ca-bundle.pem"])
    assert len(server_context(loaded).get_ca_certs()) == 2
