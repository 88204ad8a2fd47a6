"""The p2p port of a running node refuses whoever may not connect, and keeps serving.

A client of our own speaks to hospital-a's p2p port (TLS 1.3, `node/p2p/frames.py`):

- a certificate from a CA outside the consortium (even one naming a consortium org and
  binding a real validator's address) fails the handshake: the connection ends before
  STATUS, and the node logs why;
- a certificate from a consortium CA binding an address not on the allowlist gets a
  DISCONNECT with the reason;
- a certificate from another organisation's (consortium) CA binding a validator's
  address is refused at the handshake, the reason naming both organisations;
- garbage and an oversized frame header, on plain TCP and over TLS with an allowed
  identity (the observer `prober`, listed in every node.toml by `network init`, stopped
  so that its identity is free), are refused, and the node keeps finalising blocks and
  answering RPC.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from netharness import Net, wait_until

from network import pki
from network.layout import node_paths, org_ca_paths
from node.p2p.frames import (
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    Frame,
    Kind,
    Status,
    decode_disconnect,
    decode_frames,
    decode_status,
    encode_frame,
    encode_status,
)

OBSERVERS = ["prober@regulator"]
TARGET = "hospital-a"
PROBER = "prober"


@dataclass
class Outcome:
    """What our client saw: the frames the node sent, and how the connection ended."""

    frames: list[Frame]
    ended: str  # "eof", "reset", or the TLS error
    local_port: int

    @property
    def kinds(self) -> list[Kind]:
        return [f.kind for f in self.frames]

    def disconnect_reason(self) -> str | None:
        for frame in self.frames:
            if frame.kind == Kind.DISCONNECT:
                return decode_disconnect(frame.payload)
        return None


def _write_identity(directory: Path, issued: pki.Issued) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(issued.cert_pem)
    pki.write_private(key, issued.key_pem)
    return cert, key


def _client_context(net: Net, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # as the nodes: identity is the bound address
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(net.info.ca_bundle))
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _read_until_closed(sock: socket.socket | ssl.SSLSocket, timeout: float = 10.0,
                       until: Kind | None = None) -> tuple[list[Frame], str]:
    """Read frames until the peer closes (or, with `until`, until a frame of that kind)."""
    buffer = b""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the node neither closed the connection nor answered within {timeout:g} s "
                                 f"(frames so far: {[f.kind.name for f in frames]})")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ssl.SSLError as exc:
            return frames, f"TLS error: {exc.reason or exc}"
        except (ConnectionResetError, BrokenPipeError):
            return frames, "reset"
        except TimeoutError:
            continue
        if not chunk:
            return frames, "eof"
        buffer += chunk
        new, buffer = decode_frames(buffer)
        frames += new
        if until is not None and any(f.kind == until for f in new):
            return frames, "open"


def _tls_session(net: Net, cert: Path, key: Path, *, send_status: bool = False,
                 then: bytes = b"") -> Outcome:
    """Connect to TARGET over TLS with (cert, key); optionally read its STATUS, answer with
    ours, then send `then`; read until the node closes the connection."""
    node = net.node(TARGET)
    raw = socket.create_connection((node.p2p_host, node.p2p_port), timeout=10)
    local_port = raw.getsockname()[1]
    ctx = _client_context(net, cert, key)
    frames: list[Frame] = []
    try:
        try:
            tls = ctx.wrap_socket(raw)  # the handshake (TLS 1.3: the server checks our cert after it)
        except (ssl.SSLError, ConnectionResetError) as exc:
            return Outcome([], f"handshake failed: {exc}", local_port)
        with tls:
            if send_status or then:
                frames, ended = _read_until_closed(tls, until=Kind.STATUS)
                if ended != "open":
                    return Outcome(frames, ended, local_port)
                if send_status:
                    status = decode_status(frames[0].payload)
                    ours = Status(status.chain_id, status.genesis_hash, 0, status.genesis_hash,
                                  net.node(PROBER).address)
                    tls.sendall(encode_frame(Kind.STATUS, encode_status(ours)))
                if then:
                    tls.sendall(then)
            more, ended = _read_until_closed(tls)
            return Outcome(frames + more, ended, local_port)
    finally:
        raw.close()


def _plain_session(net: Net, data: bytes) -> Outcome:
    node = net.node(TARGET)
    with socket.create_connection((node.p2p_host, node.p2p_port), timeout=10) as sock:
        local_port = sock.getsockname()[1]
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return Outcome([], "reset", local_port)
        frames, ended = _read_until_closed(sock)
        return Outcome(frames, ended, local_port)


def _log_line(net: Net, *parts: str, timeout: float = 10.0) -> str:
    """Wait for a line of TARGET's node.log containing every one of `parts`."""
    def find() -> str | None:
        for line in net.log_text(TARGET).splitlines():
            if all(p in line for p in parts):
                return line
        return None

    return wait_until(find, timeout, f"a line with {parts} in {net.log_path(TARGET)}")


@pytest.fixture(scope="module")
def prober_identity(net: Net) -> Iterator[tuple[Path, Path]]:
    """The allowed identity of the observer `prober`, with prober itself stopped."""
    net.stop(PROBER)
    wait_until(lambda: all(p["name"] != PROBER for p in (net.health(TARGET) or {}).get("peers", [{"name": PROBER}])),
               15.0, f"{TARGET} to drop its connection to {PROBER}")
    paths = node_paths(net.dir, PROBER)
    yield paths.tls_cert, paths.tls_key


