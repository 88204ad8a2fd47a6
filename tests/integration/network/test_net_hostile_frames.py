"""One validator's own certificate, one hostile consensus frame to each other validator,
on a real consortium (`network init`, real node processes, TLS 1.3 on loopback).

The issue's end-to-end reproduction: `regulator` (a validator: f = 1 of 4, which QBFT must
tolerate) is stopped and its identity used by this test, which sends each of the other
three validators, over TLS after the STATUS exchange, one CONSENSUS frame of 150,000
nested RLP lists (578 KB, unsigned) and one PROPOSAL signed with regulator's validator
key whose block carries a byte string where the transaction list belongs. Before the
fix each node's consensus thread died (`/health`: "consensus stopped") and no
transaction was final afterwards. Now: every one of the three still says "ok", keeps
finalising blocks, and a transaction sent afterwards is final on all three.
"""

from __future__ import annotations

import socket
import ssl
import time

import rlp
from netharness import Net, wait_until

from network.config import load_validator_key
from network.layout import node_paths
from node.consensus.messages import PROPOSAL, encode_signed, sign_payload
from node.p2p.frames import Kind, Status, decode_frames, decode_status, encode_frame, encode_status
from rxledger.core.crypto import private_key_to_address
from rxledger.core.types.rlp_codec import rlp_bytes, rlp_list

BYZANTINE = "regulator"


def _nested_lists(depth: int) -> bytes:
    prefixes, n = [b"\xc0"], 1
    for _ in range(depth - 1):
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        prefix = bytes([0xC0 + n]) if n < 56 else bytes([0xF7 + len(size)]) + size
        prefixes.append(prefix)
        n += len(prefix)
    return b"".join(reversed(prefixes))


def _bad_proposals(net: Net, target: str, key: bytes) -> list[bytes]:
    """PROPOSALs signed by `key` for the target's next two heights and rounds 0-3 (it is
    the proposer of one of them: that one's block is read), each block with a byte string
    for its transaction list."""
    head = net.head(target)
    header = net.header(target, head)
    block = rlp_list(rlp.encode(header.fields()) + rlp_bytes(b"\x01\x02\x03") + b"\xc0\xc0")
    out = []
    for height in (head + 1, head + 2):
        for round_ in range(4):
            signed = sign_payload(PROPOSAL, height, round_, (b"\x01" * 32,), key, private_key_to_address(key))
            out.append(rlp_list(rlp.encode(PROPOSAL) + rlp.encode(encode_signed(signed)) + block + b"\xc0\xc0"))
    return out


def _send_after_status(net: Net, target: str, frames: list[bytes]) -> None:
    """Connect to `target` with BYZANTINE's certificate, exchange STATUS, send `frames`."""
    paths = node_paths(net.dir, BYZANTINE)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # as the nodes: identity is the bound address
    ctx.load_verify_locations(cafile=str(net.info.ca_bundle))
    ctx.load_cert_chain(str(paths.tls_cert), str(paths.tls_key))
    node = net.node(target)
    with socket.create_connection((node.p2p_host, node.p2p_port), timeout=10) as raw, \
            ctx.wrap_socket(raw) as tls:
        buffer, got = b"", []
        deadline = time.monotonic() + 10
        while not got:
            assert time.monotonic() < deadline, f"{target} sent no STATUS"
            chunk = tls.recv(65536)
            assert chunk, f"{target} closed the connection before STATUS"
            buffer += chunk
            got, buffer = decode_frames(buffer)
        assert got[0].kind == Kind.STATUS
        status = decode_status(got[0].payload)
        ours = Status(status.chain_id, status.genesis_hash, 0, status.genesis_hash,
                      net.node(BYZANTINE).address)
        tls.sendall(encode_frame(Kind.STATUS, encode_status(ours)))
        for frame in frames:
            tls.sendall(frame)
        time.sleep(0.5)  # let it read them before the connection closes


def test_one_hostile_frame_to_each_validator_does_not_stop_consensus(net: Net) -> None:
    honest = [v for v in net.validator_names if v != BYZANTINE]
    assert len(honest) == 3
    key = load_validator_key(node_paths(net.dir, BYZANTINE).validator_key)
    net.stop(BYZANTINE)
    wait_until(lambda: all(BYZANTINE not in {p.get("name") for p in (net.health(v) or {}).get("peers", [])}
                           for v in honest), 20.0, f"the others to drop their connections to {BYZANTINE}")
    nested = _nested_lists(150_000)
    assert 570_000 < len(nested) < 590_000
    for target in honest:
        _send_after_status(net, target, [encode_frame(Kind.CONSENSUS, nested)] + [
            encode_frame(Kind.CONSENSUS, p) for p in _bad_proposals(net, target, key)])
    # Each node read the frames: it logged dropping them (or, before the fix, that its
    # consensus stopped). Consensus must go on.
    for target in honest:
        wait_until(lambda t=target: any(w in net.log_text(t) for w in ("nested more than", "consensus stopped")),
                   20.0, f"{target} to log what it did with the frame")
    time.sleep(1.0)
    for target in honest:
        health = net.health(target)
        assert health is not None and health["status"] == "ok", (target, health)
        assert "nested more than" in net.log_text(target), target
    for target in honest:  # the proposal of a round regulator leads was read, and dropped
        wait_until(lambda t=target: "transaction list is a byte string" in net.log_text(t), 20.0,
                   f"{target} to log the dropped proposal")
    head = max(net.heads(honest).values())
    net.wait_head(honest, head + 2)
    receipts = net.confirm_transactions(honest[:1], honest)
    assert all(int(r["blockNumber"], 16) > head for r in receipts.values())
    net.assert_same_chain(honest)
    for target in honest:
        assert (net.health(target) or {}).get("status") == "ok", target
