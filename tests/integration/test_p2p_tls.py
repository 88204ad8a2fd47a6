"""node.p2p over real TLS 1.3 on loopback, with certificates from network.pki.

Connections and frames both ways (two and three nodes), block sync frames, refusals
(unknown CA, allowlist, wrong genesis, duplicate), garbage and oversized frames on TLS and
on plain TCP, a peer that does not read, handler failures, and reconnection after a
restart. Every wait polls with a short timeout.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import pytest

from chaincode_py import NativeChaincodeHost
from network.pki import Issued, issue_node_cert, make_org_ca
from node.p2p import Kind, P2PConfig, P2PService, PeerInfo, Status, TlsIdentity
from node.p2p.frames import (
    HEADER_SIZE,
    decode_body,
    decode_length,
    encode_frame,
    encode_get_blocks,
    encode_status,
)
from node.p2p.tls import SimpleAllowlist, client_context

CHAIN_ID = 2024
GENESIS = b"\x11" * 32
HEAD_HASH = b"\x22" * 32
LOG = "rxledger.p2p"

A, B, C = (bytes([n]) * 20 for n in (1, 2, 3))
STRANGER = bytes([9]) * 20  # certified by a consortium CA, not on the allowlist
RAW = bytes([7]) * 20  # certified, allowed, not a static peer: the raw-socket client


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@dataclass
class Consortium:
    cas: dict[str, Issued] = field(default_factory=dict)

    def ca(self, org: str) -> Issued:
        if org not in self.cas:
            self.cas[org] = make_org_ca(org)
        return self.cas[org]

    def identity(self, org: str, name: str, address: bytes, *, ca: Issued | None = None) -> TlsIdentity:
        issued = issue_node_cert(ca or self.ca(org), org=org, node_name=name, address=address)
        return TlsIdentity(issued.cert_pem, issued.key_pem, tuple(c.cert_pem for c in self.cas.values()))


@dataclass
class Recorder:
    """Handlers that record what arrives (called from the p2p threads)."""

    consensus: list[tuple[bytes, bytes]] = field(default_factory=list)
    txs: list[tuple[bytes, bytes]] = field(default_factory=list)
    blocks: list[tuple[bytes, list[bytes]]] = field(default_factory=list)
    statuses: list[tuple[bytes, Status]] = field(default_factory=list)
    chain: list[bytes] = field(default_factory=lambda: [b"block-%d" % n for n in range(300)])
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_consensus(self, peer: bytes, data: bytes) -> None:
        with self.lock:
            self.consensus.append((peer, data))

    def on_transaction(self, peer: bytes, raw: bytes) -> None:
        with self.lock:
            self.txs.append((peer, raw))

    def on_get_blocks(self, peer: bytes, from_height: int, count: int) -> list[bytes]:
        return self.chain[from_height:from_height + count]

    def on_blocks(self, peer: bytes, blocks: list[bytes]) -> None:
        with self.lock:
            self.blocks.append((peer, blocks))

    def on_status(self, peer: bytes, status: Status) -> None:
        with self.lock:
            self.statuses.append((peer, status))

    def handlers(self) -> dict[str, Callable[..., object]]:
        return {"on_consensus": self.on_consensus, "on_transaction": self.on_transaction,
                "on_get_blocks": self.on_get_blocks, "on_blocks": self.on_blocks,
                "on_status": self.on_status}


NAMES = {A: "alpha", B: "beta", C: "gamma", RAW: "raw", STRANGER: "stranger"}
ORGS = {A: "hospital-a", B: "hospital-b", C: "pharmacy", RAW: "regulator", STRANGER: "regulator"}
ALLOWED = {A, B, C, RAW}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Net:
    """Starts P2PServices for a test and stops them all at teardown."""

    def __init__(self) -> None:
        self.consortium = Consortium()
        for org in sorted(set(ORGS.values())):
            self.consortium.ca(org)
        self.ports = {address: free_port() for address in NAMES}
        self.services: list[P2PService] = []
        self.sockets: list[socket.socket] = []

    def peer(self, address: bytes) -> PeerInfo:
        return PeerInfo(NAMES[address], address, "127.0.0.1", self.ports[address])

    def identity(self, address: bytes) -> TlsIdentity:
        return self.consortium.identity(ORGS[address], NAMES[address], address)

    def start(self, address: bytes, peers: tuple[bytes, ...] = (), *, recorder: Recorder | None = None,
              identity: TlsIdentity | None = None, genesis: bytes = GENESIS,
              allow: Callable[[bytes], bool] = ALLOWED.__contains__, **limits: object) -> P2PService:
        config = P2PConfig(host="127.0.0.1", port=self.ports[address], address=address,
                           chain_id=CHAIN_ID, genesis_hash=genesis,
                           peers=tuple(self.peer(p) for p in peers), handshake_timeout=3.0)
        config = replace(config, **limits)  # type: ignore[arg-type]
        recorder = recorder or Recorder()
        service = P2PService(config, identity or self.identity(address), allow=allow,
                             head=lambda: (7, HEAD_HASH), **recorder.handlers())  # type: ignore[arg-type]
        service.recorder = recorder  # type: ignore[attr-defined]
        service.start()
        self.services.append(service)
        return service

    def stop_all(self) -> None:
        for service in self.services:
            service.stop()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def net() -> Iterator[Net]:
    n = Net()
    try:
        yield n
    finally:
        n.stop_all()


def rec(service: P2PService) -> Recorder:
    return service.recorder  # type: ignore[attr-defined, no-any-return]


def connected(service: P2PService, *peers: bytes) -> Callable[[], bool]:
    return lambda: all(service.is_connected(p) for p in peers)


def pair(net: Net) -> tuple[P2PService, P2PService]:
    a = net.start(A, (B,))
    b = net.start(B, (A,))
    wait_until(lambda: connected(a, B)() and connected(b, A)(), what="a and b to connect")
    return a, b


# -- a raw TLS (or plain TCP) client, speaking frames by hand ------------------------------
class RawPeer:
    def __init__(self, net: Net, target: bytes, *, address: bytes = RAW, tls: bool = True,
                 source: str = "127.0.0.1", identity: TlsIdentity | None = None) -> None:
        # `source`: another loopback address (127.0.0.2, …) stands for another remote host.
        sock = socket.create_connection(("127.0.0.1", net.ports[target]), timeout=5,
                                        source_address=(source, 0))
        if tls:
            ctx = client_context(identity or net.identity(address))
            sock = ctx.wrap_socket(sock, server_hostname=None)
        self.sock = sock
        self.address = address
        net.sockets.append(sock)

    def send_status(self, genesis: bytes = GENESIS) -> None:
        status = Status(CHAIN_ID, genesis, 3, HEAD_HASH, self.address)
        self.sock.sendall(encode_frame(Kind.STATUS, encode_status(status)))

    def read_frame(self) -> tuple[Kind, bytes]:
        header = self._read(HEADER_SIZE)
        frame = decode_body(self._read(decode_length(header)))
        return frame.kind, frame.payload

    def frames_until_closed(self) -> list[tuple[Kind, bytes]]:
        frames = []
        try:
            while True:
                frames.append(self.read_frame())
        except (EOFError, OSError):
            return frames

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def logged(caplog: pytest.LogCaptureFixture, *parts: str) -> Callable[[], bool]:
    return lambda: any(all(p in r.getMessage() for p in parts) for r in list(caplog.records))


# -- connections and frames ---------------------------------------------------------------
def test_two_nodes_connect_once_and_exchange_frames_both_ways(net: Net) -> None:
    a, b = pair(net)
    a.broadcast(Kind.CONSENSUS, b"from a")
    b.send(A, Kind.CONSENSUS, b"from b")
    a.send(B, Kind.TX, b"\x02tx-from-a")
    b.broadcast(Kind.TX, b"\x02tx-from-b")
    wait_until(lambda: rec(b).consensus == [(A, b"from a")] and rec(a).consensus == [(B, b"from b")])
    wait_until(lambda: rec(b).txs == [(A, b"\x02tx-from-a")] and rec(a).txs == [(B, b"\x02tx-from-b")])

    # b (the higher address) dialled a; a accepted: one connection, seen from both ends.
    [seen_by_a] = a.connected_peers()
    [seen_by_b] = b.connected_peers()
    assert (seen_by_a.address, seen_by_a.name, seen_by_a.outbound, seen_by_a.head_number) == (B, "beta", False, 7)
    assert (seen_by_b.address, seen_by_b.name, seen_by_b.outbound, seen_by_b.port) == (A, "alpha", True, a.port)
    assert seen_by_a.as_json()["direction"] == "inbound"
    assert seen_by_b.as_json()["endpoint"] == f"127.0.0.1:{a.port}"
    # Both sides sent STATUS on connect and the handler saw it.
    assert rec(a).statuses[0][0] == B and rec(a).statuses[0][1].head_hash == HEAD_HASH
    assert rec(b).statuses[0][1].node_address == A


def test_three_nodes_form_a_mesh_and_broadcast(net: Net) -> None:
    a = net.start(A, (B, C))
    b = net.start(B, (A, C))
    c = net.start(C, (A, B))
    for service, others in ((a, (B, C)), (b, (A, C)), (c, (A, B))):
        wait_until(connected(service, *others), what=f"{service.config.address.hex()[:2]} to connect")
    for service in (a, b, c):
        service.broadcast(Kind.CONSENSUS, b"m" + service.config.address[:1])
    for service in (a, b, c):
        wait_until(lambda service=service: len(rec(service).consensus) == 2)
        senders = {peer for peer, _ in rec(service).consensus}
        assert service.config.address not in senders and len(senders) == 2
        assert all(data == b"m" + peer[:1] for peer, data in rec(service).consensus)
    assert [p.outbound for p in c.connected_peers()] == [True, True]
    assert [p.outbound for p in a.connected_peers()] == [False, False]


def test_get_blocks_answered_with_at_most_the_cap_per_frame(net: Net) -> None:
    a = net.start(A, (B,), max_blocks_per_frame=16)
    b = net.start(B, (A,))
    wait_until(connected(b, A))
    b.send(A, Kind.GET_BLOCKS, encode_get_blocks(5, 1000))
    wait_until(lambda: len(rec(b).blocks) == 1)
    peer, blocks = rec(b).blocks[0]
    assert peer == A and blocks == [b"block-%d" % n for n in range(5, 21)]
    a.send(B, Kind.GET_BLOCKS, encode_get_blocks(298, 10))  # the other way; only two left
    wait_until(lambda: len(rec(a).blocks) == 1)
    assert rec(a).blocks[0] == (B, [b"block-298", b"block-299"])


def test_blocks_answer_stays_within_the_frame_cap(net: Net) -> None:
    big = Recorder(chain=[bytes([n]) * 1000 for n in range(50)])
    net.start(A, (B,), recorder=big, max_frame_size=4096)
    b = net.start(B, (A,), max_frame_size=4096)
    wait_until(connected(b, A))
    b.send(A, Kind.GET_BLOCKS, encode_get_blocks(0, 50))
    wait_until(lambda: len(rec(b).blocks) == 1)
    blocks = rec(b).blocks[0][1]
    assert 1 <= len(blocks) <= 4 and blocks == big.chain[:len(blocks)]


def test_a_failing_handler_is_logged_and_the_connection_lives_on(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a, b = pair(net)
    calls: list[bytes] = []

    def flaky(peer: bytes, data: bytes) -> None:
        calls.append(data)
        if data == b"boom":
            raise RuntimeError("handler bug")

    a.dispatcher.handlers = replace(a.dispatcher.handlers, on_consensus=flaky)
    b.send(A, Kind.CONSENSUS, b"boom")
    b.send(A, Kind.CONSENSUS, b"fine")
    wait_until(lambda: calls == [b"boom", b"fine"])
    assert logged(caplog, "on_consensus handler failed")()
    assert a.is_connected(B) and b.is_connected(A)


# -- refusals -----------------------------------------------------------------------------
def test_a_certificate_from_an_unknown_ca_is_refused_at_the_handshake(
        net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a, b = pair(net)
    # Same organisation name, same (allowed) address, but issued by a CA outside the
    # consortium; it trusts the consortium's CAs, so only our side can refuse it.
    rogue_ca = make_org_ca("hospital-b")
    rogue = net.consortium.identity("hospital-b", "beta", C, ca=rogue_ca)
    c = net.start(C, (A,), identity=rogue)
    wait_until(logged(caplog, "refused 127.0.0.1:", "certificate verify failed: unable to get local issuer certificate"),
               what="the refusal to be logged")
    assert not a.is_connected(C) and not c.is_connected(A)
    # The rogue (TLS 1.3: its handshake completed on its side) sees the connection closed.
    wait_until(logged(caplog, "cannot connect to alpha at 127.0.0.1:"), what="the dialler's log")
    # Everyone else is still served.
    b.send(A, Kind.CONSENSUS, b"still here")
    wait_until(lambda: rec(a).consensus == [(B, b"still here")])


def test_a_server_certificate_from_an_unknown_ca_is_refused_by_the_dialler(
        net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    rogue_ca = make_org_ca("hospital-a")
    rogue = net.start(A, identity=net.consortium.identity("hospital-a", "alpha", A, ca=rogue_ca))
    b = net.start(B, (A,))
    wait_until(logged(caplog, "cannot connect to alpha at 127.0.0.1:",
                      "certificate verify failed: unable to get local issuer certificate"),
               what="the dialler's refusal")
    assert not b.is_connected(A) and not rogue.is_connected(B)


def test_a_consortium_certificate_not_on_the_allowlist_is_refused(
        net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a = net.start(A, (B,))
    stranger = net.start(STRANGER, (A,), allow=lambda address: True)
    wait_until(logged(caplog, "refused 127.0.0.1:", "CN=stranger", "not on the allowlist"),
               what="the allowlist refusal")
    # The refused side got the reason in a DISCONNECT.
    wait_until(logged(caplog, "cannot connect to alpha", "not on the allowlist"), what="the dialler's log")
    assert a.connected_peers() == [] and stranger.connected_peers() == []


def test_a_status_with_another_genesis_is_refused(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a = net.start(A, (B,))
    b = net.start(B, (A,), genesis=b"\x99" * 32)
    wait_until(logged(caplog, "refused 127.0.0.1:", "genesis hash 0x9999"), what="the genesis refusal")
    assert not a.is_connected(B) and not b.is_connected(A)


def test_a_status_address_must_match_the_certificate(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    net.start(A)
    raw = RawPeer(net, A)
    status = Status(CHAIN_ID, GENESIS, 3, HEAD_HASH, B)  # claims to be b
    raw.sock.sendall(encode_frame(Kind.STATUS, encode_status(status)))
    frames = raw.frames_until_closed()
    assert frames[0][0] == Kind.STATUS
    assert frames[-1][0] == Kind.DISCONNECT and b"differs from the certificate" in frames[-1][1]
    assert logged(caplog, "refused 127.0.0.1:", "differs from the certificate")()


def test_a_duplicate_connection_keeps_the_existing_one(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a, b = pair(net)
    raw = RawPeer(net, A, address=B)  # b's certificate, a second time
    raw.send_status()
    frames = raw.frames_until_closed()
    assert frames[-1][0] == Kind.DISCONNECT and b"already connected" in frames[-1][1]
    b.send(A, Kind.CONSENSUS, b"original")
    wait_until(lambda: rec(a).consensus == [(B, b"original")])


# -- garbage ------------------------------------------------------------------------------
GARBAGE = [
    pytest.param(b"\x00\x00\x00\x05\x99abcd", "unknown frame type 0x99", id="unknown-type"),
    pytest.param(b"\x7f\xff\xff\xff", "frame of 2147483647 bytes announced", id="oversized-header"),
    pytest.param(b"\x00\x00\x00\x00", "empty frame", id="empty-frame"),
    pytest.param(b"\x00\x00\x00\x04\x01\xc2\x01\x02", "malformed STATUS", id="bad-status"),
]


@pytest.mark.parametrize("after_status", [False, True], ids=["before-status", "after-status"])
@pytest.mark.parametrize(("garbage", "reason"), GARBAGE)
def test_garbage_on_tls_drops_that_connection_only(
        net: Net, caplog: pytest.LogCaptureFixture, garbage: bytes, reason: str, after_status: bool) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a, b = pair(net)
    raw = RawPeer(net, A)
    if after_status:
        raw.send_status()
        assert raw.read_frame()[0] == Kind.STATUS
        wait_until(connected(a, RAW))
    raw.sock.sendall(garbage)
    frames = raw.frames_until_closed()
    assert frames and frames[-1][0] == Kind.DISCONNECT and reason.encode() in frames[-1][1]
    wait_until(logged(caplog, reason), what="the reason to be logged")
    wait_until(lambda: not a.is_connected(RAW))
    b.send(A, Kind.CONSENSUS, b"still served")
    wait_until(lambda: rec(a).consensus == [(B, b"still served")])
    again = RawPeer(net, A)  # and it accepts new connections
    again.send_status()
    assert again.read_frame()[0] == Kind.STATUS
    again.close()


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x7f\xff\xff\xff" + b"\x00" * 64,
                                     b"\x16\x03\x01\x00\x05hello"])
def test_plain_tcp_is_refused_at_the_handshake(net: Net, caplog: pytest.LogCaptureFixture, garbage: bytes) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a, b = pair(net)
    raw = RawPeer(net, A, tls=False)
    port = raw.sock.getsockname()[1]
    raw.sock.sendall(garbage)
    wait_until(logged(caplog, f"refused 127.0.0.1:{port}:"), what="the refusal")
    raw.close()
    b.send(A, Kind.CONSENSUS, b"still served")
    wait_until(lambda: rec(a).consensus == [(B, b"still served")])


def test_a_silent_tcp_client_is_dropped_after_the_handshake_timeout(
        net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    net.start(A, handshake_timeout=0.3)
    raw = RawPeer(net, A, tls=False)
    port = raw.sock.getsockname()[1]
    wait_until(logged(caplog, f"refused 127.0.0.1:{port}:"), what="the timeout")
    raw.close()


def test_a_peer_that_does_not_read_is_dropped(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a = net.start(A, write_queue_frames=16, write_queue_bytes=1024 * 1024)
    raw = RawPeer(net, A)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.send_status()
    wait_until(connected(a, RAW))
    chunk = b"x" * 65536
    deadline = time.monotonic() + 10
    while a.is_connected(RAW) and time.monotonic() < deadline:
        a.send(RAW, Kind.CONSENSUS, chunk)
        time.sleep(0.001)
    assert not a.is_connected(RAW)
    assert logged(caplog, "does not read")()
    raw.close()


# -- restarts -----------------------------------------------------------------------------
def test_the_dialler_reconnects_after_the_peer_restarts(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a, b = pair(net)
    a.stop()
    wait_until(lambda: not b.is_connected(A), what="b to notice")
    a2 = net.start(A, (B,))
    wait_until(connected(b, A), timeout=8, what="b to redial")
    wait_until(connected(a2, B))
    b.send(A, Kind.CONSENSUS, b"after restart")
    wait_until(lambda: rec(a2).consensus == [(B, b"after restart")])


def test_a_restarted_dialler_comes_back(net: Net) -> None:
    a, b = pair(net)
    b.stop()
    wait_until(lambda: not a.is_connected(B), what="a to notice")
    b2 = net.start(B, (A,))
    wait_until(lambda: connected(a, B)() and connected(b2, A)(), what="b to come back")
    a.send(B, Kind.TX, b"\x02again")
    wait_until(lambda: rec(b2).txs == [(A, b"\x02again")])


def test_stop_is_prompt_and_idempotent(net: Net) -> None:
    a, b = pair(net)
    started = time.monotonic()
    a.stop()
    a.stop()
    assert time.monotonic() - started < 3
    a.broadcast(Kind.CONSENSUS, b"after stop")  # a no-op, never an error
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", a.port), timeout=1).close()


def test_a_failing_allowlist_callback_refuses_that_connection_only(
        net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)

    def allow(address: bytes) -> bool:
        if address == C:
            raise RuntimeError("allowlist bug")
        return address in ALLOWED

    a = net.start(A, (B, C), allow=allow)
    b = net.start(B, (A,))
    net.start(C, (A,))
    wait_until(logged(caplog, "connection with 127.0.0.1:", "failed"), what="the bug to be logged")
    wait_until(connected(b, A))
    assert not a.is_connected(C)


# -- a consortium of real nodes over TLS ----------------------------------------------------
def test_validators_decide_over_tls_and_a_restarted_empty_one_catches_up(net: Net) -> None:
    from eth_account import Account
    from eth_utils import to_checksum_address

    from node.config import NodeConfig
    from node.consensus.qbft import QbftConfig
    from node.genesis import GenesisConfig, derive_dev_key, dev_accounts, dev_genesis
    from node.p2p import P2PTransport
    from node.service import NodeService
    from rxledger.core.crypto import private_key_to_address

    keys = sorted((derive_dev_key(600 + i) for i in range(4)), key=private_key_to_address)
    addresses = [private_key_to_address(k) for k in keys]
    genesis = GenesisConfig(chain_id=CHAIN_ID, validators=tuple(addresses), enrolments=dev_genesis().enrolments)
    sender = Account.from_key(dev_accounts()[9].private_key)
    ports = {a: free_port() for a in addresses}
    identities = {a: net.consortium.identity("hospital-a", f"v{i}", a) for i, a in enumerate(addresses)}
    peers = tuple(PeerInfo(f"v{i}", a, "127.0.0.1", ports[a]) for i, a in enumerate(addresses))

    def raw_tx(nonce: int) -> bytes:
        tx = dict(nonce=nonce, gasPrice=0, gas=21_000, to=to_checksum_address(dev_accounts()[1].address),
                  value=0, chainId=CHAIN_ID)
        return bytes(sender.sign_transaction(tx).raw_transaction)

    running: dict[bytes, tuple[NodeService, P2PTransport, P2PService]] = {}

    def start(key: bytes) -> None:
        address = private_key_to_address(key)
        node = NodeService(NodeConfig(data_dir=None), genesis, validator_key=key, chaincode=NativeChaincodeHost)
        transport = P2PTransport(node.chain, submit_transaction=node.submit_raw_transaction, request_retry=0.2)
        chain = node.chain
        config = P2PConfig(host="127.0.0.1", port=ports[address], address=address, chain_id=chain.chain_id,
                           genesis_hash=chain.genesis_hash, peers=tuple(p for p in peers if p.address != address))
        service = P2PService(config, identities[address], allow=set(addresses).__contains__,
                             head=lambda: (chain.head.number, chain.head.hash), **transport.handlers())  # type: ignore[arg-type]
        transport.attach(service)
        runtime = node.start_consensus(QbftConfig(block_period=0, empty_block_period=None, round_timeout=1.0,
                                                  sync_retry=0.2), transport)
        transport.bind_runtime(runtime)
        service.start()
        running[address] = (node, transport, service)

    def stop(address: bytes) -> None:
        node, _, service = running.pop(address)
        service.stop()
        node.close()

    def heads() -> list[int]:
        return [node.chain.head.number for node, _, _ in running.values()]

    try:
        for key in keys:
            start(key)
        wait_until(lambda: all(len(s.connected_peers()) == 3 for _, _, s in running.values()), what="the mesh")
        node, transport, _ = running[addresses[0]]
        node.submit_raw_transaction(raw_tx(0))
        transport.gossip_transaction(raw_tx(0))
        wait_until(lambda: min(heads()) >= 1, timeout=10, what="block 1 everywhere")

        stop(addresses[3])  # three of four are still a quorum
        node, transport, _ = running[addresses[1]]
        for nonce in (1, 2):
            node.submit_raw_transaction(raw_tx(nonce))
            transport.gossip_transaction(raw_tx(nonce))
            wait_until(lambda n=nonce: min(heads()) >= n + 1, timeout=10, what=f"block {nonce + 1}")
        start(keys[3])  # a fresh (empty) node: it catches up from its peers' STATUS
        wait_until(lambda: running[addresses[3]][0].chain.head.number >= 3, timeout=10, what="the catch-up")
        assert len({node.chain.block_by_number(3).hash for node, _, _ in running.values()}) == 1  # type: ignore[union-attr]
        wait_until(lambda: {p["name"] for p in running[addresses[3]][1].peers()} == {"v0", "v1", "v2"},
                   what="the restarted node's connections")
    finally:
        for address in list(running):
            stop(address)


# -- identity: the certificate's CA must be the organisation's the address is bound to ------
def bound_allowlist() -> SimpleAllowlist:
    """ALLOWED, each address bound to its organisation in ORGS."""
    return SimpleAllowlist(ALLOWED.__contains__, orgs=ORGS)


@pytest.mark.parametrize("forged", ["other-org-ca", "other-org-name"])
def test_a_certificate_from_another_organisations_ca_for_a_bound_address_is_refused(
        net: Net, caplog: pytest.LogCaptureFixture, forged: str) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a = net.start(A, (B, C), allow=bound_allowlist())
    c = net.start(C, (A,), allow=bound_allowlist())
    wait_until(lambda: connected(a, C)() and connected(c, A)(), what="the honest pair")
    # B is hospital-b's node. pharmacy's CA (a consortium CA: the TLS chain is fine) issues
    # a certificate for B's address; or hospital-b's CA issues one naming pharmacy.
    if forged == "other-org-ca":
        identity = net.consortium.identity("pharmacy", "beta", B)
        expected = "was issued by the CA of pharmacy, but 0x0202"
    else:
        identity = net.consortium.identity("pharmacy", "beta", B, ca=net.consortium.ca("hospital-b"))
        expected = "names organisation pharmacy, but 0x0202"
    raw = RawPeer(net, A, address=B, identity=identity)
    frames = raw.frames_until_closed()
    assert [k for k, _ in frames] == [Kind.DISCONNECT], frames
    reason = frames[0][1].decode()
    assert expected in reason and "belongs to organisation hospital-b" in reason, reason
    wait_until(logged(caplog, "refused 127.0.0.1:", expected, "hospital-b"), what="the refusal to be logged")
    assert not a.is_connected(B)
    # The same certificate checks refuse it when we dial it, too.
    forger = net.start(B, allow=bound_allowlist(), identity=identity)
    dialler = net.start(RAW, (B,), allow=bound_allowlist())
    wait_until(logged(caplog, "cannot connect to beta", "belongs to organisation hospital-b"), what="the dialler")
    assert not dialler.is_connected(B) and not forger.is_connected(RAW)
    c.send(A, Kind.CONSENSUS, b"still served")
    wait_until(lambda: rec(a).consensus == [(C, b"still served")])


def test_a_certificate_from_its_own_organisations_ca_is_accepted(net: Net) -> None:
    a = net.start(A, (B,), allow=bound_allowlist())
    b = net.start(B, (A,), allow=bound_allowlist())
    wait_until(lambda: connected(a, B)() and connected(b, A)(), what="a and b to connect")


def test_recheck_closes_the_connections_the_allowlist_no_longer_allows(
        net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    allowed = set(ALLOWED)
    a = net.start(A, (B, C), allow=allowed.__contains__)
    b = net.start(B, (A,))
    c = net.start(C, (A,))
    wait_until(lambda: connected(a, B, C)() and connected(b, A)(), what="the mesh")
    allowed.discard(C)
    a.recheck_peers()
    wait_until(lambda: not a.is_connected(C), what="c to be dropped")
    wait_until(logged(caplog, "dropping peer gamma", "not on the allowlist"), what="the reason to be logged")
    wait_until(logged(caplog, "peer alpha", "disconnected: address 0x0303", "not on the allowlist"),
               what="c to get the reason")
    assert a.is_connected(B)
    b.send(A, Kind.CONSENSUS, b"still served")
    wait_until(lambda: rec(a).consensus == [(B, b"still served")])
    # And it stays out: its redials are refused (it dials us: we are lower).
    time.sleep(0.3)
    assert not a.is_connected(C) and not c.is_connected(A)


# -- budgets ------------------------------------------------------------------------------
def silent_tcp(net: Net, target: bytes, source: str) -> socket.socket:
    """A TCP connection that never starts TLS: a handshake that stays pending."""
    sock = socket.create_connection(("127.0.0.1", net.ports[target]), timeout=5, source_address=(source, 0))
    net.sockets.append(sock)
    return sock


def closed_at_once(sock: socket.socket) -> bool:
    """The node closed this connection without a word (refused before TLS)."""
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_pending_handshakes_per_remote_address_are_capped(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a = net.start(A, (B,), max_pending_handshakes_per_ip=2)
    b = net.start(B, (A,))
    wait_until(lambda: connected(a, B)() and connected(b, A)(), what="a and b to connect")
    held = [silent_tcp(net, A, "127.0.0.2") for _ in range(2)]
    wait_until(lambda: a._pending_by_ip.get("127.0.0.2") == 2, what="two pending handshakes")
    third = silent_tcp(net, A, "127.0.0.2")
    assert closed_at_once(third)
    assert logged(caplog, "refused 127.0.0.2:", "2 handshakes pending from 127.0.0.2",
                  "max_pending_handshakes_per_ip = 2")()
    # Another address is served meanwhile: a peer connects, and b's frames arrive.
    raw = RawPeer(net, A, source="127.0.0.3")
    raw.send_status()
    assert raw.read_frame()[0] == Kind.STATUS
    wait_until(connected(a, RAW))
    b.send(A, Kind.CONSENSUS, b"still served")
    wait_until(lambda: rec(a).consensus == [(B, b"still served")])
    for sock in held:
        sock.close()
    wait_until(lambda: "127.0.0.2" not in a._pending_by_ip, what="the slots to be released")
    again = RawPeer(net, A, address=C, source="127.0.0.2")
    again.send_status()
    assert again.read_frame()[0] == Kind.STATUS


def test_pending_handshakes_in_total_are_capped(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a = net.start(A, (B,), max_pending_handshakes=3)
    b = net.start(B, (A,))
    wait_until(lambda: connected(a, B)() and connected(b, A)(), what="a and b to connect")
    held = [silent_tcp(net, A, f"127.0.0.{n}") for n in (2, 3, 4)]
    wait_until(lambda: a._pending_total == 3, what="three pending handshakes")
    fourth = silent_tcp(net, A, "127.0.0.5")
    assert closed_at_once(fourth)
    assert logged(caplog, "refused 127.0.0.5:", "3 handshakes pending (max_pending_handshakes = 3)")()
    b.send(A, Kind.CONSENSUS, b"still served")
    wait_until(lambda: rec(a).consensus == [(B, b"still served")])
    # The handshake timeout frees the slots of silent connections.
    for sock in held:
        assert closed_at_once(sock)
    wait_until(lambda: a._pending_total == 0, what="the slots to be released")
    raw = RawPeer(net, A, source="127.0.0.5")
    raw.send_status()
    assert raw.read_frame()[0] == Kind.STATUS


def test_connections_per_remote_address_are_capped(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a = net.start(A, (B,), max_connections_per_ip=2)
    b = net.start(B, (A,))
    wait_until(lambda: connected(a, B)() and connected(b, A)(), what="a and b to connect")
    for address in (RAW, C):  # two established connections from one host
        peer = RawPeer(net, A, address=address, source="127.0.0.2")
        peer.send_status()
        assert peer.read_frame()[0] == Kind.STATUS
    wait_until(connected(a, RAW, C))
    third = silent_tcp(net, A, "127.0.0.2")
    assert closed_at_once(third)
    assert logged(caplog, "refused 127.0.0.2:", "2 connections from 127.0.0.2 (max_connections_per_ip = 2)")()
    assert a.is_connected(RAW) and a.is_connected(C)
    b.send(A, Kind.CONSENSUS, b"still served")
    wait_until(lambda: rec(a).consensus == [(B, b"still served")])


def test_a_peer_over_its_message_rate_has_the_excess_dropped_then_is_disconnected(
        net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    a = net.start(A, (B,), peer_message_rate=20.0, peer_message_burst=20, dropped_message_penalty=1.0,
                  peer_score_limit=50.0)
    b = net.start(B, (A,))
    wait_until(lambda: connected(a, B)() and connected(b, A)(), what="a and b to connect")
    raw = RawPeer(net, A)
    raw.send_status()
    assert raw.read_frame()[0] == Kind.STATUS
    wait_until(connected(a, RAW))
    flood = 3000
    try:
        raw.sock.sendall(b"".join(encode_frame(Kind.TX, b"\x02flood-%d" % n) for n in range(flood)))
    except (BrokenPipeError, ConnectionResetError):
        pass  # it may disconnect us before we are done
    frames = raw.frames_until_closed()
    reasons = [payload.decode() for kind, payload in frames if kind == Kind.DISCONNECT]
    assert reasons and "misbehaviour score reached 50: more than 20 messages a second" in reasons[-1], frames
    received = [data for peer, data in rec(a).txs if peer == RAW]
    assert 20 <= len(received) < flood  # the burst got through, the excess did not
    assert logged(caplog, "sends more than 20 messages a second")()
    wait_until(lambda: not a.is_connected(RAW))
    # b is under the same budget and keeps being served.
    for n in range(10):
        b.send(A, Kind.TX, b"\x02honest-%d" % n)
    wait_until(lambda: [d for p, d in rec(a).txs if p == B] == [b"\x02honest-%d" % n for n in range(10)])
    assert a.is_connected(B)


def test_an_honest_burst_within_the_default_budget_is_delivered_whole(net: Net) -> None:
    a, b = pair(net)
    for n in range(2000):
        b.send(A, Kind.TX, b"\x02tx-%d" % n)
    wait_until(lambda: len(rec(a).txs) == 2000, timeout=30, what="every frame")
    assert a.is_connected(B)


def test_a_peer_sending_bad_messages_is_scored_and_disconnected_honest_ones_stay(
        net: Net, caplog: pytest.LogCaptureFixture) -> None:
    from node.consensus.messages import decode_message
    from rxledger.core.errors import NodeError

    caplog.set_level(logging.INFO, logger=LOG)
    received: list[tuple[bytes, bytes]] = []
    services: list[P2PService] = []

    def on_consensus(peer: bytes, data: bytes) -> None:
        # What the consensus runtime does with a message it cannot decode (on_bad_message).
        try:
            decode_message(data)
        except NodeError as exc:
            services[0].bad_message(peer, f"undecodable consensus message: {exc}")
            return
        received.append((peer, data))

    recorder = Recorder()
    recorder.on_consensus = on_consensus  # type: ignore[method-assign]
    # No decay within the test (the default forgives one point a second), for exact counts.
    a = net.start(A, (B,), recorder=recorder, peer_score_decay=0.0)
    services.append(a)
    b = net.start(B, (A,))
    wait_until(lambda: connected(a, B)() and connected(b, A)(), what="a and b to connect")
    raw = RawPeer(net, A)
    raw.send_status()
    assert raw.read_frame()[0] == Kind.STATUS
    wait_until(connected(a, RAW))
    nested = b"\xc3\xc2\xc1\xc0"  # RLP lists, no message code
    for _ in range(9):  # nine bad messages: 90 points, below the limit of 100
        raw.sock.sendall(encode_frame(Kind.CONSENSUS, nested))
    wait_until(logged(caplog, "bad message from raw", "(9 so far)"), what="nine reports")
    assert a.is_connected(RAW)
    raw.sock.sendall(encode_frame(Kind.CONSENSUS, b"\xff" * 10))  # the tenth
    frames = raw.frames_until_closed()
    reasons = [payload.decode() for kind, payload in frames if kind == Kind.DISCONNECT]
    assert reasons and reasons[-1].startswith("misbehaviour score reached 100: 10 bad messages, the last: "
                                              "undecodable consensus message"), reasons
    wait_until(lambda: not a.is_connected(RAW))
    assert a.is_connected(B)
    b.send(A, Kind.CONSENSUS, b"\xc0")  # b's messages are still read (and judged on their own)
    wait_until(logged(caplog, "bad message from beta", "(1 so far)"))
    assert a.is_connected(B)
