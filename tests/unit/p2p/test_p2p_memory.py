"""node.p2p.memory: the in-memory transport behaves as P2PService does, without sockets."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from node.p2p import Kind, MemoryNetwork, MemoryTransport, Status
from node.p2p.frames import encode_frame, encode_get_blocks

GENESIS = b"\x11" * 32
A, B, C = (bytes([n]) * 20 for n in (1, 2, 3))
LOG = "rxledger.p2p"


class Node:
    def __init__(self, network: MemoryNetwork, address: bytes, *, genesis: bytes = GENESIS,
                 allow: Callable[[bytes], bool] = lambda a: True, **kwargs: object) -> None:
        self.consensus: list[tuple[bytes, bytes]] = []
        self.txs: list[tuple[bytes, bytes]] = []
        self.blocks: list[tuple[bytes, list[bytes]]] = []
        self.statuses: list[tuple[bytes, Status]] = []
        self.chain = [b"block-%d" % n for n in range(40)]
        self.transport = MemoryTransport(
            network, address, name=address[:1].hex(), chain_id=2024, genesis_hash=genesis,
            head=lambda: (len(self.chain) - 1, b"\x22" * 32), allow=allow,
            on_consensus=lambda p, d: self.consensus.append((p, d)),
            on_transaction=lambda p, r: self.txs.append((p, r)),
            on_get_blocks=lambda p, start, count: self.chain[start:start + count],
            on_blocks=lambda p, blocks: self.blocks.append((p, blocks)),
            on_status=lambda p, s: self.statuses.append((p, s)),
            **kwargs,  # type: ignore[arg-type]
        )
        self.transport.start()


def test_members_link_exchange_status_and_frames() -> None:
    net = MemoryNetwork()
    a, b, c = Node(net, A), Node(net, B), Node(net, C)
    net.flush()
    assert [s.address for s in a.transport.connected_peers()] == [B, C]
    assert {p for p, _ in c.statuses} == {A, B}
    assert a.transport.connected_peers()[0].head_number == 39
    assert [p.outbound for p in c.transport.connected_peers()] == [True, True]
    a.transport.broadcast(Kind.CONSENSUS, b"hello")
    c.transport.send(B, Kind.TX, b"\x02raw")
    assert net.flush() == 3
    assert b.consensus == [(A, b"hello")] and c.consensus == [(A, b"hello")] and a.consensus == []
    assert b.txs == [(C, b"\x02raw")]


def test_get_blocks_is_capped_like_the_tls_service() -> None:
    net = MemoryNetwork()
    Node(net, A, max_blocks_per_frame=8)
    b = Node(net, B)
    net.flush()
    b.transport.send(A, Kind.GET_BLOCKS, encode_get_blocks(3, 100))
    net.flush()
    assert b.blocks == [(A, [b"block-%d" % n for n in range(3, 11)])]


def test_refusals_at_connect(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    net = MemoryNetwork()
    a = Node(net, A, allow=lambda address: address != C)
    Node(net, B, genesis=b"\x99" * 32)
    Node(net, C)
    net.flush()
    assert a.transport.connected_peers() == []
    text = caplog.text
    assert "genesis hash 0x9999" in text and f"address 0x{C.hex()} is not on the allowlist" in text


def test_garbage_ends_the_link_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    net = MemoryNetwork()
    a, b, c = Node(net, A), Node(net, B), Node(net, C)
    net.flush()
    net.inject(B, A, b"\x00\x00\x00\x02\x42x")
    net.inject(C, A, b"\xff\xff\xff\xff")
    net.flush()
    assert "unknown frame type 0x42" in caplog.text and "announced, the cap is" in caplog.text
    assert a.transport.connected_peers() == []
    assert [p.address for p in b.transport.connected_peers()] == [C]
    b.transport.broadcast(Kind.CONSENSUS, b"x")
    net.flush()
    assert c.consensus == [(B, b"x")] and a.consensus == []
    net.link(A, B)
    net.flush()
    assert net.is_linked(A, B)


def test_a_failing_handler_keeps_the_link(caplog: pytest.LogCaptureFixture) -> None:
    net = MemoryNetwork()
    a, b = Node(net, A), Node(net, B)
    net.flush()

    def boom(peer: bytes, data: bytes) -> None:
        raise RuntimeError("handler bug")

    a.transport.dispatcher.handlers = type(a.transport.dispatcher.handlers)(on_consensus=boom)
    b.transport.send(A, Kind.CONSENSUS, b"x")
    net.flush()
    assert "on_consensus handler failed" in caplog.text
    assert net.is_linked(A, B)


def test_drop_unlink_and_leave() -> None:
    net = MemoryNetwork(drop=lambda sender, receiver, kind: kind == Kind.TX)
    a, b = Node(net, A), Node(net, B)
    net.flush()
    a.transport.broadcast(Kind.TX, b"\x02lost")
    a.transport.broadcast(Kind.CONSENSUS, b"kept")
    net.flush()
    assert b.txs == [] and b.consensus == [(A, b"kept")]
    net.unlink(A, B)
    a.transport.send(B, Kind.CONSENSUS, b"cut")
    net.flush()
    assert b.consensus == [(A, b"kept")]
    net.link(A, B)
    b.transport.stop()
    assert a.transport.connected_peers() == []


def test_frame_cap_applies_to_senders() -> None:
    net = MemoryNetwork()
    a = Node(net, A, max_frame_size=64)
    with pytest.raises(Exception, match="exceeds the 64-byte cap"):
        a.transport.broadcast(Kind.TX, b"x" * 64)


def test_a_delivery_thread_delivers_without_flush() -> None:
    net = MemoryNetwork()
    net.start()
    try:
        a, b = Node(net, A), Node(net, B)
        a.transport.send(B, Kind.CONSENSUS, b"async")
        deadline = time.monotonic() + 5
        while b.consensus != [(A, b"async")]:
            assert time.monotonic() < deadline
            time.sleep(0.005)
    finally:
        net.stop()
    assert encode_frame(Kind.TX, b"")  # the codec is the one P2PService uses