def test_certificate_from_unknown_ca_is_refused_before_status_and_logged(net: Net, tmp_path: Path) -> None:
    # A rogue CA calling itself hospital-a, issuing a certificate for a real validator's address.
    rogue_ca = pki.make_org_ca(TARGET)
    victim = net.node("hospital-b").address
    cert, key = _write_identity(tmp_path / "rogue", pki.issue_node_cert(
        rogue_ca, org=TARGET, node_name="hospital-b", address=victim))
    outcome = _tls_session(net, cert, key)
    assert Kind.STATUS not in outcome.kinds, f"the node sent STATUS to a rogue certificate: {outcome}"
    assert outcome.ended != "open"
    print(f"rogue CA: connection ended with {outcome.ended}")
    line = _log_line(net, "refused", f":{outcome.local_port}", "certificate verify failed")
    assert "WARNING" in line


def test_consortium_certificate_outside_allowlist_gets_disconnect_with_reason(net: Net, tmp_path: Path) -> None:
    ca_cert, ca_key = org_ca_paths(net.dir, "pharmacy-a")
    org_ca = pki.Issued(ca_key.read_bytes(), ca_cert.read_bytes())
    stranger = os.urandom(20)
    cert, key = _write_identity(tmp_path / "stranger", pki.issue_node_cert(
        org_ca, org="pharmacy-a", node_name="stranger", address=stranger))
    outcome = _tls_session(net, cert, key)
    assert Kind.STATUS not in outcome.kinds
    reason = outcome.disconnect_reason()
    assert reason is not None and "not on the allowlist" in reason and stranger.hex() in reason, outcome
    assert outcome.ended in ("eof", "reset") or outcome.ended.startswith("TLS error")
    line = _log_line(net, "refused", f":{outcome.local_port}", "not on the allowlist")
    assert "O=pharmacy-a" in line and "CN=stranger" in line


def test_certificate_from_another_orgs_ca_for_a_validator_address_is_refused_naming_both(
        net: Net, tmp_path: Path) -> None:
    # pharmacy-a's CA is a consortium CA (the TLS chain verifies), but hospital-b's
    # validator address is bound to hospital-b (genesis.json validator_orgs).
    ca_cert, ca_key = org_ca_paths(net.dir, "pharmacy-a")
    org_ca = pki.Issued(ca_key.read_bytes(), ca_cert.read_bytes())
    victim = net.node("hospital-b").address
    cert, key = _write_identity(tmp_path / "impostor", pki.issue_node_cert(
        org_ca, org="pharmacy-a", node_name="hospital-b", address=victim))
    outcome = _tls_session(net, cert, key)
    assert Kind.STATUS not in outcome.kinds, outcome
    reason = outcome.disconnect_reason()
    assert reason is not None, outcome
    assert "issued by the CA of pharmacy-a" in reason and "belongs to organisation hospital-b" in reason, reason
    line = _log_line(net, "refused", f":{outcome.local_port}", "the CA of pharmacy-a", "hospital-b")
    assert "WARNING" in line and "O=pharmacy-a" in line


@pytest.mark.parametrize("data", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
    pytest.param(os.urandom(512), id="random"),
    pytest.param(b"\xff\xff\xff\xff" + b"\x01" * 64, id="oversized-header"),
    pytest.param(encode_frame(Kind.STATUS, b"\xc0"), id="frame-without-tls"),
])
def test_garbage_on_plain_tcp_is_refused_and_logged(net: Net, data: bytes) -> None:
    outcome = _plain_session(net, data)
    assert outcome.frames == [], outcome
    assert outcome.ended in ("eof", "reset"), outcome
    _log_line(net, "refused", f"127.0.0.1:{outcome.local_port}:")


def test_oversized_frame_header_before_status_over_tls_is_refused_with_disconnect(
        net: Net, prober_identity: tuple[Path, Path]) -> None:
    outcome = _tls_session(net, *prober_identity, then=(MAX_FRAME_SIZE + 1).to_bytes(HEADER_SIZE, "big"))
    assert outcome.kinds[0] == Kind.STATUS  # the allowed identity got as far as STATUS
    reason = outcome.disconnect_reason()
    assert reason is not None and f"cap is {MAX_FRAME_SIZE}" in reason, outcome
    _log_line(net, "refused", f":{outcome.local_port}", f"cap is {MAX_FRAME_SIZE}")


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param(b"\xff\xff\xff\xff", "frame of 4294967295 bytes announced", id="oversized-header"),
    pytest.param((1).to_bytes(HEADER_SIZE, "big") + b"\x7f", "unknown frame type 0x7f", id="unknown-type"),
    pytest.param(b"\x00\x00\x00\x00", "empty frame", id="zero-length"),
    pytest.param(encode_frame(Kind.GET_BLOCKS, b"\xff\x00garbage"), "malformed GET_BLOCKS", id="bad-payload"),
])
def test_bad_frames_after_status_drop_the_peer_with_disconnect(
        net: Net, prober_identity: tuple[Path, Path], data: bytes, expected: str) -> None:
    outcome = _tls_session(net, *prober_identity, send_status=True, then=data)
    reason = outcome.disconnect_reason()
    assert reason is not None and expected in reason, outcome
    _log_line(net, "dropping peer", PROBER, f"127.0.0.1:{outcome.local_port}:", expected)


def test_node_keeps_finalising_and_answering_rpc_after_refusals(
        net: Net, prober_identity: tuple[Path, Path]) -> None:
    # Runs last in this module: everything above has been thrown at the node by now.
    assert net.is_running(TARGET)
    status = net.health(TARGET)
    assert status is not None and status["status"] == "ok"
    validators = net.validator_names
    wait_until(lambda: {p["name"] for p in (net.health(TARGET) or {}).get("peers", [])} >= set(validators) - {TARGET},
               15.0, f"{TARGET} connected to every other validator")
    head = net.head(TARGET)
    receipts = net.confirm_transactions([TARGET, *[v for v in validators if v != TARGET]], validators)
    assert all(int(r["blockNumber"], 16) > head for r in receipts.values())
